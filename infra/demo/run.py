"""``shiplight demo``: bundled carrier traffic through the embedded stack, then the story."""

from __future__ import annotations

import json
import signal
import threading
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, TextIO

from infra.demo.bundled import DEMO_SECRETS, Delivery, Story, deliveries, stories
from infra.fake_carriers import CarrierWorld
from infra.local.runtime import LocalRuntime, RuntimeOptions
from shared import clock
from shared.clock import AcceleratedClock
from shared.dal.shipments import DynamoShipmentStore
from shared.models.shipment import Partition, TrackingKey
from shared.models.views import STATUS_LABELS

# Enough carrier time for every polled shipment to come due, twice (the second poll asks
# the last-mile carrier once the first found the handover).
POLL_ROUNDS = (timedelta(hours=7), timedelta(hours=4))


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


def _partitions(runtime: LocalRuntime, told: list[Story]) -> list[Partition]:
    store = DynamoShipmentStore(runtime.require_stack().ref("ShipmentsTable"))
    keys = [TrackingKey(s.parcel.first.carrier, s.parcel.first.tracking_number) for s in told]
    known = store.resolve(keys)
    partitions = [store.load(known[key]) for key in keys if key in known]
    return [p for p in partitions if p is not None]


def _place(location: Any) -> str:
    if location is None:
        return ""
    return ", ".join(part for part in (location.city, location.region, location.country) if part)


def print_timeline(partition: Partition, base_url: str, out: TextIO) -> None:
    shipment = partition.shipment
    numbers = " + ".join(key.replace(":", " ").upper() for key in shipment.tracking_keys)
    out.write(f"\n  {numbers} — {STATUS_LABELS[shipment.status]}\n")
    out.write(f"  tracking: {base_url}/v1/track/{shipment.public_token}\n")
    for stored in sorted(partition.events, key=lambda s: s.event.sort_key):
        event = stored.event
        when = (event.occurred_at_local or event.occurred_at).strftime("%a %d %b %H:%M %z")
        what = event.milestone.value if event.milestone else "(no milestone)"
        if event.exception:
            what += f" !{event.exception.value}"
        out.write(
            f"    {when:<24} {what:<34} {(event.description or '')[:44]:<44} {_place(event.location)[:26]:<26}"
            f" [{stored.source}]\n"
        )


def run_demo(options: DemoOptions, out: TextIO) -> int:
    now = clock.now()
    told = stories(now)
    world = CarrierWorld(now=clock.now)
    for story in told:
        if story.polled:
            world.add(story.parcel, list(story.scans), latency=timedelta(minutes=20))
    runtime = LocalRuntime(
        RuntimeOptions(
            port=options.port,
            secrets=DEMO_SECRETS,
            state_dir=options.state_dir,
            clock=AcceleratedClock(now, speed=1.0),
            carrier_world=world,
            bus_tap=True,
        )
    )
    runtime.start()
    try:
        base = runtime.url
        stack = runtime.require_stack()
        out.write(f"Shiplight demo — embedded stack on {base} (moto at {runtime.endpoint})\n")
        out.write(
            f"Resources from template.yaml: {len(stack.created)} created, {len(stack.not_emulated)} not emulated"
            f" locally; fake carrier APIs on {runtime.carriers.url if runtime.carriers else '-'}\n\n"
        )
        answers: Counter[int] = Counter()
        unexpected = 0
        for delivery in deliveries(now, told):
            status, body = post(f"{base}/webhooks/{delivery.source}", delivery)
            answers[status] += 1
            unexpected += status != delivery.expect
            detail = f"  — {body.get('detail')}" if status >= 400 else ""
            out.write(f"  POST /webhooks/{delivery.source:<15} {status}  {delivery.label}{detail}\n")
        runtime.wait_idle(timeout=120)
        demo_clock = clock.current()
        for jump in POLL_ROUNDS:
            if isinstance(demo_clock, AcceleratedClock):
                demo_clock.jump(jump)
            fired = runtime.scheduler.tick() if runtime.scheduler else 0
            runtime.wait_idle(timeout=120)
            out.write(f"\n  … {jump.total_seconds() / 3600:.0f} hours later: the poller ran {fired} times\n")
        metrics = runtime.require_host().metrics
        published = runtime.published_events()
        partitions = _partitions(runtime, told)
        out.write("\nTimelines (each from one Query of the shipments table):\n")
        for partition in partitions:
            print_timeline(partition, base, out)
        summary = _summary(metrics, published, partitions, base, unexpected)
        _print_summary(summary, published, options, base, out)
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


def _summary(
    metrics: Any, published: list[dict[str, Any]], partitions: list[Partition], base: str, unexpected: int
) -> dict[str, Any]:
    return {
        "webhooks_received": int(metrics.get("WebhookAccepted")),
        "webhooks_rejected": int(metrics.get("WebhookRejected")),
        "carrier_polls": int(metrics.get("CarrierPolls")),
        "poll_answers_queued": int(metrics.get("PollAnswersQueued")),
        "events_received": int(metrics.get("EventsReceived")),
        "events_stored": int(metrics.get("EventsStored")),
        "duplicates_dropped": int(metrics.get("DuplicatesDropped")),
        "readings_improved": int(metrics.get("ScanReadingsImproved")),
        "changes_published": int(metrics.get("ChangesPublished")),
        "events_on_bus": len(published),
        "payloads_quarantined": int(metrics.get("PayloadsQuarantined")),
        "payloads_ignored": int(metrics.get("PayloadsIgnored")),
        "unmapped_codes": int(metrics.get("UnmappedCodes")),
        "unexpected_answers": unexpected,
        "sources": sorted({stored.source for p in partitions for stored in p.events}),
        "shipments": {
            p.shipment.tracking_keys[0]: {
                "status": p.shipment.status.value if p.shipment.status else None,
                "tracking_numbers": p.shipment.tracking_keys,
                "events": len(p.events),
                "tracking_url": f"{base}/v1/track/{p.shipment.public_token}",
            }
            for p in partitions
        },
    }


def _print_summary(
    summary: dict[str, Any], published: list[dict[str, Any]], options: DemoOptions, base: str, out: TextIO
) -> None:
    out.write(
        "\nCounts:\n"
        f"  webhooks received {summary['webhooks_received']} (rejected {summary['webhooks_rejected']}), "
        f"carrier polls {summary['carrier_polls']} ({summary['poll_answers_queued']} answers queued)\n"
        f"  events received {summary['events_received']}, stored {summary['events_stored']}, "
        f"duplicates dropped {summary['duplicates_dropped']} (better readings kept {summary['readings_improved']})\n"
        f"  milestone changes published {summary['changes_published']} (seen on the bus: {summary['events_on_bus']}), "
        f"payloads quarantined {summary['payloads_quarantined']}, ignored {summary['payloads_ignored']}, "
        f"unmapped codes {summary['unmapped_codes']}\n"
        f"  sources on the timelines: {', '.join(summary['sources'])}\n"
    )
    for detail_type, count in sorted(Counter(event["detail-type"] for event in published).items()):
        out.write(f"  bus: {count} x {detail_type}\n")
    out.write(
        f"\nLook around: {base}/_local/metrics (CloudWatch metrics from the functions' logs), "
        f"{base}/_local/stack (outputs), logs in {options.state_dir / 'logs'}/\n"
    )


def _wait_for_interrupt() -> None:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
