"""The silence checker (every 5 minutes): timers due in the ``ByTimer`` index.

A run Queries the index buckets from its cursor (the oldest hour that may still hold a timer)
up to now — never a Scan — and for each timer reads the shipment (or exception) once, strongly
consistent, then either raises the silence exception (``shared.logic.incidents.silence`` computed its
deadline), escalates an exception whose SLA passed, drains an outbox left by a failed
publication, or re-arms the timer at the real deadline. Raising and escalating are decisions
over the record, written through the one write path (``shared.logic.shipments.unit_of_work``):
one transaction conditioned on the record's ``version`` that creates the incident item with
``attribute_not_exists`` on (shipment, type, episode): two checkers at once, or a retried run,
raise it once. Moving a timer is the one write beside it: a conditional update of the timer
keys alone (it changes nothing a decision reads, so the record's ``version`` stays).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

from shared.clock import isoformat_z
from shared.dal.incidents import Expect
from shared.dal.items import TIMER_SHARDS, bucket_hour
from shared.dal.timers import Timer
from shared.errors import Conflict, ServiceError
from shared.logic.incidents.playbooks import (
    EXCEPTION_ESCALATED,
    EXCEPTION_RAISED,
    Announcement,
    Playbooks,
    new_incident,
    order_key,
    playbooks,
)
from shared.logic.shipments.chain import CommitOptions, Draft, finish, leftovers
from shared.logic.shipments.ports import Publisher, ShipmentStore
from shared.logic.shipments.unit_of_work import Decision, Relayed, SimpleWork, UnitOfWork
from shared.models.canonical import CanonicalEvent, sortable_text
from shared.models.incidents import Incident, ScanSummary
from shared.models.shipment import OutboxEntry, Shipment

# ------------------------------------------------------------------------------ the checker

RUN_PERIOD = timedelta(minutes=5)  # template.yaml: rate(5 minutes)
# The cursor stays this far behind now: a writer that read the clock just before an hour
# ended may commit a timer into that hour a little after the checker moved on.
CURSOR_LAG = timedelta(minutes=15)
# The very first run (no cursor yet) looks this far back, so a checker that failed from its
# first run on (a broken deployment fixed days later) still finds every timer; once.
FIRST_LOOKBACK = timedelta(days=7)
SAFETY_SECONDS = 10.0


class TimerIndex(ShipmentStore, Protocol):
    """The shipments table as the checker uses it: the write path's store, the ``ByTimer``
    index and its cursor, and the single-item reads of a due timer's record or incident."""

    def read_cursor(self) -> str | None: ...
    def advance_cursor(self, hour: str) -> None: ...
    def due_timers(self, bucket: str, now: datetime, page_size: int = 100) -> Iterator[Timer]: ...
    def read_shipment(self, shipment_id: str) -> Shipment | None: ...
    def read_last_event(self, shipment_id: str) -> CanonicalEvent | None: ...
    def read_exception(self, shipment_id: str, sk: str) -> Incident | None: ...
    def pending_outbox(self, shipment_id: str) -> list[OutboxEntry]: ...
    def move_timer(self, shipment: Shipment, *, due: datetime | None, now: datetime, clear_pending: bool) -> bool: ...


@dataclass
class CheckOutcome:
    counts: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    raised: list[Incident] = field(default_factory=list)
    complete: bool = True


@dataclass(frozen=True)
class _Checked:
    """What a decision over a due timer found: the record as read (``None``: the timer moved
    since the index saw it), and what it wrote."""

    seen: Shipment | None
    written: Shipment | None = None
    incident: Incident | None = None


def _hours(first: str, last: str) -> Iterator[str]:
    at = datetime.strptime(first, "%Y-%m-%dT%H").replace(tzinfo=UTC)
    end = datetime.strptime(last, "%Y-%m-%dT%H").replace(tzinfo=UTC)
    while at <= end:
        yield bucket_hour(at)
        at += timedelta(hours=1)


