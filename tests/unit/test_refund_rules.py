"""The refund and claim rules as a table of cases (shared/logic/refunds/rules.py, shared/config/refunds.toml).

Every case is a parcel's timeline, what the merchant registered and the time of the question;
the answer is what a merchant's support agent sees: allow/deny/wait, the reason code, when a
``wait`` turns into ``allow``, and the events the decision rests on. Thresholds are the real
silence rules (business hours, US/CA public holidays from the ``holidays`` package).

Calendar used below (November 2026, US Eastern -05:00): Mon 2, Fri 6, Tue 10, Wed 11 is
Veterans Day, Thu 26 is Thanksgiving.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from shared.adapters import load_adapter
from shared.adapters.base import CodeMapping, ResolvedTime, build_event, location
from shared.config import OVERRIDES_VARIABLE, PolicyError, merge, policy
from shared.logic.incidents.playbooks import playbooks
from shared.logic.incidents.silence import BusinessThresholds, plan_silence, silence_config
from shared.logic.refunds.rules import (
    Decision,
    OpenException,
    Reason,
    RefundRules,
    ShipmentFacts,
    contact_support_after,
    decide_refund,
    refund_rules,
)
from shared.models.canonical import IncidentType, Milestone, TimeSource
from shared.models.parties import Address
from shared.models.shipment import Shipment, StoredEvent
from tests.conftest import event_bytes

M, X = Milestone, IncidentType
DNR = IncidentType.DELIVERED_NOT_RECEIVED


def scan(
    name: str,
    local: str,
    milestone: Milestone | None = None,
    exception: IncidentType | None = None,
    *,
    country: str = "US",
    region: str = "NY",
    raw_code: str | None = None,
    source: str = "ups",
) -> StoredEvent:
    """A stored event at local wall time ``local`` (with its offset); ``name`` is its description."""
    local_time = datetime.fromisoformat(local)
    event = build_event(
        carrier="ups",
        tracking_number="1Z999AA10123456784",
        mapping=CodeMapping(milestone=milestone, exception=exception),
        when=ResolvedTime(local_time.astimezone(UTC), local_time, TimeSource.CARRIER_OFFSET),
        place=location(city="SOMEWHERE", region=region, country=country),
        description=name,
        raw_code=raw_code or (milestone.value if milestone else (exception.value if exception else "note")),
        received_at=local_time.astimezone(UTC) + timedelta(minutes=3),
    )
    return StoredEvent(event=event, source=source)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass
class Case:
    timeline: list[StoredEvent]
    now: str
    decision: Decision
    reason: Reason
    earliest_at: str | None = None
    evidence: list[str] = field(default_factory=list)  # descriptions of the evidence events
    status: Milestone | None = None  # None: derived from the timeline
    claim: bool = False  # an open delivered-not-received claim
    lane: tuple[str, str] | None = ("US", "US")
    promised: date | None = None
    label_created_at: str | None = None
    rules: dict[str, Any] = field(default_factory=dict)  # overrides of refunds.toml


def rules_with(changes: dict[str, Any]) -> RefundRules:
    return RefundRules.model_validate(merge(policy("refunds"), changes))


def facts(case: Case) -> ShipmentFacts:
    origin, destination = case.lane or (None, None)
    return ShipmentFacts(
        status=case.status,
        timeline=case.timeline,
        now=utc(case.now),
        open_exceptions=[OpenException(DNR, utc(case.now) - timedelta(hours=1), "exc_claim")] if case.claim else [],
        origin_country=origin,
        destination_country=destination,
        promised_date=case.promised,
        label_created_at=utc(case.label_created_at) if case.label_created_at else None,
        created_at=utc("2026-11-01T12:00:00Z"),
        time_zone="America/New_York",
    )


# A domestic journey (New York, -05:00) to reuse.
PICKED_MON = scan("picked up Monday", "2026-11-02T10:00:00-05:00", M.PICKED_UP)
HUB_MON = scan("hub Monday evening", "2026-11-02T20:00:00-05:00", M.ARRIVED_HUB)
DELIVERED_MON = scan("delivered Monday", "2026-11-02T10:00:00-05:00", M.DELIVERED)
LABEL_FRI = scan("label Friday evening", "2026-11-06T18:00:00-05:00", M.LABEL_CREATED)
PICKED_FRI = scan("picked up Friday evening", "2026-11-06T18:00:00-05:00", M.PICKED_UP)

CASES = {
    # -- 1. returns: refunded once back with the sender or the warehouse -------------------
    "return delivered by the carrier": Case(
        [
            PICKED_MON,
            scan("returning", "2026-11-03T09:00:00-05:00", M.RETURN_STARTED, X.RETURN_TO_SENDER),
            scan("back at the sender", "2026-11-05T11:00:00-05:00", M.RETURN_DELIVERED),
        ],
        now="2026-11-05T17:00:00Z",
        decision=Decision.ALLOW,
        reason=Reason.RETURN_RECEIVED,
        evidence=["back at the sender"],
    ),
    "return received by the warehouse (generic receipt scan)": Case(
        [
            DELIVERED_MON,
            scan("returning", "2026-11-04T09:00:00-05:00", M.RETURN_STARTED),
            scan("dock receipt", "2026-11-09T08:30:00-05:00", M.RETURN_DELIVERED, source="generic"),
        ],
        now="2026-11-09T14:00:00Z",
        decision=Decision.ALLOW,
        reason=Reason.RETURN_RECEIVED,
        evidence=["dock receipt"],
    ),
    "return still on its way back": Case(
        [DELIVERED_MON, scan("returning", "2026-11-04T09:00:00-05:00", M.RETURN_STARTED, X.RETURN_TO_SENDER)],
        now="2026-11-20T12:00:00Z",
        decision=Decision.WAIT,
        reason=Reason.RETURN_IN_TRANSIT,
        evidence=["returning"],
    ),
    # -- 2. lost: refunded at once, even before a first scan, unless found again --------------
    "declared lost in transit": Case(
        [PICKED_MON, scan("lost", "2026-11-04T12:00:00-05:00", None, X.LOST)],
        now="2026-11-04T18:00:00Z",
        decision=Decision.ALLOW,
        reason=Reason.CARRIER_CONFIRMED_LOST,
        evidence=["lost"],
    ),
    "declared lost before any scan": Case(
        [LABEL_FRI, scan("lost at pickup", "2026-11-09T12:00:00-05:00", None, X.LOST)],
        now="2026-11-09T18:00:00Z",
        decision=Decision.ALLOW,
        reason=Reason.CARRIER_CONFIRMED_LOST,
        evidence=["lost at pickup"],
    ),
    "declared lost, then scanned again": Case(
        [
            PICKED_MON,
            scan("lost", "2026-11-03T12:00:00-05:00", None, X.LOST),
            scan("found at hub", "2026-11-04T10:00:00-05:00", M.ARRIVED_HUB),
        ],
        now="2026-11-04T16:00:00Z",
        decision=Decision.WAIT,
        reason=Reason.MOVING,
        earliest_at="2026-11-06T15:00:00Z",  # 48 business hours after the hub scan
        evidence=["found at hub"],
    ),
    # -- 3. damaged: refunded, the damage scan is the evidence ------------------------------
    "damaged in transit": Case(
        [PICKED_MON, scan("crushed", "2026-11-03T07:00:00-05:00", None, X.DAMAGED)],
        now="2026-11-03T13:00:00Z",
        decision=Decision.ALLOW,
        reason=Reason.CARRIER_REPORTED_DAMAGE,
        evidence=["crushed"],
    ),
    "damaged, then delivered anyway": Case(
        [
            PICKED_MON,
            scan("crushed", "2026-11-03T07:00:00-05:00", M.ARRIVED_HUB, X.DAMAGED),
            scan("delivered", "2026-11-04T14:00:00-05:00", M.DELIVERED),
        ],
        now="2026-11-04T20:00:00Z",
        decision=Decision.ALLOW,
        reason=Reason.CARRIER_REPORTED_DAMAGE,
        evidence=["crushed"],
    ),
    # -- 5. delivered: only a not-received claim, only N days after delivery ---------------
    "delivered, no claim": Case(
        [PICKED_MON, scan("delivered", "2026-11-03T14:00:00-05:00", M.DELIVERED)],
        now="2026-11-10T12:00:00Z",
        decision=Decision.DENY,
        reason=Reason.DELIVERED,
        evidence=["delivered"],
    ),
    "claim one minute before the window": Case(
        [DELIVERED_MON],
        now="2026-11-04T14:59:00Z",
        claim=True,
        decision=Decision.WAIT,
        reason=Reason.CLAIM_TOO_EARLY,
        earliest_at="2026-11-04T15:00:00Z",  # 2 calendar days after 15:00Z Monday
        evidence=["delivered Monday"],
    ),
    "claim when the window opens": Case(
        [DELIVERED_MON],
        now="2026-11-04T15:00:00Z",
        claim=True,
        decision=Decision.ALLOW,
        reason=Reason.CLAIM_WINDOW_PASSED,
        evidence=["delivered Monday"],
    ),
    "claim window in business days skips the weekend": Case(
        [scan("delivered Friday", "2026-11-06T10:00:00-05:00", M.DELIVERED)],
        now="2026-11-09T15:00:00Z",  # three calendar days later, one business day
        claim=True,
        rules={"delivered_not_received": {"business_days": True}},
        decision=Decision.WAIT,
        reason=Reason.CLAIM_TOO_EARLY,
        earliest_at="2026-11-10T15:00:00Z",
        evidence=["delivered Friday"],
    ),
    "claim window of 3 days (merchant's setting)": Case(
        [DELIVERED_MON],
        now="2026-11-04T15:00:00Z",
        claim=True,
        rules={"delivered_not_received": {"days": 3}},
        decision=Decision.WAIT,
        reason=Reason.CLAIM_TOO_EARLY,
        earliest_at="2026-11-05T15:00:00Z",
        evidence=["delivered Monday"],
    ),
    # -- 6. no first scan: no refund unless the carrier confirms a cancellation ------------
    "label only, weeks later": Case(
        [LABEL_FRI],
        now="2026-12-01T12:00:00Z",
        decision=Decision.DENY,
        reason=Reason.NO_FIRST_SCAN,
        evidence=["label Friday evening"],
    ),
    "registered, nothing from any carrier": Case(
        [],
        now="2026-11-20T12:00:00Z",
        label_created_at="2026-11-06T23:00:00Z",
        decision=Decision.DENY,
        reason=Reason.NO_FIRST_SCAN,
    ),
    "warehouse packed it, no carrier scan": Case(
        [scan("packed", "2026-11-02T09:00:00-05:00", M.LABEL_CREATED, raw_code="packed", source="generic")],
        now="2026-11-20T12:00:00Z",
        decision=Decision.DENY,
        reason=Reason.NO_FIRST_SCAN,
        evidence=["packed"],
    ),
    "carrier confirms the shipment cancelled (AfterShip Exception_020)": Case(
        [LABEL_FRI, scan("cancelled", "2026-11-09T09:00:00-05:00", raw_code="Exception/Exception_020")],
        now="2026-11-09T15:00:00Z",
        decision=Decision.ALLOW,
        reason=Reason.CARRIER_CONFIRMED_CANCELLED,
        evidence=["cancelled"],
    ),
    "a cancellation code the merchant removed": Case(
        [LABEL_FRI, scan("cancelled", "2026-11-09T09:00:00-05:00", raw_code="Exception/Exception_020")],
        now="2026-11-09T15:00:00Z",
        rules={"before_first_scan": {"cancellation_codes": ["Exception_Cancel/*"]}},
        decision=Decision.DENY,
        reason=Reason.NO_FIRST_SCAN,
        evidence=["label Friday evening"],
    ),
    # -- 7. moving: refunded only once silent past the silence threshold -------------------
    "domestic, one minute before 48 business hours": Case(
        [PICKED_MON],
        now="2026-11-04T14:59:00Z",
        decision=Decision.WAIT,
        reason=Reason.MOVING,
        earliest_at="2026-11-04T15:00:00Z",
        evidence=["picked up Monday"],
    ),
    "domestic, at 48 business hours": Case(
        [PICKED_MON],
        now="2026-11-04T15:00:00Z",
        decision=Decision.ALLOW,
        reason=Reason.STALLED,
        evidence=["picked up Monday"],
    ),
    "Friday evening scan: the weekend does not count": Case(
        [PICKED_FRI],
        now="2026-11-09T23:00:00Z",  # 72 calendar hours later, 30 business hours
        decision=Decision.WAIT,
        reason=Reason.MOVING,
        earliest_at="2026-11-10T23:00:00Z",  # Tuesday 18:00 New York
        evidence=["picked up Friday evening"],
    ),
    "Friday evening scan, Tuesday evening": Case(
        [PICKED_FRI],
        now="2026-11-10T23:00:00Z",
        decision=Decision.ALLOW,
        reason=Reason.STALLED,
        evidence=["picked up Friday evening"],
    ),
    "Thanksgiving does not count": Case(
        [scan("hub before Thanksgiving", "2026-11-25T12:00:00-05:00", M.ARRIVED_HUB)],
        now="2026-11-27T17:00:00Z",  # 48 calendar hours later
        decision=Decision.WAIT,
        reason=Reason.MOVING,
        earliest_at="2026-11-30T17:00:00Z",  # Wed 12 h + Fri 24 h + Mon 12 h
        evidence=["hub before Thanksgiving"],
    ),
    "Veterans Day does not count": Case(
        [scan("hub Tuesday noon", "2026-11-10T12:00:00-05:00", M.ARRIVED_HUB)],
        now="2026-11-12T17:00:00Z",
        decision=Decision.WAIT,
        reason=Reason.MOVING,
        earliest_at="2026-11-13T17:00:00Z",
        evidence=["hub Tuesday noon"],
    ),
    "the last of several scans counts": Case(
        [PICKED_MON, HUB_MON],
        now="2026-11-04T15:00:00Z",
        decision=Decision.WAIT,
        reason=Reason.MOVING,
        earliest_at="2026-11-05T01:00:00Z",
        evidence=["hub Monday evening"],
    ),
    "a late older scan does not restart the count": Case(
        [HUB_MON, PICKED_MON],  # arrival order: the pickup scan came in last
        now="2026-11-05T01:00:00Z",
        decision=Decision.ALLOW,
        reason=Reason.STALLED,
        evidence=["hub Monday evening"],
    ),
    "a carrier's delay notice is news: it restarts the count": Case(
        [PICKED_MON, scan("weather delay", "2026-11-03T10:00:00-05:00", None, X.DELAYED)],
        now="2026-11-04T15:00:00Z",
        decision=Decision.WAIT,
        reason=Reason.MOVING,
        earliest_at="2026-11-05T15:00:00Z",
        evidence=["weather delay"],
    ),
    "cross-border lane: 72 business hours": Case(
        [PICKED_MON],
        lane=("US", "CA"),
        now="2026-11-04T15:00:00Z",
        decision=Decision.WAIT,
        reason=Reason.MOVING,
        earliest_at="2026-11-05T15:00:00Z",
        evidence=["picked up Monday"],
    ),
    "unregistered, scans in two countries: cross-border": Case(
        [PICKED_MON, scan("export hub", "2026-11-02T14:00:00-05:00", M.ARRIVED_HUB, country="CA", region="ON")],
        lane=None,
        now="2026-11-04T19:00:00Z",
        decision=Decision.WAIT,
        reason=Reason.MOVING,
        earliest_at="2026-11-05T19:00:00Z",
        evidence=["export hub"],
    ),
    "in customs: 96 business hours": Case(
        [
            PICKED_MON,
            scan("presented to customs", "2026-11-02T10:00:00-05:00", M.CUSTOMS_STARTED, country="CA", region="ON"),
        ],
        lane=("US", "CA"),
        now="2026-11-05T15:00:00Z",
        decision=Decision.WAIT,
        reason=Reason.MOVING,
        earliest_at="2026-11-06T15:00:00Z",
        evidence=["presented to customs"],
    ),
    "extra business days before a stalled refund (merchant's setting)": Case(
        [PICKED_MON],
        now="2026-11-04T15:00:00Z",
        rules={"stalled": {"extra_business_days": 1}},
        decision=Decision.WAIT,
        reason=Reason.MOVING,
        earliest_at="2026-11-05T15:00:00Z",
        evidence=["picked up Monday"],
    ),
    "late rule off by default: a moving parcel past its promise waits": Case(
        [scan("hub Tuesday noon", "2026-11-10T12:00:00-05:00", M.ARRIVED_HUB)],
        promised=date(2026, 11, 3),
        now="2026-11-11T05:00:00Z",
        decision=Decision.WAIT,
        reason=Reason.MOVING,
        earliest_at="2026-11-13T17:00:00Z",
        evidence=["hub Tuesday noon"],
    ),
    "late rule on: 5 business days after the promised day": Case(
        [scan("hub Tuesday noon", "2026-11-10T12:00:00-05:00", M.ARRIVED_HUB)],
        promised=date(2026, 11, 3),
        rules={"late": {"enabled": True}},
        now="2026-11-11T05:00:00Z",  # the promised day ended Wed 4 00:00 New York; + Wed Thu Fri Mon Tue
        decision=Decision.ALLOW,
        reason=Reason.LATE,
        evidence=["hub Tuesday noon"],
    ),
    "late rule on, one minute early": Case(
        [scan("hub Tuesday noon", "2026-11-10T12:00:00-05:00", M.ARRIVED_HUB)],
        promised=date(2026, 11, 3),
        rules={"late": {"enabled": True}},
        now="2026-11-11T04:59:00Z",
        decision=Decision.WAIT,
        reason=Reason.MOVING,
        earliest_at="2026-11-11T05:00:00Z",
        evidence=["hub Tuesday noon"],
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_refund_decision(case: Case) -> None:
    # Given a parcel's timeline, its registration and the merchant's rules
    rules = rules_with(case.rules)
    # When support asks whether to refund
    answer = decide_refund(facts(case), rules, BusinessThresholds())
    # Then the decision, its reason, its date and its evidence are the rules'
    assert (answer.decision, answer.reason) == (case.decision, case.reason), answer.message
    assert answer.earliest_at == case.earliest_at
    assert [e.description for e in answer.evidence] == case.evidence
    assert answer.message


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_contact_support_line_follows_the_same_rules(case: Case) -> None:
    # Given the same cases
    advice = contact_support_after(facts(case), rules_with(case.rules), BusinessThresholds())
    decision = decide_refund(facts(case), rules_with(case.rules), BusinessThresholds())
    # Then the tracking page's line names the moment a wait turns into an allow...
    assert advice.reason == decision.reason
    assert advice.message_key == f"support.{decision.reason.value}"
    if decision.decision is Decision.WAIT and decision.earliest_at:
        assert advice.contact_after == decision.earliest_at
        assert advice.now is False
    # ...says "contact us now" once a refund is allowed...
    if decision.decision is Decision.ALLOW:
        assert advice.now is True
    # ...and never while a return is simply on its way back
    if decision.reason is Reason.RETURN_IN_TRANSIT:
        assert advice.contact_after is None


def test_contact_support_before_the_first_scan_follows_the_silence_threshold() -> None:
    # Given a label made on a Friday evening and no carrier scan since
    case = Case([LABEL_FRI], now="2026-11-09T12:00:00Z", decision=Decision.DENY, reason=Reason.NO_FIRST_SCAN)
    # When the tracking page asks when to send the customer to support
    advice = contact_support_after(facts(case), refund_rules(), BusinessThresholds())
    # Then: once 48 business hours have passed without a scan (Tuesday 18:00 New York)
    assert advice.contact_after == "2026-11-10T23:00:00Z"
    assert advice.now is False


def test_contact_support_for_a_delivered_parcel_is_after_the_claim_window() -> None:
    case = Case([DELIVERED_MON], now="2026-11-03T12:00:00Z", decision=Decision.DENY, reason=Reason.DELIVERED)
    advice = contact_support_after(facts(case), refund_rules(), BusinessThresholds())
    assert advice.contact_after == "2026-11-04T15:00:00Z"
    assert advice.now is False


def test_a_stalled_refund_opens_when_the_stalled_exception_is_due() -> None:
    # Given a registered domestic shipment scanned on a Friday evening, not polled (push grace)
    shipment = Shipment(
        shipment_id="shp_000000000000000000000001",
        carrier="ups",
        tracking_number="1Z999AA10123456784",
        public_token="t" * 24,
        created_at=utc("2026-11-06T20:00:00Z"),
        updated_at=utc("2026-11-06T23:05:00Z"),
        first_source="ups",
        status=M.PICKED_UP,
        origin=Address(country="US"),
        destination=Address(country="US"),
    )
    timeline = [PICKED_FRI]
    # When the silence checker plans the stalled exception and support asks about a refund
    plan = plan_silence(
        shipment,
        [s.event for s in timeline],
        [],
        now=utc("2026-11-06T23:05:00Z"),
        config=silence_config(),
        rules=playbooks(),
    )
    answer = decide_refund(
        ShipmentFacts(
            status=M.PICKED_UP,
            timeline=timeline,
            now=utc("2026-11-07T12:00:00Z"),
            origin_country="US",
            destination_country="US",
        ),
        refund_rules(),
        BusinessThresholds(),
    )
    # Then the refund opens at the exception's threshold (the checker adds only its grace)
    assert plan is not None
    grace = timedelta(minutes=silence_config().grace.push_grace_minutes)
    assert answer.earliest_at is not None
    assert utc(answer.earliest_at) == plan.due_at - grace


@pytest.mark.parametrize(
    ("source", "fixture", "mutate"),
    [
        (
            "aftership",
            "tracking_update_info_received_only.json",
            lambda body: body["msg"]["checkpoints"][0].update(tag="Exception", subtag="Exception_020"),
        ),
        (
            "seventeentrack",
            "push_info_received_only.json",
            lambda body: body["data"]["track_info"]["tracking"]["providers"][0]["events"][0].update(
                stage="Exception", sub_status="Exception_Cancel"
            ),
        ),
        (
            "easypost",
            "tracker_updated_usps_in_transit.json",
            lambda body: body["result"]["tracking_details"][0].update(status="cancelled", status_detail="cancelled"),
        ),
    ],
)
def test_default_cancellation_codes_match_what_the_adapters_store(source: str, fixture: str, mutate: Any) -> None:
    # Given a source's own "shipment cancelled" code, read by its adapter
    body = json.loads(event_bytes(source, fixture))
    mutate(body)
    events = load_adapter(source).normalize(json.dumps(body).encode(), received_at=utc("2026-11-09T12:00:00Z")).events
    # Then the refund rules recognise one of its events as the carrier's cancellation
    assert any(refund_rules().cancels(event) for event in events), [e.raw_code for e in events]


def test_a_bad_override_names_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a deployment that sets a negative claim window
    monkeypatch.setenv(OVERRIDES_VARIABLE, json.dumps({"refunds": {"delivered_not_received": {"days": -1}}}))
    # Then loading the rules fails, naming the setting, instead of deciding with it
    with pytest.raises(PolicyError, match=r"refunds: delivered_not_received\.days"):
        refund_rules()


def test_an_override_changes_the_decision(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a deployment whose claims open after 3 days instead of 2
    monkeypatch.setenv(OVERRIDES_VARIABLE, json.dumps({"refunds": {"delivered_not_received": {"days": 3}}}))
    case = Case(
        [DELIVERED_MON], now="2026-11-04T15:00:00Z", claim=True, decision=Decision.WAIT, reason=Reason.CLAIM_TOO_EARLY
    )
    # Then a claim two days after delivery still waits
    answer = decide_refund(facts(case), refund_rules(), BusinessThresholds())
    assert (answer.decision, answer.earliest_at) == (Decision.WAIT, "2026-11-05T15:00:00Z")
