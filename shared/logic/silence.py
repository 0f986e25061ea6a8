"""Silence rules and the silence checker: ``no_first_scan`` and ``stalled`` (DESIGN §2.2, §5).

**Deadlines.** Each commit computes, from the timeline, which silence rule runs on the
shipment and its deadline (:func:`plan_silence`): no carrier scan yet → ``no_first_scan``,
counted from the label; scanned → ``stalled``, counted from the last event, with the
domestic, cross-border or customs threshold. Thresholds are business hours of the country
where the parcel is (``shared.logic.calendar``), counted from the carrier's scan instant,
plus one poll cycle of grace (``shared/config/silence.toml`` documents every default). The
deadline is stored on the record (``silence_due_at``); no rule runs on a delivered or
returned parcel, while a silence exception is already open, or while an exception whose
playbook pauses silences (lost, returning) is open.

**The timer.** The record's ``timer_due_at`` is its entry in the sparse, sharded, keys-only
``ByTimer`` index: when the checker must look at it next. It is lazy — a commit moves it only
when the deadline comes *earlier* than the timer (or the timer is missing), never later, so
the scans of a moving parcel do not rewrite the index; when an early timer fires, the checker
re-reads the record and re-arms it at the real deadline. An open exception's SLA is a timer in
the same index (its escalation).

**The checker** (every 5 minutes, :func:`check_timers`) Queries the index buckets from its
cursor (the oldest hour that may still hold a timer) up to now — never a Scan — and for each
timer reads the record (or exception) once, strongly consistent, then either raises the
silence exception, escalates the exception, drains an outbox left by a failed publication, or
re-arms. Raising is one transaction conditioned on the record's ``version`` that creates the
exception item with ``attribute_not_exists`` on (shipment, type, episode): two checkers at
once, or a retried run, raise it once.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from enum import StrEnum
from functools import cache
from typing import Annotated, Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.clock import isoformat_z
from shared.config import OVERRIDES_VARIABLE, PolicyError, policy
from shared.dal.exceptions import ExceptionWrite, Expect
from shared.dal.items import TIMER_SHARDS, bucket_hour
from shared.dal.shipments import Commit
from shared.dal.timers import Timer
from shared.errors import Conflict, ServiceError
from shared.logic import calendar
from shared.logic.cadence import DEFAULT_POLICY, PollPolicy, poll_interval
from shared.logic.exceptions import (
    EXCEPTION_ESCALATED,
    EXCEPTION_RAISED,
    Announcement,
    Playbooks,
    announced,
    is_scan,
    new_exception,
    playbooks,
)
from shared.models.canonical import TERMINAL, CanonicalEvent, ExceptionType, Milestone, sortable_text
from shared.models.exceptions import SILENCE_TYPES, ShipmentException
from shared.models.geo import zone_for
from shared.models.shipment import OutboxEntry, Shipment

# ------------------------------------------------------------------------------ configuration

Hours = Annotated[float, Field(gt=0, le=24 * 60)]


class _FirstScan(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    hours: Hours


class _Stalled(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    domestic_hours: Hours
    cross_border_hours: Hours
    customs_hours: Hours


class _Grace(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    push_grace_minutes: Annotated[float, Field(ge=0, le=24 * 60)]


class SilenceConfig(BaseModel):
    """``shared/config/silence.toml``, validated."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    no_first_scan: _FirstScan
    stalled: _Stalled
    grace: _Grace


@cache
def _config(_overrides: str) -> SilenceConfig:
    try:
        return SilenceConfig.model_validate(policy("silence"))
    except ValidationError as error:
        first = error.errors()[0]
        raise PolicyError(f"silence: {'.'.join(map(str, first['loc']))}: {first['msg']}") from None


def silence_config() -> SilenceConfig:
    """This deployment's silence rules (defaults merged with ``SHIPLIGHT_POLICY``)."""
    return _config(os.environ.get(OVERRIDES_VARIABLE, ""))


class Rule(StrEnum):
    """Which threshold a silence counts to (the refund rules' ``Lane`` uses the same values)."""

    LABEL = "label"
    DOMESTIC = "domestic"
    CROSS_BORDER = "cross_border"
    CUSTOMS = "customs"


