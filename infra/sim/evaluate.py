"""``shiplight evaluate``: score what Shiplight stored against a simulator run's ground truth.

Every true scan (and warehouse event) is matched to at most one stored event of the same
tracking number — closest instant first, a stored event with the right milestone preferred
at equal distance — within a day either way (a wrong time zone is a timestamp error, not a
missing event). From the matching:

* **milestone accuracy**: matched with the truth's canonical milestone ÷ scans expected; a scan
  is expected once it happened at least ``settle`` before the end of the run (every sender has
  reported it by then); younger scans and scans a scenario dropped on purpose count when stored
  and are not missed when not. Some formats cannot say everything (DHL's only codes are
  transit/delivered/failure; AfterShip's departure scan is any facility's): **milestone accuracy
  as expressible** counts a reading as right when it is one the reporting source's format can
  carry for that scan (the payload builders' ``RENDERS``), which isolates Shiplight's own errors
  from the formats' limits. Both are reported;
* **status accuracy**: the stored status equals the status the canonical model's rules (docs/sources.md) give over the
  scans known at the end (walked here independently of Shiplight's code);
* **timestamp errors**: stored instant minus true instant, per carrier;
* **duplicates stored**: stored events matching no true scan (a second copy of a scan, or an
  event nothing happened for);
* **forged stored**: stored events matching a scan that only refused requests (bad signature,
  truncated, wrong path, oversized) carried — must be 0;
* **detection**, per exception type: precision and recall of the exceptions Shiplight raised
  against the incidents of the truth, per shipment. Carrier-reported incidents count once their
  scan is ``settle`` old; a delivered-not-received claim once it was made. Silences are judged by
  the merchant's silence rules applied to the true scans: a gap longer than the rule's business-
  hours threshold plus the longest grace (one poll cycle) must be raised, a gap shorter than the
  threshold must not; a gap in between depends on how the parcel was polled and is not scored.
  A lane is cross-border when its two ends are in different countries (the registered lane, as
  Shiplight's rules read it); a loss ends the rules, as reported only where a format can say it.
  ``max_delay_minutes`` is the longest time from an exception's deadline (its cause: the silence
  deadline, the carrier's scan, the claim) to when Shiplight raised it.
"""

from __future__ import annotations

import importlib
import json
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from infra.formats.scan import CANONICAL, Reading
from shared.logic.incidents.silence import Rule, silence_deadline
from shared.models.canonical import RANK, REOPEN_TRANSITIONS, Milestone
from shared.sources import get_source

CARRIER_TYPES = (
    "customs_hold",
    "address_issue",
    "delivery_failed",
    "held",
    "delayed",
    "damaged",
    "lost",
    "return_to_sender",
)
SILENCE_GRACE_MAX = timedelta(hours=7)  # one poll cycle before the first scan (6 h) with jitter
TERMINAL = {"delivered", "return_delivered", "lost"}
MATCH_WINDOW = timedelta(hours=26)
SETTLE = timedelta(hours=24)
WAREHOUSE_MILESTONES = {"packed": "label_created", "handed_to_carrier": "picked_up"}


@dataclass
class _Truth:
    tracking_number: str
    carrier: str
    at: datetime
    milestone: str | None
    exception: str | None
    expected: bool
    kind: str  # the simulator's scan kind, or "warehouse"


@cache
def _renders(source: str) -> dict[str, set[Reading]]:
    try:
        module = importlib.import_module(f"infra.formats.{source}")
    except ImportError:
        return {}
    return dict(getattr(module, "RENDERS", {}))


def _expressible(truth: _Truth, event: dict[str, Any]) -> bool:
    """The stored reading is the truth's, or one the reporting source's format can only give."""
    if event["milestone"] == truth.milestone:
        return True
    readings = _renders(event["source"]).get(truth.kind, set())
    return any((m.value if m else None) == event["milestone"] for m, _ in readings)