def raise_silence(shipment: Shipment | None, now: datetime, rules: Playbooks) -> Decision[_Checked]:
    """The decision over a due shipment timer: raise the silence whose deadline passed, or
    nothing (the checker then re-arms the timer)."""
    if shipment is None or shipment.timer_due_at is None or shipment.timer_due_at > now:
        return Decision(None, _Checked(None))  # moved since the index saw it
    anchor, kind, due = shipment.silence_anchor, shipment.silence_type, shipment.silence_due_at
    if anchor is None or kind is None or due is None or due > now:
        return Decision(None, _Checked(shipment))
    incident = new_incident(
        shipment,
        kind,
        sortable_text(anchor),
        now=now,
        cause_at=due,
        rules=rules,
        details={"since": isoformat_z(anchor), "deadline": isoformat_z(due)},
    )
    draft = Draft(loaded=shipment, record=shipment, now=now, watch_outbox=True)
    draft.update(
        open_exceptions=sorted({*shipment.open_exceptions, incident.type.value}),
        silence_type=None,
        silence_anchor=None,
        silence_due_at=None,
    )
    draft.write(incident, Expect.NEW)
    draft.announce_incident(Announcement(EXCEPTION_RAISED, incident, order_key(None, now, 1)))
    commit = finish(draft)
    return Decision(commit, _Checked(shipment, commit.shipment, incident))


