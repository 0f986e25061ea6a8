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
        "latency_minutes_overall": _spread([value for values in latency.values() for value in values]),
        # The only figures that depend on the machine: everything above repeats for the same arguments.
        "timing": {
            "wall_seconds": round(run.wall_seconds, 1),
            "simulated_hours_per_second": round(simulated_hours / run.wall_seconds, 1) if run.wall_seconds else None,
            "events_received_per_second": round(int(metrics.get("EventsReceived")) / run.wall_seconds, 1)
            if run.wall_seconds
            else None,
        },
    }


def _spread(values: list[float]) -> dict[str, float | int | None]:
    return {
        "p50": round(statistics.median(values), 1) if values else None,
        "p95": round(_percentile(values, 0.95) or 0.0, 1) if values else None,
        "events": len(values),
    }


_ACCEPTED_KINDS = ("webhook", "warehouse", "duplicate", "held_back", "registration", "claim")


# What a merchant calls the things the JSON names (the JSON keeps its names: tests and tools read them).
INCIDENT_WORDS = {
    "no_first_scan": "never scanned by the carrier",
    "stalled": "no news from the carrier for too long",
    "customs_hold": "held in customs",
    "address_issue": "a problem with the address",
    "delivery_failed": "a delivery attempt failed",
    "held": "held by the carrier",
    "delayed": "running late for the promised date",
    "damaged": "damaged",
    "lost": "lost",
    "return_to_sender": "on its way back to the sender",
    "delivered_not_received": "delivered, but the customer says it never arrived",
}
OWNER_WORDS = {
    "support": "customer support",
    "ops": "operations",
    "carrier_desk": "the carrier desk",
    "warehouse": "the warehouse",
}
REQUEST_WORDS = {
    "registration": "shipments registered by the order system",
    "claim": "customer claims recorded by support",
    "webhook": "updates from carriers and tracking services",
    "warehouse": "updates from the warehouse",
    "duplicate": "the same update sent twice",
    "held_back": "updates held up for hours on the way",
    "bad_signature": "forged signature",
    "truncated_json": "cut-off message",
    "wrong_carrier": "address of a carrier we do not serve",
    "oversized": "message too large",
}


def _n(value: int) -> str:
    return f"{value:,}"


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.2f}%"


def _minutes(value: float) -> str:
    return f"{value:.0f} minutes" if value < 90 else f"{value / 60:.1f} hours"


def _listed(counts: dict[str, int], words: dict[str, str]) -> str:
    return ", ".join(f"{words.get(key, key.replace('_', ' '))} ({n})" for key, n in counts.items())


def _none_or(count: int, what: str) -> str:
    return f"{what}: none" if not count else f"{what}: {count}"