def threshold_hours(rule: Rule | str, config: SilenceConfig) -> float:
    value = Rule(rule)
    if value is Rule.LABEL:
        return config.no_first_scan.hours
    return {
        Rule.DOMESTIC: config.stalled.domestic_hours,
        Rule.CROSS_BORDER: config.stalled.cross_border_hours,
        Rule.CUSTOMS: config.stalled.customs_hours,
    }[value]


def local_zone(event: CanonicalEvent | None, country: str | None, at: datetime) -> tzinfo:
    """The time zone business days are counted in: the scan's own offset, else its place's
    zone, else the country's single zone, else UTC."""
    if event is not None and event.occurred_at_local is not None and event.occurred_at_local.tzinfo is not None:
        return event.occurred_at_local.tzinfo
    place = event.location if event is not None else None
    if place is not None and place.country:
        found = zone_for(place.country, place.region, place.postal_code, at)
        if found is not None:
            return found
    if country:
        found = zone_for(country, None, None, at)
        if found is not None:
            return found
    return UTC


def silence_deadline(
    anchor: datetime,
    rule: Rule | str,
    *,
    country: str | None,
    tz: tzinfo | None = None,
    grace: timedelta = timedelta(0),
    config: SilenceConfig | None = None,
) -> datetime:
    """When a silence that began at ``anchor`` becomes an exception: the rule's threshold in
    business hours of ``country`` (days in ``tz``), plus ``grace``."""
    hours = threshold_hours(rule, config or silence_config())
    return calendar.add_business_hours(anchor, hours, country, tz) + grace


def grace_for(
    shipment: Shipment, now: datetime, config: SilenceConfig, poll_policy: PollPolicy = DEFAULT_POLICY
) -> timedelta:
    """One poll cycle for a shipment Shiplight polls (a scan made before the deadline may
    reach us only at the next poll); ``push_grace_minutes`` when webhooks are flowing or the
    shipment is not polled."""
    push = timedelta(minutes=config.grace.push_grace_minutes)
    pushing = shipment.last_push_at is not None and now - shipment.last_push_at <= poll_policy.push_flowing_window
    if pushing or shipment.poll_source is None:
        return push
    interval = poll_interval(shipment.status, poll_policy)
    return max(push, interval * (1 + poll_policy.jitter)) if interval else push


# ------------------------------------------------------------------------------ the plan


@dataclass(frozen=True)
class SilencePlan:
    """The silence rule running on a shipment."""

    type: ExceptionType
    rule: Rule
    anchor: datetime  # the instant it counts from (a scan's, or the label's)
    country: str | None
    due_at: datetime  # threshold in business time + grace

    @property
    def episode(self) -> str:
        return sortable_text(self.anchor)


def _country(event: CanonicalEvent | None) -> str | None:
    return event.location.country if event is not None and event.location is not None else None


def _cross_border(shipment: Shipment, ordered: Sequence[CanonicalEvent]) -> bool:
    registered = shipment.cross_border
    if registered is not None:
        return registered
    countries = {c for c in (_country(e) for e in ordered) if c}
    customs = any(e.milestone in (Milestone.CUSTOMS_STARTED, Milestone.CUSTOMS_CLEARED) for e in ordered)
    return len(countries) > 1 or customs


def plan_silence(
    shipment: Shipment,
    ordered: Sequence[CanonicalEvent],
    exceptions: Sequence[ShipmentException],
    *,
    now: datetime,
    config: SilenceConfig,
    rules: Playbooks,
) -> SilencePlan | None:
    """The silence rule that runs on ``shipment`` after this commit, or ``None``.

    ``ordered`` is the timeline in scan order, ``exceptions`` every stored exception (open
    ones after this commit's changes).
    """
    if shipment.merged_into or (shipment.status is not None and shipment.status in TERMINAL):
        return None
    open_types = {e.type for e in exceptions if e.is_open}
    if open_types & SILENCE_TYPES or any(rules[t].pauses_silence for t in open_types):
        return None
    registered_origin = shipment.origin.country if shipment.origin else None
    registered_destination = shipment.destination.country if shipment.destination else None
    if not any(is_scan(e) for e in ordered):
        label = next((e for e in ordered if e.milestone is Milestone.LABEL_CREATED), None)
        anchor = shipment.label_created_at or (label.occurred_at if label else shipment.created_at)
        country = registered_origin or _country(label) or next((c for c in map(_country, ordered) if c), None)
        plan_type, rule, anchor_event = ExceptionType.NO_FIRST_SCAN, Rule.LABEL, label
    else:
        last = ordered[-1]
        anchor = last.occurred_at
        country = _country(last) or next((c for c in map(_country, reversed(ordered)) if c), None)
        country = country or registered_destination or registered_origin
        if shipment.status is Milestone.CUSTOMS_STARTED:
            rule = Rule.CUSTOMS
        elif _cross_border(shipment, ordered):
            rule = Rule.CROSS_BORDER
        else:
            rule = Rule.DOMESTIC
        plan_type, anchor_event = ExceptionType.STALLED, last
    episode = sortable_text(anchor)
    if any(e.type is plan_type and e.episode == episode for e in exceptions):
        return None  # this silence was raised already (and closed by an operator): once per episode
    due = silence_deadline(
        anchor,
        rule,
        country=country,
        tz=local_zone(anchor_event, country, anchor),
        grace=grace_for(shipment, now, config),
        config=config,
    )
    return SilencePlan(plan_type, rule, anchor, country, due)