def escalate(loaded: tuple[Incident | None, Shipment | None], now: datetime, rules: Playbooks) -> Decision[_Checked]:
    """The decision over a due SLA timer: escalate the open incident to its playbook's owner.

    The incident keeps its own last scan: every decision that changes the timeline refreshes
    the open incidents' (``refreshed``), so it is the shipment's."""
    incident, shipment = loaded
    if (
        incident is None
        or shipment is None
        or not incident.is_open
        or incident.escalated_at is not None
        or incident.sla_due_at > now
    ):
        return Decision(None, _Checked(None))
    book = rules[incident.type]
    escalated = incident.model_copy(
        update={
            "escalated_at": now,
            "updated_at": now,
            "owner": book.escalate_to,
            "escalated_from": incident.owner if book.escalate_to != incident.owner else None,
        }
    )
    draft = Draft(loaded=shipment, record=shipment, now=now, watch_outbox=True)
    draft.write(escalated, Expect.OPEN_UNESCALATED)
    draft.announce_incident(Announcement(EXCEPTION_ESCALATED, escalated, order_key(None, now, 3)))
    commit = finish(draft)
    return Decision(commit, _Checked(shipment, commit.shipment, escalated))


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

    def _unit_of_work(self) -> UnitOfWork:
        return UnitOfWork(self.index, self.publisher, now=lambda: self.now)

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
        uow = self._unit_of_work()
        work = SimpleWork(
            lambda store: self._record_to_check(shipment_id),
            lambda shipment, now: raise_silence(shipment, now, self.rules),
        )
        try:
            checked = uow.run(work)
        except Conflict:
            self.outcome.counts["raise_conflicts"] += uow.conflicts
            self._gave_up(shipment_id)
            return
        self.outcome.counts["raise_conflicts"] += uow.conflicts  # someone wrote the record meanwhile
        seen = checked.seen
        if seen is None:
            self.outcome.counts["stale"] += 1  # moved since the index saw it
            return
        ripe, too_fresh = self._leftovers_of(seen) if seen.outbox_pending_since else ([], False)
        uow.keep(ripe)
        relayed = self._relay(uow, ripe)
        if checked.written is not None and checked.incident is not None:
            self.outcome.counts[f"raised.{checked.incident.type.value}"] += 1
            self.outcome.raised.append(checked.incident)
            self._settle(checked.written, relayed)
            return
        if too_fresh or not relayed.complete:
            self.index.move_timer(seen, due=self.now + RUN_PERIOD, now=self.now, clear_pending=False)
            return
        due = seen.silence_due_at
        moved = self.index.move_timer(seen, due=due, now=self.now, clear_pending=True)
        self.outcome.counts["rearmed" if due else "disarmed"] += moved

    def _record_to_check(self, shipment_id: str) -> Shipment | None:
        """The record; with its last scan when a silence is due, which the raised incident shows
        (the record does not store it: one more read, for raises only)."""
        shipment = self.index.read_shipment(shipment_id)
        due = shipment.silence_due_at if shipment is not None else None
        if shipment is None or shipment.silence_type is None or due is None or due > self.now:
            return shipment
        last = self.index.read_last_event(shipment_id)
        return shipment.model_copy(update={"last_scan": ScanSummary.of(last) if last else None})

    # -- an exception's SLA -------------------------------------------------------------

    def _check_exception(self, shipment_id: str, sk: str) -> None:
        uow = self._unit_of_work()
        work = SimpleWork(
            lambda store: (self.index.read_exception(shipment_id, sk), self.index.read_shipment(shipment_id)),
            lambda loaded, now: escalate(loaded, now, self.rules),
        )
        try:
            checked = uow.run(work)
        except Conflict:
            self.outcome.counts["escalate_conflicts"] += uow.conflicts
            self._gave_up(shipment_id)
            return
        self.outcome.counts["escalate_conflicts"] += uow.conflicts
        if checked.written is None or checked.incident is None:
            self.outcome.counts["stale"] += 1
            return
        self.outcome.counts[f"escalated.{checked.incident.type.value}"] += 1
        self._settle(checked.written, self._relay(uow, []))

    def _gave_up(self, shipment_id: str) -> None:
        """The record kept changing under us: its timer stays due, and the cursor stays put so
        the next run finds it again."""
        self.outcome.complete = False
        self.outcome.problems.append(f"{shipment_id}: changed concurrently too often; left for the next run")

    # -- publication ----------------------------------------------------------------------

    def _relay(self, uow: UnitOfWork, drained: list[OutboxEntry]) -> Relayed:
        """Publish what the unit of work holds: this run's news, and the ``drained`` leftovers
        of a writer that could not publish (counted apart)."""
        relayed = uow.relay()
        leftover = {(e.shipment_id, e.sequence) for e in drained}
        from_leftovers = sum(1 for e in relayed.accepted if (e.shipment_id, e.sequence) in leftover)
        self.outcome.counts["drained"] += from_leftovers
        self.outcome.counts["published"] += len(relayed.accepted) - from_leftovers
        return relayed

    def _settle(self, shipment: Shipment, relayed: Relayed) -> None:
        """Once the bus took what was just committed, drop the pending mark (the timer then
        follows the silence deadline again, or leaves the index)."""
        if not relayed.complete:
            self.outcome.problems.append(
                f"{shipment.shipment_id}: the bus refused {len(relayed.refused)} event(s)"
                + (f" ({'; '.join(relayed.problems)})" if relayed.problems else "")
            )
            return
        self.index.move_timer(shipment, due=shipment.silence_due_at, now=self.now, clear_pending=True)

    def _leftovers_of(self, shipment: Shipment) -> tuple[list[OutboxEntry], bool]:
        """The outbox entries a writer left behind that are ripe to publish, and whether others
        must wait (too fresh for anyone but their writer to publish)."""
        entries = self.index.pending_outbox(shipment.shipment_id)
        ripe = leftovers(entries, self.now, CommitOptions())
        return ripe, len(ripe) < len(entries)


def check_timers(
    *, index: TimerIndex, publisher: Publisher, now: datetime, time_left: Callable[[], float] = lambda: 1e9
) -> CheckOutcome:
    """One checker run: every timer due by ``now``, from the cursor's hour on."""
    return Checker(index=index, publisher=publisher, now=now, time_left=time_left).run()


def run_checker(time_left: Callable[[], float], remembered: dict[str, str] | None = None) -> CheckOutcome:
    """One scheduled run against the table and bus named by the environment; ``remembered``
    is the warm container's memory of the cursor (``DynamoTimerIndex``)."""
    from shared import clock
    from shared.dal.bus import EventBridgePublisher
    from shared.dal.timers import DynamoTimerIndex
    from shared.settings import SilenceCheckerSettings, load

    settings = load(SilenceCheckerSettings)
    return check_timers(
        index=DynamoTimerIndex(settings.shipments_table, remembered),
        publisher=EventBridgePublisher(settings.event_bus_name),
        now=clock.now(),
        time_left=time_left,
    )