def print_summary(summary: dict[str, Any], out: TextIO, *, details: bool = False) -> None:
    """The run in a merchant's words; ``details`` adds the requests, polls and delays behind it."""
    timing = summary["timing"]
    out.write(
        f"\nSimulated {summary['days']} days in {timing['wall_seconds']} s "
        f"({timing['simulated_hours_per_second']} simulated hours a second).\n"
    )
    out.write("\nShipments by status:\n")
    for status, count in summary["shipments_by_status"].items():
        label = STATUS_LABELS.get(status, status) if status not in ("none", "unknown to Shiplight") else status
        out.write(f"  {count:>5}  {label}\n")

    out.write(
        "\nTracking updates:\n"
        f"  {_n(summary['events_received'])} received from carriers, tracking services and the warehouse; "
        f"{_n(summary['events_stored'])} were news and are on the timelines\n"
        f"  {_n(summary['duplicates_dropped'])} duplicates ignored: they repeated what Shiplight already knew\n"
        f"  {_n(summary['out_of_order_absorbed'])} late scans, received after newer ones, were put in their place "
        "on the timeline\n"
        f"  {_n(summary['readings_improved'])} scans came in again with more detail, and the fuller version was kept\n"
        f"  {_n(summary['bad_input_refused'])} forged or broken requests were refused; nothing in them was stored\n"
        f"  Shiplight asked the carriers' tracking systems {_n(summary['carrier_polls'])} times on its own, "
        f"and passed {_n(summary['changes_published'])} status changes on to your systems\n"
    )
    if summary["payloads_quarantined"]:
        out.write(
            f"  {_n(summary['payloads_quarantined'])} updates could not be read and wait for a person "
            "(`shiplight quarantine list`)\n"
        )
    if summary["unmapped_codes"]:
        codes = ", ".join(list(summary["unmapped_codes"])[:8])
        out.write(f"  Carrier codes Shiplight does not know yet: {codes}\n")

    raised = summary["exceptions_raised"]
    total = sum(raised.values())
    open_by_owner = summary["exceptions_open_by_owner"]
    still_open = sum(open_by_owner.values())
    resolved_otherwise = total - summary["exceptions_auto_resolved"] - still_open
    out.write("\nExceptions (parcels that need a look):\n")
    out.write(f"  {total} raised" + (f": {_listed(raised, INCIDENT_WORDS)}" if raised else "") + "\n")
    if total:
        out.write(
            f"  {summary['exceptions_auto_resolved']} cleared when the parcel moved on (nobody had to act)"
            + (f"; {resolved_otherwise} resolved by people" if resolved_otherwise else "")
            + f"; {still_open} still open"
            + (f", waiting for {_listed(open_by_owner, OWNER_WORDS)}" if still_open else "")
            + "\n"
        )

    evaluation = summary.get("evaluation")
    if evaluation:
        out.write(
            "\nAccuracy, checked against what really happened:\n"
            f"  {_pct(evaluation['milestone_accuracy'])} of {_n(evaluation['events_expected'])} carrier scans are on "
            f"the timelines with the right meaning and time; {_pct(evaluation['status_accuracy'])} of shipments "
            f"show the right status\n"
            f"  {_none_or(evaluation['duplicates_stored'], 'updates stored twice')}; "
            f"{_none_or(evaluation['forged_stored'], 'forged or broken updates stored')}\n"
        )
    overall = summary.get("latency_minutes_overall") or {}
    if overall.get("events"):
        out.write(
            f"  Scans reached Shiplight {_minutes(overall['p50'])} after they happened (median; 95% within "
            f"{_minutes(overall['p95'])})\n"
        )
    if details:
        print_details(summary, out)


def print_details(summary: dict[str, Any], out: TextIO) -> None:
    """What is behind the plain summary: requests per kind, polls, sources and delays per carrier."""
    out.write(f"\nRequests sent ({_n(summary['requests_sent'])}), and how they were answered:\n")
    for kind, codes in summary["answers"].items():
        answered = ", ".join(f"HTTP {code} x{n}" for code, n in codes.items())
        out.write(f"  {REQUEST_WORDS.get(kind, kind):<45} {answered}\n")
    out.write(
        f"\nPolling: {_n(summary['carrier_polls'])} carrier API calls in {_n(summary['poller_runs'])} runs of the "
        f"poller; {_n(summary['poll_answers_unchanged'])} answers said nothing new and were not read again\n"
        "Kept per source: " + ", ".join(f"{s} {n}" for s, n in summary["events_per_source"].items()) + "\n"
    )
    unmapped = summary["unmapped_codes"]
    if unmapped:
        out.write(
            "Unknown carrier codes: " + ", ".join(f"{code} x{n}" for code, n in list(unmapped.items())[:8]) + "\n"
        )
    out.write("\nDelay from a scan to Shiplight receiving it (minutes):\n")
    for carrier, row in summary["latency_minutes"].items():
        out.write(f"  {carrier:<12} median {row['p50']:>7}  95% within {row['p95']:>8}  ({row['events']} scans)\n")