def next_timer(shipment: Shipment, silence_due: datetime | None, now: datetime) -> datetime | None:
    """The record's timer after a commit: lazy — kept when it is not later than the new
    deadline (the checker re-arms it when it fires), moved only earlier, dropped when nothing
    is left to watch."""
    current = shipment.timer_due_at
    wanted: list[datetime] = []
    if silence_due is not None:
        wanted.append(current if current is not None and current <= silence_due else silence_due)
    if shipment.outbox_pending_since is not None:
        wanted.append(current or now)
    return min(wanted) if wanted else None


def silence_fields(
    shipment: Shipment,
    ordered: Sequence[CanonicalEvent],
    exceptions: Sequence[ShipmentException],
    *,
    now: datetime,
) -> dict[str, Any]:
    """The record's silence and timer fields after a commit (``model_copy(update=...)``)."""
    plan = plan_silence(shipment, ordered, exceptions, now=now, config=silence_config(), rules=playbooks())
    return {
        "silence_type": plan.type if plan else None,
        "silence_anchor": plan.anchor if plan else None,
        "silence_due_at": plan.due_at if plan else None,
        "timer_due_at": next_timer(shipment, plan.due_at if plan else None, now),
    }


class BusinessThresholds:
    """The silence thresholds as the refund rules ask for them (``shared.logic.refunds``'s
    ``SilenceThresholds``): no grace, business time of ``country``."""

    def __init__(self, config: SilenceConfig | None = None) -> None:
        self.config = config or silence_config()

    def movement_due(self, anchor: CanonicalEvent, lane: str, country: str | None) -> datetime:
        # Days counted in the anchor scan's own time zone, as plan_silence counts them.
        tz = local_zone(anchor, country, anchor.occurred_at)
        return silence_deadline(anchor.occurred_at, Rule(str(lane)), country=country, tz=tz, config=self.config)

    def first_scan_due(self, label_created_at: datetime, label: CanonicalEvent | None, country: str | None) -> datetime:
        tz = local_zone(label, country, label_created_at)
        return silence_deadline(label_created_at, Rule.LABEL, country=country, tz=tz, config=self.config)

    def add_business_days(self, start: datetime, days: int, country: str | None) -> datetime:
        return calendar.add_business_hours(start, 24 * days, country, local_zone(None, country, start))


# ------------------------------------------------------------------------------ the checker

RUN_PERIOD = timedelta(minutes=5)  # template.yaml: rate(5 minutes)
# The cursor stays this far behind now: a writer that read the clock just before an hour
# ended may commit a timer into that hour a little after the checker moved on.
CURSOR_LAG = timedelta(minutes=15)
# The very first run (no cursor yet) looks this far back, so a checker that failed from its
# first run on (a broken deployment fixed days later) still finds every timer; once.
FIRST_LOOKBACK = timedelta(days=7)
SAFETY_SECONDS = 10.0
LEFTOVER_GRACE = timedelta(seconds=60)  # outbox entries younger than this belong to a running writer
ATTEMPTS = 4