@dataclass
class _Tally:
    expected: int = 0
    matched: int = 0
    milestone_correct: int = 0
    expressible_correct: int = 0
    exception_correct: int = 0
    duplicates: int = 0
    errors_seconds: list[float] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        errors = sorted(abs(e) for e in self.errors_seconds)
        return {
            "events_expected": self.expected,
            "events_matched": self.matched,
            "milestone_accuracy": _ratio(self.milestone_correct, self.expected),
            "milestone_accuracy_expressible": _ratio(self.expressible_correct, self.expected),
            "exception_accuracy": _ratio(self.exception_correct, self.expected),
            "duplicates_stored": self.duplicates,
            "timestamp_error_minutes": {
                "p50": round(statistics.median(errors) / 60, 2) if errors else None,
                "p95": round(errors[int(0.95 * (len(errors) - 1))] / 60, 2) if errors else None,
                "max": round(errors[-1] / 60, 2) if errors else None,
                "within_one_minute": _ratio(sum(e < 60 for e in errors), len(errors)),
            },
        }


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def read_lines(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def _truths(shipment: dict[str, Any], end: datetime) -> list[_Truth]:
    legs = shipment["legs"]
    dropped = set(shipment.get("dropped_scans", []))
    out = []
    for index, scan in enumerate(shipment["scans"]):
        at = _instant(scan["at"])
        if at > end:
            continue
        milestone, exception = CANONICAL[scan["kind"]]
        leg = legs[scan["leg"]]
        expected = at <= end - SETTLE and index not in dropped
        out.append(
            _Truth(
                leg["tracking_number"],
                leg["carrier"],
                at,
                milestone.value if milestone else None,
                exception.value if exception else None,
                expected,
                scan["kind"],
            )
        )
    first = legs[0]
    for event in shipment.get("warehouse_events", []):
        at = _instant(event["at"])
        if at <= end:
            code = WAREHOUSE_MILESTONES[event["code"]]
            out.append(
                _Truth(first["tracking_number"], first["carrier"], at, code, None, at <= end - SETTLE, "warehouse")
            )
    return out


def _match(truths: list[_Truth], stored: list[dict[str, Any]]) -> dict[int, int]:
    """truth index → stored index, one to one, closest first."""
    pairs = []
    for ti, truth in enumerate(truths):
        for si, event in enumerate(stored):
            if event["tracking_number"] != truth.tracking_number:
                continue
            delta = abs((_instant(event["occurred_at"]) - truth.at).total_seconds())
            if delta <= MATCH_WINDOW.total_seconds():
                same = event["milestone"] == truth.milestone and event["exception"] == truth.exception
                pairs.append((delta // 60, not same, delta, ti, si))
    pairs.sort()
    taken_t: dict[int, int] = {}
    taken_s: set[int] = set()
    for _, _, _, ti, si in pairs:
        if ti not in taken_t and si not in taken_s:
            taken_t[ti] = si
            taken_s.add(si)
    return taken_t


def true_status(milestones: list[tuple[datetime, str]]) -> str | None:
    """The canonical status rules (docs/sources.md), walked over the milestones in instant order (ties by rank)."""
    status: Milestone | None = None
    for _, code in sorted(milestones, key=lambda m: (m[0], RANK[Milestone(m[1])])):
        reached = Milestone(code)
        if status is None or reached.rank >= status.rank or (status, reached) in REOPEN_TRANSITIONS:
            status = reached
    return status.value if status else None


def evaluate(truth_lines: list[dict[str, Any]], stored_lines: list[dict[str, Any]]) -> dict[str, Any]:
    header = next(line for line in truth_lines if line.get("type") == "run")
    end = _instant(header["end"])
    stored_by_sim = {line["sim_id"]: line for line in stored_lines}
    totals = _Tally()
    per_carrier: dict[str, _Tally] = defaultdict(_Tally)
    status_right = status_counted = forged_stored = 0
    status_confusion: dict[str, int] = defaultdict(int)
    for shipment in (line for line in truth_lines if line.get("type") == "shipment"):
        truths = _truths(shipment, end)
        stored_line = stored_by_sim.get(shipment["sim_id"])
        stored = stored_line["events"] if stored_line else []
        matched = _match(truths, stored)
        for ti, truth in enumerate(truths):
            si = matched.get(ti)
            for tally in (totals, per_carrier[truth.carrier]):
                if truth.expected:
                    tally.expected += 1
                if si is None:
                    continue
                event = stored[si]
                if truth.expected:
                    tally.matched += 1
                    tally.milestone_correct += event["milestone"] == truth.milestone
                    tally.expressible_correct += _expressible(truth, event)
                    tally.exception_correct += event["exception"] == truth.exception
                tally.errors_seconds.append((_instant(event["occurred_at"]) - truth.at).total_seconds())
        unmatched = set(range(len(stored))) - set(matched.values())
        for si in unmatched:
            carrier = stored[si]["carrier"]
            totals.duplicates += 1
            per_carrier[carrier].duplicates += 1
        for forged in shipment.get("forged", []):
            at = _instant(forged["at"])
            forged_stored += sum(
                1
                for si in unmatched
                if stored[si]["tracking_number"] == forged["tracking_number"]
                and abs((_instant(stored[si]["occurred_at"]) - at).total_seconds()) < 60
            )
        known = [(t.at, t.milestone) for ti, t in enumerate(truths) if t.milestone and (t.expected or ti in matched)]
        expected_status = true_status(known)
        if expected_status is None and stored_line is None:
            continue  # nothing happened that Shiplight could know of
        status_counted += 1
        actual = stored_line["shipment"]["status"] if stored_line else None
        if actual == expected_status:
            status_right += 1
        else:
            status_confusion[f"{expected_status} → {actual}"] += 1
    result = totals.as_dict()
    detection = _detection(truth_lines, stored_by_sim, end)
    detection_as_reported = _detection(truth_lines, stored_by_sim, end, as_reported=True)
    return {
        "milestone_accuracy": result["milestone_accuracy"],
        "milestone_accuracy_expressible": result["milestone_accuracy_expressible"],
        "exception_accuracy": result["exception_accuracy"],
        "status_accuracy": _ratio(status_right, status_counted),
        "duplicates_stored": totals.duplicates,
        "forged_stored": forged_stored,
        "events_expected": totals.expected,
        "events_matched": totals.matched,
        "timestamp_error_minutes": result["timestamp_error_minutes"],
        "status_mismatches": dict(sorted(status_confusion.items(), key=lambda kv: -kv[1])),
        "per_carrier": {carrier: tally.as_dict() for carrier, tally in sorted(per_carrier.items())},
        "detection": detection,
        "detection_as_reported": detection_as_reported,
    }


def _cross_border(shipment: dict[str, Any]) -> bool:
    """The lane crosses a border: its two ends are in different countries (the merchant's
    rule, as registered); a truth written before it named the ends falls back on the lane."""
    ends = [(shipment.get(end) or {}).get("country") for end in ("origin", "destination")]
    if all(ends):
        return ends[0] != ends[1]
    return bool(shipment["lane"].startswith("cn_"))


def _silences(shipment: dict[str, Any], end: datetime, *, as_reported: bool = False) -> tuple[set[str], set[str]]:
    """(silence types that must be raised, those whose outcome depends on the grace).

    A loss ends the silence rules (a lost parcel is not also stalled) — against the truth
    always, and ``as_reported`` only when a reporting format can say "lost": FedEx's "package
    not located" reads as a hold, DHL's as a failed delivery, and the rules run on after those."""
    must: set[str] = set()
    maybe: set[str] = set()
    dropped = set(shipment.get("dropped_scans", []))
    scans = [s for i, s in enumerate(shipment["scans"]) if i not in dropped and _instant(s["at"]) <= end]
    handed = [_instant(e["at"]) for e in shipment.get("warehouse_events", []) if e["code"] == "handed_to_carrier"]
    moves = sorted([_instant(s["at"]) for s in scans if s["kind"] != "label_created"] + handed)

    def judge(kind: str, anchor: datetime, rule: Rule, country: str | None, tz: str | None, until: datetime) -> None:
        deadline = silence_deadline(anchor, rule, country=country, tz=ZoneInfo(tz) if tz else None)
        if until > deadline + SILENCE_GRACE_MAX:
            must.add(kind)
        elif until > deadline:
            maybe.add(kind)

    label_at = _instant(shipment["label_at"])
    first = moves[0] if moves else end
    origin = shipment["scans"][0]["place"] or {}
    judge("no_first_scan", label_at, Rule.LABEL, origin.get("country"), origin.get("tz"), min(first, end))
    cross_border = _cross_border(shipment)
    in_customs = False
    carrier_scans = [s for s in scans if s["kind"] != "label_created"]
    for index, scan in enumerate(carrier_scans):
        kind = scan["kind"]
        in_customs = (in_customs or kind in ("customs_started", "customs_hold")) and kind != "customs_cleared"
        if kind in TERMINAL and (
            kind != "lost" or not as_reported or "lost" in _reported_as(shipment, kind, _instant(scan["at"]))
        ):
            break
        following = carrier_scans[index + 1 :]
        until = _instant(following[0]["at"]) if following else end
        place = scan["place"] or {}
        rule = Rule.CUSTOMS if in_customs else Rule.CROSS_BORDER if cross_border else Rule.DOMESTIC
        judge("stalled", _instant(scan["at"]), rule, place.get("country"), place.get("tz"), until)
    return must, maybe - must


def _reported_as(shipment: dict[str, Any], incident: str, at: datetime) -> set[str]:
    """The exception types the sources that report an incident's scan can give it: the true
    type when one of their formats can say it, else what they say instead (USPS has no damage
    code and reports the parcel as delayed; DHL's returns arrive as failed deliveries), or
    nothing when no format can tell (the builders' ``RENDERS``)."""
    scan = next((s for s in shipment["scans"] if _instant(s["at"]) == at and CANONICAL[s["kind"]][1]), None)
    if scan is None:
        return {incident}
    kind, carrier = scan["kind"], shipment["legs"][scan["leg"]]["carrier"]
    sources = {shipment.get("push"), *shipment.get("polled", [])} - {None}
    carried: set[str] = set()
    for source in sources:
        if source != carrier and get_source(str(source)).kind != "aggregator":
            continue  # a carrier's API knows only its own leg
        readings = _renders(str(source)).get(kind) or {CANONICAL[kind]}
        carried |= {exception.value for _, exception in readings if exception}
    return {incident} if incident in carried else carried


def _detection(
    truth_lines: list[dict[str, Any]],
    stored_by_sim: dict[str, dict[str, Any]],
    end: datetime,
    *,
    as_reported: bool = False,
) -> dict[str, dict[str, Any]]:
    """Precision, recall and delay per exception type: against the true incidents, or
    (``as_reported``) against what the reporting formats can say of them."""
    counts: dict[str, dict[str, int]] = defaultdict(lambda: {"tp": 0, "fp": 0, "fn": 0})
    delays: dict[str, list[float]] = defaultdict(list)
    for shipment in (line for line in truth_lines if line.get("type") == "shipment"):
        stored = stored_by_sim.get(shipment["sim_id"])
        raised = stored.get("exceptions", []) if stored else []
        must, maybe = _silences(shipment, end, as_reported=as_reported)
        for incident in shipment["incidents"]:
            at = _instant(incident["at"])
            if incident["type"] not in CARRIER_TYPES or at > end:
                continue
            types = _reported_as(shipment, incident["type"], at) if as_reported else {incident["type"]}
            (must if at <= end - SETTLE else maybe).update(types)
        if shipment.get("claim_at") and _instant(shipment["claim_at"]) <= end:
            must.add("delivered_not_received")
        kinds = {e["type"] for e in raised}
        for kind in must | kinds:
            if kind in must and kind in kinds:
                counts[kind]["tp"] += 1
            elif kind in must:
                counts[kind]["fn"] += 1
            elif kind not in maybe:
                counts[kind]["fp"] += 1
        for exception in raised:  # from when Shiplight could know: the report's arrival, or the deadline
            known = exception.get("cause_received_at") or exception["cause_at"]
            delays[exception["type"]].append((_instant(exception["raised_at"]) - _instant(known)).total_seconds() / 60)
    return {
        kind: {
            "precision": _ratio(c["tp"], c["tp"] + c["fp"]),
            "recall": _ratio(c["tp"], c["tp"] + c["fn"]),
            "true_positives": c["tp"],
            "false_positives": c["fp"],
            "missed": c["fn"],
            "max_delay_minutes": round(max(delays[kind]), 1) if delays[kind] else None,
        }
        for kind, c in sorted(counts.items())
    }


def print_report(report: dict[str, Any], out: Any) -> None:
    def pct(value: float | None) -> str:
        return "—" if value is None else f"{value * 100:.2f}%"

    out.write(
        f"Milestone accuracy {pct(report['milestone_accuracy'])} over {report['events_expected']} expected scans "
        f"({report['events_matched']} matched); {pct(report['milestone_accuracy_expressible'])} of readings are "
        f"what the reporting format can say; exception accuracy {pct(report['exception_accuracy'])}\n"
        f"Status accuracy at the end of the run {pct(report['status_accuracy'])}; duplicates stored "
        f"{report['duplicates_stored']}; forged or malformed deliveries stored {report['forged_stored']}\n"
    )
    header = (
        f"  {'carrier':<12} {'expected':>8} {'matched':>8} {'milestone':>10} {'dups':>5} {'ts p50':>7} {'ts max':>7}"
    )
    out.write(header + "  (timestamp error, minutes)\n")
    for carrier, row in report["per_carrier"].items():
        ts = row["timestamp_error_minutes"]
        out.write(
            f"  {carrier:<12} {row['events_expected']:>8} {row['events_matched']:>8} "
            f"{pct(row['milestone_accuracy']):>10} {row['duplicates_stored']:>5} "
            f"{'—' if ts['p50'] is None else ts['p50']:>7} {'—' if ts['max'] is None else ts['max']:>7}\n"
        )
    for mismatch, count in list(report["status_mismatches"].items())[:5]:
        out.write(f"  status {mismatch}: {count}\n")
    if report.get("detection"):
        reported = report.get("detection_as_reported", {})
        out.write(
            f"  {'':<24} {'against the truth':^34}  {'as the carriers reported it':^29}\n"
            f"  {'exception':<24} {'precision':>9} {'recall':>7} {'raised':>6} {'missed':>6}  "
            f"{'precision':>9} {'recall':>7} {'missed':>6}  {'max delay':>10}\n"
        )
        for kind in sorted({*report["detection"], *reported}):
            row = report["detection"].get(kind) or {}
            seen = reported.get(kind) or {}
            delay = (row or seen).get("max_delay_minutes")
            out.write(
                f"  {kind:<24} {pct(row.get('precision')):>9} {pct(row.get('recall')):>7} "
                f"{row.get('true_positives', 0) + row.get('false_positives', 0):>6} {row.get('missed', 0):>6}  "
                f"{pct(seen.get('precision')):>9} {pct(seen.get('recall')):>7} {seen.get('missed', 0):>6}  "
                f"{'—' if delay is None else f'{delay} min':>10}\n"
            )
