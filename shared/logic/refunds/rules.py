"""Refund and claim decisions from tracking evidence, and when a customer should contact support.

One pure engine (no I/O, the time is an input) over what Shiplight knows of a parcel: its
status and timeline, its open exceptions, what the merchant registered (lane, promised date,
label time) and now. The rules are merchant configuration (``shared/config/refunds.toml``,
every default documented there), checked in a fixed order; the first that applies decides.

Two answers come out of the same evaluation, so they can never disagree:

- :func:`decide_refund` — ``allow``, ``deny`` or ``wait``, with a stable machine ``reason``,
  a plain-words ``message``, ``earliest_at`` (when a ``wait`` may turn into ``allow``) and the
  events the decision rests on;
- :func:`contact_support_after` — the instant after which the tracking page tells the customer
  to contact support (the moment a refund or claim could succeed), or ``None``.

How long a parcel may go without moving is the silence rules' threshold, read through
:class:`SilenceThresholds`: a refund for a stalled parcel opens exactly when the ``stalled``
exception is due.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from enum import StrEnum
from functools import cache
from typing import Annotated, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared import calendar
from shared.clock import isoformat_z
from shared.config import OVERRIDES_VARIABLE, PolicyError, policy
from shared.logic.incidents.episodes import NOT_MOVEMENT, is_scan
from shared.logic.shipments.timeline import walk
from shared.models.canonical import CanonicalEvent, IncidentType, Milestone
from shared.models.refunds import Decision, EvidenceEvent, Reason, RefundDecision, SupportAdvice
from shared.models.shipment import Partition, StoredEvent

__all__ = [
    "Decision",
    "EvidenceEvent",
    "Lane",
    "OpenException",
    "Reason",
    "RefundDecision",
    "RefundRules",
    "ShipmentFacts",
    "SilenceThresholds",
    "SupportAdvice",
    "contact_support_after",
    "decide_refund",
    "facts_of",
    "refund_rules",
]


# ------------------------------------------------------------------------------ configuration


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class BeforeFirstScanRules(_Section):
    cancellation_codes: Annotated[list[Annotated[str, Field(min_length=1, max_length=100)]], Field(max_length=200)]


class StalledRules(_Section):
    extra_business_days: Annotated[int, Field(ge=0, le=60)]


class DeliveredNotReceivedRules(_Section):
    days: Annotated[int, Field(ge=0, le=90)]
    business_days: bool


class LateRules(_Section):
    enabled: bool
    days_after_promised: Annotated[int, Field(ge=0, le=90)]
    business_days: bool


class RefundRules(_Section):
    """``shared/config/refunds.toml`` (with the deployment's overrides), checked at load."""

    before_first_scan: BeforeFirstScanRules
    stalled: StalledRules
    delivered_not_received: DeliveredNotReceivedRules
    late: LateRules

    def cancels(self, event: CanonicalEvent) -> bool:
        return any(
            fnmatch.fnmatchcase(event.raw_code, pattern) for pattern in self.before_first_scan.cancellation_codes
        )


@cache
def _rules(_overrides: str) -> RefundRules:
    try:
        return RefundRules.model_validate(policy("refunds"))
    except ValidationError as error:
        first = error.errors()[0]
        raise PolicyError(f"refunds: {'.'.join(map(str, first['loc']))}: {first['msg']}") from None


def refund_rules() -> RefundRules:
    """This deployment's refund rules (``refunds.toml`` merged with ``SHIPLIGHT_POLICY``),
    validated; a bad value is a ``PolicyError`` naming it."""
    return _rules(os.environ.get(OVERRIDES_VARIABLE, ""))


# ------------------------------------------------------------------------------ inputs


class Lane(StrEnum):
    """Which silence threshold applies to a parcel that stopped moving."""

    DOMESTIC = "domestic"
    CROSS_BORDER = "cross_border"
    CUSTOMS = "customs"


class SilenceThresholds(Protocol):
    """The silence rules' deadlines without grace (``shared.logic.incidents.silence.BusinessThresholds``):
    thresholds of ``shared/config/silence.toml`` in business time of a country, days counted in
    the local time of the scan they start from."""

    def movement_due(self, anchor: CanonicalEvent, lane: str, country: str | None) -> datetime:
        """When a parcel whose last event is ``anchor`` counts as stalled on ``lane``."""
        ...

    def first_scan_due(self, label_created_at: datetime, label: CanonicalEvent | None, country: str | None) -> datetime:
        """When a label made at ``label_created_at`` with no carrier scan counts as ``no_first_scan``."""
        ...


@dataclass(frozen=True)
class OpenException:
    """An open exception of the shipment, as far as the rules need it."""

    type: IncidentType
    opened_at: datetime
    exception_id: str | None = None


@dataclass(frozen=True)
class ShipmentFacts:
    """Everything the rules look at. ``timeline`` in any order; ``now`` is an input (pure)."""

    status: Milestone | None
    timeline: Sequence[StoredEvent]
    now: datetime
    open_exceptions: Sequence[OpenException] = ()
    origin_country: str | None = None
    destination_country: str | None = None
    promised_date: date | None = None
    label_created_at: datetime | None = None
    created_at: datetime | None = None  # when Shiplight first heard of the parcel
    time_zone: str | None = None  # the customer's (IANA), for the end of the promised day


def facts_of(partition: Partition, now: datetime) -> ShipmentFacts:
    """The facts of a stored shipment (its record, timeline and open exceptions)."""
    shipment = partition.shipment
    return ShipmentFacts(
        status=shipment.status,
        timeline=list(partition.events),
        now=now,
        open_exceptions=[
            OpenException(type=e.type, opened_at=e.raised_at, exception_id=e.exception_id)
            for e in partition.incidents
            if e.is_open
        ],
        origin_country=shipment.origin.country if shipment.origin else None,
        destination_country=shipment.destination.country if shipment.destination else None,
        promised_date=shipment.promised_delivery_date,
        label_created_at=shipment.label_created_at,
        created_at=shipment.created_at,
        time_zone=shipment.time_zone,
    )


# ------------------------------------------------------------------------------ outputs


@dataclass
class _Finding:
    decision: Decision
    reason: Reason
    message: str
    earliest_at: datetime | None = None
    evidence: list[StoredEvent] = field(default_factory=list)
    support_at: datetime | None = None  # when to contact support (None: not about this)


# ------------------------------------------------------------------------------ the rules


def decide_refund(facts: ShipmentFacts, rules: RefundRules, thresholds: SilenceThresholds) -> RefundDecision:
    """Whether the merchant should refund this shipment now, from the tracking evidence."""
    finding = _evaluate(facts, rules, thresholds)
    return RefundDecision(
        decision=finding.decision,
        reason=finding.reason,
        message=finding.message,
        earliest_at=isoformat_z(finding.earliest_at) if finding.earliest_at else None,
        evidence=[_evidence(stored) for stored in finding.evidence],
    )


def contact_support_after(facts: ShipmentFacts, rules: RefundRules, thresholds: SilenceThresholds) -> SupportAdvice:
    """When the customer should contact support: the moment the same rules would let a refund
    or claim through (a parcel silent past its threshold, a delivered parcel still missing
    ``days`` later), at once when the carrier reported a loss or damage, never while a return
    or a delivery is simply running its course."""
    finding = _evaluate(facts, rules, thresholds)
    at = finding.support_at
    return SupportAdvice(
        contact_after=isoformat_z(at) if at else None,
        now=at is not None and at <= facts.now,
        reason=finding.reason,
        message_key=f"support.{finding.reason.value}",
    )


def _evaluate(facts: ShipmentFacts, rules: RefundRules, thresholds: SilenceThresholds) -> _Finding:
    now = facts.now
    ordered = sorted(facts.timeline, key=lambda stored: stored.event.sort_key)
    events = [stored.event for stored in ordered]
    by_id = {stored.event.event_id: stored for stored in ordered}
    path = walk(events)
    status = facts.status if facts.status is not None else path.status
    open_types = {exc.type for exc in facts.open_exceptions}

    def reached(milestone: Milestone) -> StoredEvent | None:
        """The event of the last transition into ``milestone``."""
        found = [t.event for t in path.transitions if t.status is milestone]
        return by_id[found[-1].event_id] if found else None

    # 1. The return is back with the sender or the warehouse (its receipt scan).
    returned = reached(Milestone.RETURN_DELIVERED)
    if returned is not None:
        when = _text(returned.event.occurred_at)
        return _Finding(
            Decision.ALLOW,
            Reason.RETURN_RECEIVED,
            f"The return was received on {when}: refund it.",
            evidence=[returned],
            support_at=returned.event.occurred_at,
        )

    scans = [s for s in ordered if is_scan(s.event)]

    # 2. The carrier declared the parcel lost, and no later scan moved it on (found again).
    lost = [s for s in ordered if s.event.exception is IncidentType.LOST]
    if lost:
        last_lost = lost[-1]
        found_again = any(_moves_on(s.event) and s.event.sort_key > last_lost.event.sort_key for s in ordered)
        if not found_again:
            return _Finding(
                Decision.ALLOW,
                Reason.CARRIER_CONFIRMED_LOST,
                f"The carrier declared the parcel lost on {_text(last_lost.event.occurred_at)}.",
                evidence=[last_lost],
                support_at=last_lost.event.occurred_at,
            )

    # 3. The carrier reported it damaged: the damage scans are the evidence.
    damaged = [s for s in ordered if s.event.exception is IncidentType.DAMAGED]
    if damaged:
        return _Finding(
            Decision.ALLOW,
            Reason.CARRIER_REPORTED_DAMAGE,
            f"The carrier reported the parcel damaged on {_text(damaged[0].event.occurred_at)}.",
            evidence=damaged,
            support_at=damaged[0].event.occurred_at,
        )

    # 4. On its way back: refunded when it arrives, not before.
    if status is Milestone.RETURN_STARTED:
        started = reached(Milestone.RETURN_STARTED)
        return _Finding(
            Decision.WAIT,
            Reason.RETURN_IN_TRANSIT,
            "The parcel is on its way back to the sender; refund it once the return is received.",
            evidence=[started] if started else [],
        )

    # 5. Delivered: only a delivered-not-received claim, and only some days after delivery.
    delivered = reached(Milestone.DELIVERED) if status is Milestone.DELIVERED else None
    if delivered is not None:
        claim_opens = _after_days(
            delivered.event.occurred_at,
            rules.delivered_not_received.days,
            business=rules.delivered_not_received.business_days,
            country=_country_of(delivered.event) or facts.destination_country,
            tz=_event_zone(delivered.event) or _zone(facts.time_zone),
        )
        when = _text(delivered.event.occurred_at)
        if IncidentType.DELIVERED_NOT_RECEIVED not in open_types:
            return _Finding(
                Decision.DENY,
                Reason.DELIVERED,
                f"The carrier delivered the parcel on {when}. If the customer did not receive it, "
                f"record a delivered-not-received claim: it can be refunded from {_text(claim_opens)}.",
                evidence=[delivered],
                support_at=claim_opens,
            )
        if now < claim_opens:
            return _Finding(
                Decision.WAIT,
                Reason.CLAIM_TOO_EARLY,
                f"The carrier delivered the parcel on {when}. Most parcels reported missing turn up "
                f"within days: the not-received claim can be refunded from {_text(claim_opens)}.",
                earliest_at=claim_opens,
                evidence=[delivered],
                support_at=claim_opens,
            )
        return _Finding(
            Decision.ALLOW,
            Reason.CLAIM_WINDOW_PASSED,
            f"The carrier delivered the parcel on {when} and the not-received claim is still open "
            "after the waiting period: refund it.",
            evidence=[delivered],
            support_at=claim_opens,
        )

    # 6. No carrier scan yet: no refund unless the carrier confirmed a cancellation.
    if not scans:
        cancelled = [s for s in ordered if rules.cancels(s.event)]
        if cancelled:
            return _Finding(
                Decision.ALLOW,
                Reason.CARRIER_CONFIRMED_CANCELLED,
                f"The carrier confirmed the shipment cancelled on {_text(cancelled[-1].event.occurred_at)}.",
                evidence=[cancelled[-1]],
                support_at=cancelled[-1].event.occurred_at,
            )
        label = next((s for s in ordered if s.event.milestone is Milestone.LABEL_CREATED), None)
        since = facts.label_created_at or (label.event.occurred_at if label else None) or facts.created_at
        country = (
            facts.origin_country
            or (_country_of(label.event) if label else None)
            or next((c for c in (_country_of(s.event) for s in ordered) if c), None)
        )
        due = thresholds.first_scan_due(since, label.event if label else None, country) if since else None
        return _Finding(
            Decision.DENY,
            Reason.NO_FIRST_SCAN,
            "The carrier has not scanned the parcel yet: no refund until it moves, or until the "
            "carrier declares it lost or confirms the shipment cancelled.",
            evidence=[label] if label else [],
            support_at=due,
        )

    # 7. Scanned, not delivered: refunded once silent past the silence threshold (counted from
    #    its last event, as the `stalled` exception is), or, optionally, once late.
    anchor = ordered[-1]
    country = _last_country([anchor]) or _last_country(ordered) or facts.destination_country or facts.origin_country
    lane = _lane(facts, status, [s.event for s in ordered])
    stalled_at = thresholds.movement_due(anchor.event, lane.value, country)
    if rules.stalled.extra_business_days:
        stalled_at = calendar.add_business_hours(
            stalled_at, 24 * rules.stalled.extra_business_days, country, _event_zone(anchor.event)
        )
    late_at = _late_at(facts, rules)
    last_seen = _text(anchor.event.occurred_at)
    if now >= stalled_at:
        return _Finding(
            Decision.ALLOW,
            Reason.STALLED,
            f"Nothing from the carrier since {last_seen}: past the {lane.value.replace('_', '-')} "
            f"silence threshold ({_text(stalled_at)}).",
            evidence=[anchor],
            support_at=stalled_at,
        )
    if late_at is not None and now >= late_at:
        return _Finding(
            Decision.ALLOW,
            Reason.LATE,
            f"Still not delivered {rules.late.days_after_promised} days after the promised date "
            f"({facts.promised_date}).",
            evidence=[anchor],
            support_at=late_at,
        )
    opens = min(at for at in (stalled_at, late_at) if at is not None)
    return _Finding(
        Decision.WAIT,
        Reason.MOVING,
        f"Last news from the carrier on {last_seen}. A refund is possible from {_text(opens)} "
        "if nothing is heard before then.",
        earliest_at=opens,
        evidence=[anchor],
        support_at=opens,
    )


# ------------------------------------------------------------------------------ helpers


def _moves_on(event: CanonicalEvent) -> bool:
    """A scan that moves the parcel on (what ends a ``lost`` episode in the playbooks)."""
    return event.milestone is not None and event.milestone not in NOT_MOVEMENT and event.exception is None


def _country_of(event: CanonicalEvent) -> str | None:
    return event.location.country if event.location and event.location.country else None


def _last_country(ordered: Sequence[StoredEvent]) -> str | None:
    for stored in reversed(ordered):
        country = _country_of(stored.event)
        if country:
            return country
    return None


def _lane(facts: ShipmentFacts, status: Milestone | None, ordered: Sequence[CanonicalEvent]) -> Lane:
    """The silence checker's choice (``shared.logic.incidents.silence.plan_silence``): customs while the
    parcel is in customs; else the registered lane; before registration, cross-border when its
    scans were in two countries or went through customs."""
    if status is Milestone.CUSTOMS_STARTED:
        return Lane.CUSTOMS
    if facts.origin_country and facts.destination_country:
        return Lane.CROSS_BORDER if facts.origin_country != facts.destination_country else Lane.DOMESTIC
    countries = {c for c in (_country_of(e) for e in ordered) if c}
    customs = any(e.milestone in (Milestone.CUSTOMS_STARTED, Milestone.CUSTOMS_CLEARED) for e in ordered)
    return Lane.CROSS_BORDER if len(countries) > 1 or customs else Lane.DOMESTIC


def _after_days(start: datetime, days: int, *, business: bool, country: str | None, tz: tzinfo | None) -> datetime:
    """``days`` after ``start``: calendar days, or business days of ``country`` (counted in
    ``tz``'s local days, as the silence rules count them)."""
    if business:
        return calendar.add_business_hours(start, 24 * days, country, tz)
    return start + timedelta(days=days)


def _event_zone(event: CanonicalEvent) -> tzinfo | None:
    local = event.occurred_at_local
    return local.tzinfo if local is not None else None


def _late_at(facts: ShipmentFacts, rules: RefundRules) -> datetime | None:
    if not rules.late.enabled or facts.promised_date is None:
        return None
    # A promise is kept if the parcel arrives any time on the promised day, in the customer's
    # time zone (UTC when unknown): lateness counts from the midnight that ends it.
    zone = _zone(facts.time_zone)
    end_of_promise = datetime.combine(facts.promised_date + timedelta(days=1), time(0), tzinfo=zone).astimezone(UTC)
    return _after_days(
        end_of_promise,
        rules.late.days_after_promised,
        business=rules.late.business_days,
        country=facts.destination_country,
        tz=zone,
    )


def _zone(name: str | None) -> tzinfo:
    if name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            return UTC
    return UTC


def _text(instant: datetime) -> str:
    return instant.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _evidence(stored: StoredEvent) -> EvidenceEvent:
    event = stored.event
    where = event.location
    place = ", ".join(part for part in (where.city, where.region, where.country) if part) if where else ""
    return EvidenceEvent(
        event_id=event.event_id,
        milestone=event.milestone,
        exception=event.exception,
        occurred_at=isoformat_z(event.occurred_at),
        description=event.description,
        place=place or None,
        raw_code=event.raw_code,
        source=stored.source,
    )