class TimerIndex(Protocol):
    def read_cursor(self) -> str | None: ...
    def advance_cursor(self, hour: str) -> None: ...
    def due_timers(self, bucket: str, now: datetime, page_size: int = 100) -> Iterator[Timer]: ...
    def read_shipment(self, shipment_id: str) -> Shipment | None: ...
    def read_exception(self, shipment_id: str, sk: str) -> ShipmentException | None: ...
    def pending_outbox(self, shipment_id: str) -> list[OutboxEntry]: ...
    def move_timer(self, shipment: Shipment, *, due: datetime | None, now: datetime, clear_pending: bool) -> bool: ...
    def commit(self, commit: Commit) -> None: ...
    def delete_outbox(self, entries: Sequence[OutboxEntry]) -> None: ...


class Publisher(Protocol):
    def publish(self, entries: Sequence[OutboxEntry]) -> list[OutboxEntry]: ...


@dataclass
class CheckOutcome:
    counts: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    raised: list[ShipmentException] = field(default_factory=list)
    complete: bool = True


def _hours(first: str, last: str) -> Iterator[str]:
    at = datetime.strptime(first, "%Y-%m-%dT%H").replace(tzinfo=UTC)
    end = datetime.strptime(last, "%Y-%m-%dT%H").replace(tzinfo=UTC)
    while at <= end:
        yield bucket_hour(at)
        at += timedelta(hours=1)


