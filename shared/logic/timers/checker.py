"""The silence checker (every 5 minutes): timers due in the ``ByTimer`` index.

A run Queries the index buckets from its cursor (the oldest hour that may still hold a timer)
up to now — never a Scan — and for each timer reads the record (or exception) once, strongly
consistent, then either raises the silence exception (``shared.logic.incidents.silence`` computed its
deadline), escalates an exception whose SLA passed, drains an outbox left by a failed
publication, or re-arms the timer at the real deadline. Raising is one transaction conditioned
on the record's ``version`` that creates the exception item with ``attribute_not_exists`` on
(shipment, type, episode): two checkers at once, or a retried run, raise it once.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

from shared.clock import isoformat_z
from shared.dal.incidents import Expect, IncidentWrite
from shared.dal.items import TIMER_SHARDS, bucket_hour
from shared.dal.shipments import Commit
from shared.dal.timers import Timer
from shared.errors import Conflict, ServiceError
from shared.logic.incidents.playbooks import (
    EXCEPTION_ESCALATED,
    EXCEPTION_RAISED,
    Announcement,
    Playbooks,
    announced,
    new_incident,
    playbooks,
)
from shared.models.canonical import sortable_text
from shared.models.incidents import Incident
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
LEFTOVER_GRACE = timedelta(seconds=60)  # outbox entries younger than this belong to a running writer
ATTEMPTS = 4


class TimerIndex(Protocol):
    def read_cursor(self) -> str | None: ...
    def advance_cursor(self, hour: str) -> None: ...
    def due_timers(self, bucket: str, now: datetime, page_size: int = 100) -> Iterator[Timer]: ...
    def read_shipment(self, shipment_id: str) -> Shipment | None: ...
    def read_exception(self, shipment_id: str, sk: str) -> Incident | None: ...
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
    raised: list[Incident] = field(default_factory=list)
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
        self._gave_up(shipment_id)

    def _raise(self, shipment: Shipment) -> None:
        anchor, kind = shipment.silence_anchor, shipment.silence_type
        if anchor is None or kind is None or shipment.silence_due_at is None:
            return
        exception = new_incident(
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
                incidents=[IncidentWrite(exception, Expect.NEW)],
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
                        incidents=[IncidentWrite(escalated, Expect.OPEN_UNESCALATED)],
                    )
                )
            except Conflict:
                self.outcome.counts["escalate_conflicts"] += 1
                continue
            self.outcome.counts[f"escalated.{exception.type.value}"] += 1
            self._publish_then_settle(updated, entries)
            return
        self._gave_up(shipment_id)

    def _gave_up(self, shipment_id: str) -> None:
        """The record kept changing under us: its timer stays due, and the cursor stays put so
        the next run finds it again."""
        self.outcome.complete = False
        self.outcome.problems.append(f"{shipment_id}: changed concurrently {ATTEMPTS} times; left for the next run")

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
