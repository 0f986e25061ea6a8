"""``shiplight demo``: bundled carrier traffic through the embedded stack, then the story."""

from __future__ import annotations

import json
import signal
import threading
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from infra.demo.bundled import DEMO_SECRETS, Delivery, deliveries
from infra.local.runtime import LocalRuntime, RuntimeOptions
from shared import clock
from shared.dal.shipments import DynamoShipmentStore
from shared.models.shipment import Partition, TrackingKey
from shared.models.views import STATUS_LABELS


@dataclass
class DemoOptions:
    port: int | None = None
    serve: bool = True
    summary_json: Path | None = None
    state_dir: Path = Path(".shiplight")


def post(url: str, delivery: Delivery) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url, data=delivery.body, headers=delivery.headers, method="POST")  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - our gateway's URL
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def _shipments(runtime: LocalRuntime, keys: list[TrackingKey]) -> list[Partition]:
    store = DynamoShipmentStore(runtime.require_stack().ref("ShipmentsTable"))
    known = store.resolve(keys)
    partitions = [store.load(known[key]) for key in keys if key in known]
    return [p for p in partitions if p is not None]


def _place(location: Any) -> str:
    if location is None:
        return ""
    parts = [location.city, location.region, location.country]
    return ", ".join(p for p in parts if p)


def print_timeline(partition: Partition, base_url: str, out: TextIO) -> None:
    shipment = partition.shipment
    label = STATUS_LABELS[shipment.status]
    out.write(f"\n  {shipment.carrier.upper()} {shipment.tracking_number} — {label}\n")
    out.write(f"  tracking: {base_url}/v1/track/{shipment.public_token}\n")
    for stored in sorted(partition.events, key=lambda s: s.event.sort_key):
        event = stored.event
        when = (event.occurred_at_local or event.occurred_at).strftime("%a %d %b %H:%M %z")
        what = event.milestone.value if event.milestone else "(no milestone)"
        if event.exception:
            what += f" !{event.exception.value}"
        out.write(
            f"    {when:<24} {what:<32} {(event.description or '')[:48]:<48} {_place(event.location):<28} [{stored.source}]\n"
        )


def run_demo(options: DemoOptions, out: TextIO) -> int:
    runtime = LocalRuntime(RuntimeOptions(port=options.port, secrets=DEMO_SECRETS, state_dir=options.state_dir))
    runtime.start()
    try:
        base = runtime.url
        out.write(f"Shiplight demo — embedded stack on {base} (moto at {runtime.endpoint})\n")
        stack = runtime.require_stack()
        out.write(
            f"Resources from template.yaml: {len(stack.created)} created, "
            f"{len(stack.not_emulated)} not emulated locally\n\n"
        )
        answers: Counter[int] = Counter()
        unexpected = 0
        for delivery in deliveries(clock.now()):
            status, body = post(f"{base}/webhooks/{delivery.source}", delivery)
            answers[status] += 1
            unexpected += status != delivery.expect
            detail = body.get("detail") or body.get("status") or ""
            out.write(
                f"  POST /webhooks/{delivery.source:<9} {status}  {delivery.label}{'  — ' + detail if status >= 400 else ''}\n"
            )
        runtime.wait_idle(timeout=120)

        metrics = runtime.require_host().metrics
        published = runtime.published_events()
        keys = [
            TrackingKey("usps", "9400111899223344556677"),
            TrackingKey("ups", "1Z999AA10123456784"),
            TrackingKey("fedex", "776094337676"),
        ]
        partitions = _shipments(runtime, keys)
        out.write("\nTimelines (each from one Query of the shipments table):\n")
        for partition in partitions:
            print_timeline(partition, base, out)

        summary = {
            "webhooks_received": int(metrics.get("WebhookAccepted")),
            "webhooks_rejected": int(metrics.get("WebhookRejected")),
            "events_received": int(metrics.get("EventsReceived")),
            "events_stored": int(metrics.get("EventsStored")),
            "duplicates_dropped": int(metrics.get("DuplicatesDropped")),
            "changes_published": int(metrics.get("ChangesPublished")),
            "events_on_bus": len(published),
            "payloads_quarantined": int(metrics.get("PayloadsQuarantined")),
            "payloads_ignored": int(metrics.get("PayloadsIgnored")),
            "unmapped_codes": int(metrics.get("UnmappedCodes")),
            "unexpected_answers": unexpected,
            "shipments": {
                f"{p.shipment.carrier}:{p.shipment.tracking_number}": {
                    "status": p.shipment.status.value if p.shipment.status else None,
                    "events": len(p.events),
                    "tracking_url": f"{base}/v1/track/{p.shipment.public_token}",
                }
                for p in partitions
            },
        }
        out.write(
            "\nCounts:\n"
            f"  webhooks received {summary['webhooks_received']} (rejected {summary['webhooks_rejected']}), "
            f"events received {summary['events_received']}, stored {summary['events_stored']}, "
            f"duplicates dropped {summary['duplicates_dropped']}\n"
            f"  milestone changes published {summary['changes_published']} "
            f"(seen on the bus: {summary['events_on_bus']}), "
            f"payloads quarantined {summary['payloads_quarantined']}, ignored {summary['payloads_ignored']}, "
            f"unmapped codes {summary['unmapped_codes']}\n"
        )
        by_type = Counter(event["detail-type"] for event in published)
        for detail_type, count in sorted(by_type.items()):
            out.write(f"  bus: {count} x {detail_type}\n")
        out.write(
            f"\nLook around: {base}/_local/metrics (CloudWatch metrics from the functions' logs), "
            f"{base}/_local/stack (outputs), logs in {options.state_dir / 'logs'}/\n"
        )
        if options.summary_json:
            options.summary_json.write_text(json.dumps(summary, indent=2) + "\n")
        if unexpected:
            out.write(f"\n{unexpected} deliveries were not answered as expected.\n")
            return 1
        if options.serve:
            out.write("\nServing the tracking JSON above until Ctrl-C.\n")
            out.flush()
            _wait_for_interrupt()
        return 0
    finally:
        runtime.stop()


def _wait_for_interrupt() -> None:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
