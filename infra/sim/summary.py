"""The merchant's summary of a simulated run: what came in, what Shiplight made of it, how fast."""

from __future__ import annotations

import json
import statistics
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from infra.sim.runner import SimRun
from shared.models.shipment import Partition
from shared.models.views import STATUS_LABELS


def _percentile(values: list[float], share: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def out_of_order(partition: Partition) -> int:
    """Events that reached Shiplight after an event of a later scan: absorbed into the timeline's
    place by instant rather than appended."""
    timeline = sorted(partition.events, key=lambda s: s.event.occurred_at)
    latest_received: datetime | None = None
    late = 0
    # Walking from the newest scan back, an event received after some newer scan's event is late.
    for stored in reversed(timeline):
        received = stored.event.received_at
        if latest_received is not None and received > latest_received:
            late += 1
        latest_received = received if latest_received is None else min(latest_received, received)
    return late


def unmapped_codes(log_path: Path | None) -> Counter[str]:
    """``source:code`` counts from the processor's "unmapped carrier codes" log lines."""
    found: Counter[str] = Counter()
    if log_path is None or not log_path.is_file():
        return found
    with log_path.open(encoding="utf-8", errors="replace") as lines:
        for line in lines:
            if "unmapped carrier codes" not in line:
                continue
            try:
                found.update(json.loads(line).get("codes", {}))
            except (ValueError, AttributeError):
                continue
    return found


def summarize(run: SimRun, partitions: dict[str, Partition]) -> dict[str, Any]:
    host = run.runtime.require_host()
    metrics = host.metrics
    by_status: Counter[str] = Counter()
    per_source: Counter[str] = Counter()
    latency: dict[str, list[float]] = defaultdict(list)
    late = 0
    raised: Counter[str] = Counter()
    auto_resolved = 0
    open_by_owner: Counter[str] = Counter()
    for partition in {id(p): p for p in partitions.values()}.values():
        for exception in partition.incidents:
            raised[exception.type.value] += 1
            auto_resolved += exception.resolved_by is not None and exception.resolved_by.value == "auto"
            if exception.resolved_at is None:
                open_by_owner[exception.owner.value] += 1
        status = partition.shipment.status
        by_status[status.value if status else "none"] += 1
        late += out_of_order(partition)
        for stored in partition.events:
            per_source[stored.source] += 1
            event = stored.event
            latency[event.carrier].append((event.received_at - event.occurred_at).total_seconds() / 60)
    unseen = len(run.journeys) - len(partitions)
    if unseen:
        by_status["unknown to Shiplight"] = unseen
    answers = {kind: {str(code): n for code, n in sorted(c.items())} for kind, c in sorted(run.answers.items())}
    simulated_hours = (run.end - run.options.start).total_seconds() / 3600
    return {
        "shipments": len(run.journeys),
        "days": run.options.days,
        "seed": run.options.seed,
        "wall_seconds": round(run.wall_seconds, 1),
        "simulated_hours_per_second": round(simulated_hours / run.wall_seconds, 1) if run.wall_seconds else None,
        "shipments_by_status": dict(by_status.most_common()),
        "requests_sent": sum(sum(c.values()) for c in run.answers.values()),
        "answers": answers,
        "unexpected_answers": len(run.unexpected),
        "bad_input_refused": sum(
            n for kind, codes in answers.items() if kind not in _ACCEPTED_KINDS for code, n in codes.items()
        ),
        "carrier_polls": int(metrics.get("CarrierPolls")),
        "poll_answers_unchanged": int(metrics.get("PollAnswersUnchanged")),
        "poller_runs": int(metrics.get("PollerRuns")),
        "events_received": int(metrics.get("EventsReceived")),
        "events_stored": int(metrics.get("EventsStored")),
        "duplicates_dropped": int(metrics.get("DuplicatesDropped")),
        "out_of_order_absorbed": late,
        "readings_improved": int(metrics.get("ScanReadingsImproved")),
        "changes_published": int(metrics.get("ChangesPublished")),
        "payloads_quarantined": int(metrics.get("PayloadsQuarantined")),
        "events_per_source": dict(per_source.most_common()),
        "exceptions_raised": dict(raised.most_common()),
        "exceptions_auto_resolved": auto_resolved,
        "exceptions_open_by_owner": dict(open_by_owner.most_common()),
        "unmapped_codes": dict(unmapped_codes(host.log_path("EventProcessorFunction")).most_common()),
        "latency_minutes": {
            carrier: {
                "p50": round(statistics.median(values), 1),
                "p95": round(_percentile(values, 0.95) or 0.0, 1),
                "events": len(values),
            }
            for carrier, values in sorted(latency.items())
        },
    }


_ACCEPTED_KINDS = ("webhook", "warehouse", "duplicate", "held_back", "registration", "claim")


def print_summary(summary: dict[str, Any], out: TextIO) -> None:
    out.write(
        f"\n{summary['shipments']} shipments over {summary['days']} simulated days in {summary['wall_seconds']} s "
        f"({summary['simulated_hours_per_second']} simulated hours a second)\n"
    )
    out.write("\nShipments by status:\n")
    for status, count in summary["shipments_by_status"].items():
        label = STATUS_LABELS.get(status, status) if status not in ("none", "unknown to Shiplight") else status
        out.write(f"  {count:>5}  {label}\n")
    out.write(
        "\nEvents:\n"
        f"  received {summary['events_received']}, stored {summary['events_stored']}, "
        f"duplicates dropped {summary['duplicates_dropped']}, out-of-order absorbed {summary['out_of_order_absorbed']}, "
        f"better readings kept {summary['readings_improved']}\n"
        f"  milestone changes published {summary['changes_published']}, payloads quarantined "
        f"{summary['payloads_quarantined']}\n"
        f"  carrier API polls {summary['carrier_polls']} in {summary['poller_runs']} poller runs "
        f"({summary['poll_answers_unchanged']} said nothing new and were not ingested again)\n"
        "  stored per source: " + ", ".join(f"{s} {n}" for s, n in summary["events_per_source"].items()) + "\n"
    )
    unmapped = summary["unmapped_codes"]
    out.write(
        "  unmapped codes: "
        + (", ".join(f"{code} x{n}" for code, n in list(unmapped.items())[:8]) if unmapped else "none")
        + "\n"
    )
    raised = summary["exceptions_raised"]
    out.write(
        f"\nExceptions raised {sum(raised.values())}: "
        + (", ".join(f"{kind} {n}" for kind, n in raised.items()) or "none")
        + f"\n  resolved by themselves (the parcel moved on) {summary['exceptions_auto_resolved']}; open per owner: "
        + (", ".join(f"{owner} {n}" for owner, n in summary["exceptions_open_by_owner"].items()) or "none")
        + "\n"
    )
    out.write(f"\nRequests ({summary['requests_sent']}), answered:\n")
    for kind, codes in summary["answers"].items():
        out.write(f"  {kind:<15} " + ", ".join(f"{code} x{n}" for code, n in codes.items()) + "\n")
    out.write("\nScan-to-update latency (minutes, scan instant → received):\n")
    for carrier, row in summary["latency_minutes"].items():
        out.write(f"  {carrier:<12} p50 {row['p50']:>7}  p95 {row['p95']:>8}  ({row['events']} events)\n")
