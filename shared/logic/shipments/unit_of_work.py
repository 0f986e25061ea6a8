"""The one write path: every change to a shipment goes through a :class:`UnitOfWork`.

A caller describes its change as a :class:`Work`: how to load what it decides over, and a
*pure* decision over what was loaded (``decide``: no I/O, no clock, no randomness), which
returns the ``Commit`` to write — built with ``shared.logic.shipments.chain`` so the
timeline, incidents, silence deadline and poll cadence follow — or nothing. The unit of
work owns everything else, the same way for every caller:

- **load and decide** with the time read once from the clock;
- **the version condition**: the decision's ``Commit`` carries the record's version it was
  decided over, and the store writes it in one transaction conditioned on that version
  (and on every item it creates not existing);
- **transaction slicing**: ``decide`` is told how many transaction items it may use
  (``room``). A change that does not fit says so (``done=False``): the unit of work commits
  that slice — a consistent state of the shipment — loads again and asks for the rest. A
  ``Commit`` bigger than DynamoDB's limit is decided again with less room;
- **retries**: a ``Conflict`` (someone else wrote the shipment first) loads and decides again
  after a jittered pause, up to ``RetryPolicy.attempts`` times, then lets the ``Conflict`` go;
- **the outbox relay**: the outbox entries of every commit, and the leftovers a decision
  found, are kept until :meth:`UnitOfWork.relay` publishes them in order and deletes from the
  outbox what the bus accepted. A caller relays once per request (the processor once per
  batch: one ``PutEvents`` per ten changes across shipments).

Reactions to a change never join its transaction: they read the bus, the table's stream or
a view (``shared.logic.views``; docs/architecture.md "Write side and read side").
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Generic, Protocol, TypeVar

from shared import clock
from shared.dal.shipments import MAX_TRANSACTION_ITEMS, Commit
from shared.errors import Conflict, ServiceError
from shared.logic.shipments.ports import Publisher, ShipmentStore
from shared.models.shipment import OutboxEntry

Loaded = TypeVar("Loaded")
Result = TypeVar("Result")


@dataclass(frozen=True)
class Decision(Generic[Result]):
    """What a ``Work`` decided: the commit to write (``None``: nothing), what the caller gets
    back, outbox leftovers found in what was loaded, and whether this was the last slice."""

    commit: Commit | None
    result: Result
    leftovers: Sequence[OutboxEntry] = ()
    done: bool = True


class Work(Protocol[Loaded, Result]):
    """One caller's change. ``decide`` is pure; ``applied`` learns that a decision took effect
    (it was committed, or it wrote nothing); ``conflicted`` may refresh what ``load`` reads
    after a lost race."""

    def load(self, store: ShipmentStore) -> Loaded: ...
    def decide(self, loaded: Loaded, now: datetime, room: int) -> Decision[Result]: ...
    def applied(self, decision: Decision[Result]) -> None: ...
    def conflicted(self, store: ShipmentStore) -> None: ...


class SimpleWork(Generic[Loaded, Result]):
    """A ``Work`` from two functions, for changes that need no bookkeeping between tries."""

    def __init__(
        self,
        load: Callable[[ShipmentStore], Loaded],
        decide: Callable[[Loaded, datetime], Decision[Result]],
    ) -> None:
        self._load = load
        self._decide = decide

    def load(self, store: ShipmentStore) -> Loaded:
        return self._load(store)

    def decide(self, loaded: Loaded, now: datetime, room: int) -> Decision[Result]:
        return self._decide(loaded, now)

    def applied(self, decision: Decision[Result]) -> None:
        return None

    def conflicted(self, store: ShipmentStore) -> None:
        return None


@dataclass(frozen=True)
class RetryPolicy:
    """How often a change is decided again after losing a race, and the pause between tries
    (full jitter: uniform in ``[0, min(cap, base * 2^attempt)]``)."""

    attempts: int = 6
    base_seconds: float = 0.02
    cap_seconds: float = 0.4

    def pause(self, attempt: int) -> float:
        return random.uniform(0.0, min(self.cap_seconds, self.base_seconds * 2**attempt))  # noqa: S311 - jitter


@dataclass
class Relayed:
    """What a relay did: published and forgotten, refused by the bus (they stay in the
    outbox), and problems (the bus or the outbox cleanup failed)."""

    accepted: list[OutboxEntry] = field(default_factory=list)
    refused: list[OutboxEntry] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    forgotten: bool = True  # False: published, but still in the outbox (a retry republishes)

    @property
    def complete(self) -> bool:
        return not self.refused and self.forgotten


class UnitOfWork:
    """Loads, decides, commits (conditioned on the version), retries, slices and relays."""

    def __init__(
        self,
        store: ShipmentStore,
        publisher: Publisher,
        *,
        now: Callable[[], datetime] = clock.now,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.store = store
        self.publisher = publisher
        self.now = now
        self.retry = retry or RetryPolicy()
        self.sleep = sleep
        self.conflicts = 0  # races lost (and retried) by this unit of work
        self._pending: dict[tuple[str, int], OutboxEntry] = {}

    def run(self, work: Work[Loaded, Result]) -> Result:
        """Carry ``work`` out; its result. ``Conflict`` after ``RetryPolicy.attempts`` lost races."""
        attempt = 0
        room = MAX_TRANSACTION_ITEMS
        while True:
            loaded = work.load(self.store)
            now = self.now()
            while True:
                decision = work.decide(loaded, now, room)
                commit = decision.commit
                if commit is None or commit.size <= MAX_TRANSACTION_ITEMS:
                    break
                # What the change brings with it (incident writes, absorbed shipments) made
                # it too big: the same change, in a smaller slice.
                room -= commit.size - MAX_TRANSACTION_ITEMS
                if room <= 0:
                    raise ValueError(f"a change of {commit.size} items cannot be sliced into one transaction")
            self.keep(decision.leftovers)
            if commit is None:
                work.applied(decision)
                return decision.result
            try:
                self.store.commit(commit)
            except Conflict:
                attempt += 1
                self.conflicts += 1
                if attempt >= self.retry.attempts:
                    raise
                work.conflicted(self.store)
                self.sleep(self.retry.pause(attempt))
                room = MAX_TRANSACTION_ITEMS
                continue
            self.keep(commit.outbox)
            work.applied(decision)
            if decision.done:
                return decision.result
            room = MAX_TRANSACTION_ITEMS

    # -- the outbox relay ------------------------------------------------------------------

    def keep(self, entries: Sequence[OutboxEntry]) -> None:
        """Queue outbox entries for the next :meth:`relay` (each shipment's sequence once)."""
        for entry in entries:
            self._pending[(entry.shipment_id, entry.sequence)] = entry

    @property
    def pending(self) -> list[OutboxEntry]:
        return sorted(self._pending.values(), key=lambda e: (e.shipment_id, e.sequence))

    def relay(self) -> Relayed:
        """Publish what is pending in each shipment's order, then forget what the bus took.

        Never raises for the bus or the cleanup: a refused or unpublished entry stays in the
        outbox (the caller decides who publishes it again), and the problem is reported."""
        ordered = self.pending
        self._pending.clear()
        outcome = Relayed()
        if not ordered:
            return outcome
        try:
            refused = self.publisher.publish(ordered)
        except ServiceError as error:
            refused = ordered
            outcome.problems.append(f"publish: {error.detail}")
        refused_keys = {(e.shipment_id, e.sequence) for e in refused}
        outcome.refused = [e for e in ordered if (e.shipment_id, e.sequence) in refused_keys]
        outcome.accepted = [e for e in ordered if (e.shipment_id, e.sequence) not in refused_keys]
        if outcome.accepted:
            try:
                self.store.delete_outbox(outcome.accepted)
            except ServiceError as error:
                # Published but not forgotten: whoever drains the outbox next publishes again.
                outcome.forgotten = False
                outcome.problems.append(f"outbox cleanup: {error.detail}")
        return outcome