class Checker:
    """One run of the silence checker (see the module docstring)."""

    def __init__(
        self,
        *,
        index: TimerIndex,
        publisher: Publisher,
        now: datetime,
        time_left: Callable[[], float] = lambda: 1e9,
        rules: Playbooks | None = None,
    ) -> None:
        self.index = index
        self.publisher = publisher
        self.now = now
        self.time_left = time_left
        self.rules = rules or playbooks()
        self.outcome = CheckOutcome()

    def run(self) -> CheckOutcome:
        stored = self.index.read_cursor()
        last = bucket_hour(self.now)
        first = stored or bucket_hour(self.now - FIRST_LOOKBACK)
        first = min(first, last)
        for hour in _hours(first, last):
            for shard in range(TIMER_SHARDS):
                self.outcome.counts["queries"] += 1
                for timer in self.index.due_timers(f"{hour}#{shard}", self.now):
                    self.outcome.counts["timers"] += 1
                    if self.time_left() < SAFETY_SECONDS:
                        self.outcome.complete = False
                        self.outcome.counts["left_for_next_run"] += 1
                        return self.outcome
                    try:
                        self._handle(timer)
                    except ServiceError as error:
                        self.outcome.complete = False
                        self.outcome.problems.append(f"{timer.shipment_id}: {error.detail}")
        drained = bucket_hour(self.now - CURSOR_LAG)
        if self.outcome.complete and (stored is None or drained > stored):
            self.index.advance_cursor(drained)
        return self.outcome

    def _handle(self, timer: Timer) -> None:
        if timer.sk == "META":
            self._check_shipment(timer.shipment_id)
        else:
            self._check_exception(timer.shipment_id, timer.sk)

    # -- a shipment's silence -----------------------------------------------------------

    def _check_shipment(self, shipment_id: str) -> None:
        for _ in range(ATTEMPTS):
            shipment = self.index.read_shipment(shipment_id)
            if shipment is None or shipment.timer_due_at is None or shipment.timer_due_at > self.now:
                self.outcome.counts["stale"] += 1  # moved since the index saw it
                return
            pending_left = self._drain(shipment) if shipment.outbox_pending_since else False
            due = shipment.silence_due_at
            if shipment.silence_type is not None and due is not None and due <= self.now:
                try:
                    self._raise(shipment)
                except Conflict:
                    self.outcome.counts["raise_conflicts"] += 1
                    continue  # someone wrote the record meanwhile: look again
                return
            if pending_left:
                self.index.move_timer(shipment, due=self.now + RUN_PERIOD, now=self.now, clear_pending=False)
                return
            moved = self.index.move_timer(shipment, due=due, now=self.now, clear_pending=True)
            self.outcome.counts["rearmed" if due else "disarmed"] += moved
            return

    def _raise(self, shipment: Shipment) -> None:
        anchor, kind = shipment.silence_anchor, shipment.silence_type
        if anchor is None or kind is None or shipment.silence_due_at is None:
            return
        exception = new_exception(
            shipment,
            kind,
            sortable_text(anchor),
            now=self.now,
            cause_at=shipment.silence_due_at,
            rules=self.rules,
            details={"since": isoformat_z(anchor), "deadline": isoformat_z(shipment.silence_due_at)},
        )
        open_types = sorted({*shipment.open_exceptions, exception.type.value})
        quiet = shipment.model_copy(
            update={
                "open_exceptions": open_types,
                "silence_type": None,
                "silence_anchor": None,
                "silence_due_at": None,
            }
        )
        updated, entries = announced(quiet, [Announcement(EXCEPTION_RAISED, exception, ())], self.now)
        self.index.commit(
            Commit(
                shipment=updated,
                expected_version=shipment.version,
                outbox=entries,
                exceptions=[ExceptionWrite(exception, Expect.NEW)],
            )
        )
        self.outcome.counts[f"raised.{exception.type.value}"] += 1
        self.outcome.raised.append(exception)
        self._publish_then_settle(updated, entries)

    # -- an exception's SLA -------------------------------------------------------------

    def _check_exception(self, shipment_id: str, sk: str) -> None:
        for _ in range(ATTEMPTS):
            exception = self.index.read_exception(shipment_id, sk)
            if (
                exception is None
                or not exception.is_open
                or exception.escalated_at is not None
                or exception.sla_due_at > self.now
            ):
                self.outcome.counts["stale"] += 1
                return
            shipment = self.index.read_shipment(shipment_id)
            if shipment is None:
                return
            book = self.rules[exception.type]
            escalated = exception.model_copy(
                update={
                    "escalated_at": self.now,
                    "updated_at": self.now,
                    "owner": book.escalate_to,
                    "escalated_from": exception.owner if book.escalate_to != exception.owner else None,
                    "last_scan": shipment.last_scan,
                }
            )
            updated, entries = announced(shipment, [Announcement(EXCEPTION_ESCALATED, escalated, ())], self.now)
            try:
                self.index.commit(
                    Commit(
                        shipment=updated,
                        expected_version=shipment.version,
                        outbox=entries,
                        exceptions=[ExceptionWrite(escalated, Expect.OPEN_UNESCALATED)],
                    )
                )
            except Conflict:
                self.outcome.counts["escalate_conflicts"] += 1
                continue
            self.outcome.counts[f"escalated.{exception.type.value}"] += 1
            self._publish_then_settle(updated, entries)
            return

    # -- publication ----------------------------------------------------------------------

    def _publish_then_settle(self, shipment: Shipment, entries: list[OutboxEntry]) -> None:
        """Publish what was just committed; once the bus took it, drop the pending mark (the
        timer then follows the silence deadline again, or leaves the index)."""
        refused = self.publisher.publish(entries)
        accepted = [e for e in entries if e not in refused]
        if accepted:
            self.index.delete_outbox(accepted)
        self.outcome.counts["published"] += len(accepted)
        if refused:
            self.outcome.problems.append(f"{shipment.shipment_id}: the bus refused {len(refused)} event(s)")
            return
        self.index.move_timer(shipment, due=shipment.silence_due_at, now=self.now, clear_pending=True)

    def _drain(self, shipment: Shipment) -> bool:
        """Publish outbox entries a writer left behind; whether some must wait (too fresh,
        or refused)."""
        entries = self.index.pending_outbox(shipment.shipment_id)
        ripe = [e for e in entries if self.now - e.created_at >= LEFTOVER_GRACE]
        refused = self.publisher.publish(ripe) if ripe else []
        accepted = [e for e in ripe if e not in refused]
        if accepted:
            self.index.delete_outbox(accepted)
            self.outcome.counts["drained"] += len(accepted)
        return len(accepted) < len(entries)


def check_timers(
    *, index: TimerIndex, publisher: Publisher, now: datetime, time_left: Callable[[], float] = lambda: 1e9
) -> CheckOutcome:
    """One checker run: every timer due by ``now``, from the cursor's hour on."""
    return Checker(index=index, publisher=publisher, now=now, time_left=time_left).run()


def run_checker(time_left: Callable[[], float]) -> CheckOutcome:
    """One scheduled run against the table and bus named by the environment."""
    from shared import clock
    from shared.dal.bus import EventBridgePublisher
    from shared.dal.timers import DynamoTimerIndex
    from shared.settings import SilenceCheckerSettings, load

    settings = load(SilenceCheckerSettings)
    return check_timers(
        index=DynamoTimerIndex(settings.shipments_table),
        publisher=EventBridgePublisher(settings.event_bus_name),
        now=clock.now(),
        time_left=time_left,
    )
