"""Committing a batch's canonical events to their shipments (the processor's second step).

Tracking numbers are first grouped into parcels: two numbers linked by a leg (a shipper
carrier's and a last-mile carrier's, DESIGN §3) or already mapped to one shipment are one
parcel. Each parcel is then committed on its own: its partition is loaded in one Query,
events already stored are dropped by ``event_id``, the status is recomputed from the whole
timeline, and the new events, the shipment record (conditioned on its ``version``), the
tracking numbers it claims and an outbox entry per announced transition are written in one
transaction. When a leg link reveals that two shipments created separately are one parcel,
the younger is merged into the older: its events are copied over first (idempotently), and
the last transaction repoints its tracking numbers and marks it ``merged_into``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from shared import clock
from shared.clock import isoformat_z
from shared.dal.shipments import MAX_TRANSACTION_ITEMS, Absorbed, Commit, Reread
from shared.errors import Conflict
from shared.logic.incidents.playbooks import (
    Announcement,
    incident_detail,
    order_key,
    outbox_entries,
    playbooks,
    reconcile,
    resolve_all,
)
from shared.logic.incidents.silence import silence_fields
from shared.logic.polling.cadence import DEFAULT_POLICY, PollPolicy, next_poll, shard_of
from shared.logic.shipments.timeline import Transition, news, walk
from shared.models.canonical import CanonicalEvent, Milestone, reading_strength
from shared.models.incidents import ScanSummary
from shared.models.shipment import (
    REGISTRATION_FIELDS,
    OutboxEntry,
    Partition,
    QuarantineRecord,
    Shipment,
    StoredEvent,
    TrackingKey,
    new_public_token,
    new_shipment_id,
)

MILESTONE_REACHED = "Shipment Milestone Reached"
COMMIT_ATTEMPTS = 6
# Transaction items each change may need: a new event and its outbox entry; a better
# reading (new item, deletion of the old one when its instant moved, an outbox entry).
FRESH_COST = 2
REREAD_COST = 3


class ShipmentStore(Protocol):
    def resolve(self, keys: Collection[TrackingKey]) -> dict[TrackingKey, str]: ...
    def load(self, shipment_id: str) -> Partition | None: ...
    def commit(self, commit: Commit) -> None: ...
    def delete_outbox(self, entries: Sequence[OutboxEntry]) -> None: ...
    def quarantine(self, record: QuarantineRecord) -> None: ...


@dataclass(frozen=True)
class CommitOptions:
    # Outbox entries older than this are leftovers of a crashed run (longer than an
    # event_processor invocation can last, 30 s).
    leftover_grace: timedelta = timedelta(seconds=60)
    poll_sources: frozenset[str] = frozenset()  # sources whose APIs the poller may call
    policy: PollPolicy = DEFAULT_POLICY


@dataclass
class Group:
    """One parcel's share of a batch."""

    keys: list[TrackingKey]  # its tracking numbers seen in the batch, the shipper carrier's first
    owners: dict[TrackingKey, str]  # tracking number → shipment already holding it
    firsts: set[TrackingKey] = field(default_factory=set)  # shipper carriers' numbers of its legs
    events: dict[str, StoredEvent] = field(default_factory=dict)
    message_ids: set[str] = field(default_factory=set)
    duplicates_in_batch: int = 0
    retrying: bool = False  # one of its messages is being delivered again
    pushed_at: datetime | None = None  # newest receipt of a webhook-delivered event

    @property
    def shipment_ids(self) -> list[str]:
        return list(dict.fromkeys(self.owners[key] for key in self.keys if key in self.owners))


@dataclass
class Committed:
    shipment_id: str | None = None
    stored: int = 0
    duplicates: int = 0
    reread: int = 0  # stored readings replaced by a better reading of the same scan
    pending: list[OutboxEntry] = field(default_factory=list)


@dataclass
class Contribution:
    """What one staged message brings to the grouping (see ``group_batch``)."""

    message_id: str
    source: str
    pushed: bool
    attempt: int
    events: Sequence[CanonicalEvent]
    legs: Sequence[tuple[TrackingKey, TrackingKey]]
    received_at: datetime | None = None


class _Keys:
    """Union-find over tracking numbers."""

    def __init__(self) -> None:
        self.parent: dict[TrackingKey, TrackingKey] = {}

    def find(self, key: TrackingKey) -> TrackingKey:
        self.parent.setdefault(key, key)
        while self.parent[key] != key:
            self.parent[key] = self.parent[self.parent[key]]
            key = self.parent[key]
        return key

    def union(self, a: TrackingKey, b: TrackingKey) -> None:
        self.parent[self.find(b)] = self.find(a)


def group_batch(contributions: Iterable[Contribution], resolve: Any) -> list[Group]:
    """Group a batch's events into parcels (``resolve``: the store's ``resolve``)."""
    contributions = list(contributions)
    keys = _Keys()
    firsts: list[TrackingKey] = []
    for item in contributions:
        for first, last_mile in item.legs:
            keys.union(first, last_mile)
            firsts.append(first)
        for event in item.events:
            keys.find(TrackingKey(event.carrier, event.tracking_number))
    owners: dict[TrackingKey, str] = resolve(list(keys.parent)) if keys.parent else {}
    by_shipment: dict[str, TrackingKey] = {}
    for key, shipment_id in owners.items():  # numbers of one shipment are one parcel
        if shipment_id in by_shipment:
            keys.union(by_shipment[shipment_id], key)
        else:
            by_shipment[shipment_id] = key
    groups: dict[TrackingKey, Group] = {}
    for key in sorted(keys.parent, key=lambda k: (k not in firsts, str(k))):
        root = keys.find(key)
        group = groups.setdefault(root, Group(keys=[], owners={}))
        group.keys.append(key)
        if key in firsts:
            group.firsts.add(key)
        if key in owners:
            group.owners[key] = owners[key]
    for item in contributions:
        for event in item.events:
            group = groups[keys.find(TrackingKey(event.carrier, event.tracking_number))]
            group.message_ids.add(item.message_id)
            group.retrying |= item.attempt > 1
            if item.pushed and item.received_at and (group.pushed_at is None or item.received_at > group.pushed_at):
                group.pushed_at = item.received_at
            candidate = StoredEvent(event=event, source=item.source)
            held = group.events.get(event.event_id)
            if held is None:
                group.events[event.event_id] = candidate
            else:
                group.duplicates_in_batch += 1
                group.events[event.event_id] = _stronger(held, candidate)
        for first, _ in item.legs:
            groups[keys.find(first)].message_ids.add(item.message_id)
    return [group for group in groups.values() if group.events or len(group.keys) > 1]


# ------------------------------------------------------------------------------ one parcel


def _stronger(held: StoredEvent, candidate: StoredEvent) -> StoredEvent:
    """The better of two readings of one scan, keeping the earliest receipt."""
    best, other = (
        (candidate, held)
        if reading_strength(candidate.event, candidate.source) > reading_strength(held.event, held.source)
        else (held, candidate)
    )
    if other.event.received_at < best.event.received_at:
        best = StoredEvent(best.event.model_copy(update={"received_at": other.event.received_at}), best.source)
    return best


def milestone_detail(shipment: Shipment, transition: Transition, sequence: int) -> dict[str, Any]:
    """The ``Shipment Milestone Reached`` detail (the README documents this contract)."""
    event = transition.event
    return {
        "shipment_id": shipment.shipment_id,
        "order_id": shipment.order_id,
        "carrier": shipment.carrier,
        "tracking_number": shipment.tracking_number,
        "tracking_numbers": shipment.tracking_keys,
        "sequence": sequence,
        "milestone": transition.status.value,
        "previous_status": transition.previous.value if transition.previous else None,
        "occurred_at": isoformat_z(event.occurred_at),
        "event": event.to_json_dict(),
        "state": {
            "status": shipment.status.value if shipment.status else None,
            "status_since": isoformat_z(shipment.status_since) if shipment.status_since else None,
            "last_event_at": isoformat_z(shipment.last_event_at) if shipment.last_event_at else None,
            "event_count": shipment.event_count,
        },
    }


def poll_fields(shipment: Shipment, now: datetime, options: CommitOptions) -> dict[str, Any]:
    """Where the shipment stands in the poll due-index after this commit.

    The poller asks the carrier now holding the parcel: the last-mile carrier once the
    parcel reached it, the shipper carrier before. A future due time only moves earlier on
    a commit (a parcel out for delivery is polled sooner); the poller moves it later after
    each poll. Terminal or silent shipments leave the index.
    """
    keys = shipment.keys
    target = keys[0]
    reached_last_mile = shipment.status is not None and shipment.status.rank >= Milestone.HANDED_TO_LAST_MILE.rank
    if reached_last_mile and len(keys) > 1:
        target = keys[-1]
    source: str | None = target.carrier if target.carrier in options.poll_sources else None
    if source is None and shipment.first_source == "seventeentrack" and "seventeentrack" in options.poll_sources:
        source, target = "seventeentrack", keys[0]
    due = None
    if source is not None:
        due = next_poll(
            shipment_id=shipment.shipment_id,
            status=shipment.status,
            now=now,
            last_news_at=max(filter(None, (shipment.last_event_at, shipment.created_at))),
            last_push_at=shipment.last_push_at,
            policy=options.policy,
        )
    if due is None:
        return {"poll_source": None, "poll_number": None, "poll_due_at": None, "poll_shard": None}
    if shipment.poll_due_at is not None and shipment.poll_source == source and now < shipment.poll_due_at <= due:
        # An earlier future due time stands. A past one does not: a poll may be in flight,
        # and moving the due time is what tells the poller's conditional re-arm that this
        # commit happened (its re-arm would otherwise apply a cadence from stale status).
        due = shipment.poll_due_at
    return {
        "poll_source": source,
        "poll_number": target.tracking_number,
        "poll_due_at": due,
        "poll_shard": shard_of(shipment.shipment_id),
    }


def _new_shipment(key: TrackingKey, source: str, now: datetime) -> Shipment:
    return Shipment(
        shipment_id=new_shipment_id(),
        carrier=key.carrier,
        tracking_number=key.tracking_number,
        public_token=new_public_token(),
        created_at=now,
        updated_at=now,
        first_source=source,
        tracking_keys=[str(key)],
    )


def _build(
    partition: Partition | None,
    group: Group,
    fresh: list[StoredEvent],
    absorbing: list[Partition],
    now: datetime,
    options: CommitOptions,
    rereads: list[Reread],
) -> Commit:
    """The transaction adding ``fresh`` events, replacing stored readings by better ones
    (``rereads``), and, on the last slice, absorbing other shipments."""
    sources = [s.source for s in fresh] + [r.better.source for r in rereads]
    shipment = (
        partition.shipment if partition else _new_shipment(group.keys[0], sources[0] if sources else "unknown", now)
    )
    replaced = {r.stored.event_id: r.better.event for r in rereads}
    existing = [replaced.get(stored.event.event_id, stored.event) for stored in partition.events] if partition else []
    before = {stored.event.event_id: stored.event for stored in partition.events} if partition else {}
    after = walk([*existing, *(stored.event for stored in fresh)])
    announced = news(
        after,
        previous_status_event=before.get(shipment.status_event_id or ""),
        # A better reading of a stored scan is not news of its own; it is announced only
        # if it changes the status (news() compares the status before and after).
        new_event_ids={stored.event.event_id for stored in fresh},
    )
    owned = set(partition.shipment.keys) if partition else set()  # numbers already claimed by it
    all_keys = [*shipment.keys, *(k for k in group.keys if k not in shipment.keys)]
    for other in absorbing:
        all_keys += [k for k in other.shipment.keys if k not in all_keys]
    # The shipper carrier's number leads, whichever number was seen first: the record's
    # carrier and number, the poller's choice of carrier and the page's order follow it.
    all_keys.sort(key=lambda k: k not in group.firsts)
    last = after.last_event
    pushes = [t for t in (shipment.last_push_at, group.pushed_at) if t is not None]
    updated = shipment.model_copy(
        update={
            "carrier": all_keys[0].carrier,
            "tracking_number": all_keys[0].tracking_number,
            "status": after.status,
            "status_since": after.status_event.occurred_at if after.status_event else None,
            "status_event_id": after.status_event.event_id if after.status_event else None,
            "last_event_at": last.occurred_at if last else None,
            "event_count": len(after.ordered),
            "sequence": shipment.sequence + len(announced),
            "version": shipment.version + 1,
            "updated_at": now,
            "tracking_keys": [str(k) for k in all_keys],
            "last_push_at": max(pushes) if pushes else None,
        }
    )
    updated = updated.model_copy(update=poll_fields(updated, now, options))
    registered = next((other.shipment for other in absorbing if other.shipment.registered_at), None)
    if updated.registered_at is None and registered is not None:  # the merchant's data survives the merge
        updated = updated.model_copy(update={name: getattr(registered, name) for name in REGISTRATION_FIELDS})
    # Exceptions: the stored ones reconciled with the timeline, then the silence rule that runs now.
    updated = updated.model_copy(update={"last_scan": ScanSummary.of(last) if last else None})
    stored_exceptions = partition.incidents if partition else []
    reconciled = reconcile(updated, stored_exceptions, after.ordered, now=now, rules=playbooks())
    written = {w.exception.exception_id: w.exception for w in reconciled.writes}
    exceptions_now = [*(written.pop(e.exception_id, e) for e in stored_exceptions), *written.values()]
    updated = updated.model_copy(update={"open_exceptions": reconciled.open_types})
    updated = updated.model_copy(update=silence_fields(updated, after.ordered, exceptions_now, now=now))
    # One sequence for milestones and exception changes, in timeline order.
    news_items: list[tuple[tuple[Any, ...], Transition | Announcement]] = [
        *((order_key(t.event, now, 0), t) for t in announced),
        *((a.at, a) for a in reconciled.announcements),
    ]
    news_items.sort(key=lambda item: item[0])
    updated = updated.model_copy(update={"sequence": shipment.sequence + len(news_items)})
    outbox = [
        OutboxEntry(
            shipment_id=shipment.shipment_id,
            sequence=shipment.sequence + index,
            detail_type=item.detail_type if isinstance(item, Announcement) else MILESTONE_REACHED,
            detail=(
                incident_detail(updated, item.exception, shipment.sequence + index)
                if isinstance(item, Announcement)
                else milestone_detail(updated, item, shipment.sequence + index)
            ),
            created_at=now,
        )
        for index, (_, item) in enumerate(news_items, start=1)
    ]
    absorbed: list[Absorbed] = []
    exception_writes = list(reconciled.writes)
    for other in absorbing:
        closing, closed = resolve_all(other, now=now, note=f"merged into {shipment.shipment_id}")
        merged = other.shipment.model_copy(
            update={
                "merged_into": shipment.shipment_id,
                "merged_into_token": shipment.public_token,
                "version": other.shipment.version + 1,
                "updated_at": now,
                "poll_source": None,
                "poll_number": None,
                "poll_due_at": None,
                "poll_shard": None,
                "open_exceptions": [],
                "silence_type": None,
                "silence_anchor": None,
                "silence_due_at": None,
                "timer_due_at": None,
                "outbox_pending_since": None,
                "sequence": other.shipment.sequence + len(closed),
            }
        )
        exception_writes += closing
        outbox += outbox_entries(merged, closed, other.shipment.sequence + 1, now)
        absorbed.append(
            Absorbed(
                shipment=merged,
                expected_version=other.shipment.version,
                repoint=[
                    k
                    for k in other.shipment.keys
                    if group.owners.get(k, other.shipment.shipment_id) == other.shipment.shipment_id
                ],
            )
        )
    claimed = set(group.owners)
    return Commit(
        shipment=updated,
        expected_version=shipment.version if partition else None,
        events=fresh,
        outbox=outbox,
        claim_keys=[k for k in group.keys if k not in claimed and k not in owned],
        absorb=absorbed,
        replace_events=rereads,
        incidents=exception_writes,
    )


def _load_parcel(group: Group, store: ShipmentStore) -> tuple[Partition | None, list[Partition]]:
    """The surviving partition (the oldest shipment) and those to merge into it."""
    partitions: list[Partition] = []
    for shipment_id in group.shipment_ids:
        partition = store.load(shipment_id)
        while partition is not None and partition.shipment.merged_into:
            partition = store.load(partition.shipment.merged_into)
        if partition is not None and all(p.shipment.shipment_id != partition.shipment.shipment_id for p in partitions):
            partitions.append(partition)
    if not partitions:
        return None, []
    partitions.sort(key=lambda p: (p.shipment.created_at, p.shipment.shipment_id))
    return partitions[0], partitions[1:]


def _slice(
    fresh: list[StoredEvent], rereads: list[Reread], overhead: int
) -> tuple[list[StoredEvent], list[Reread], bool]:
    """The changes that fit one transaction beside ``overhead`` items, and whether that is all."""
    capacity = MAX_TRANSACTION_ITEMS - overhead
    if capacity < max(FRESH_COST, REREAD_COST):
        raise ValueError(f"a parcel with {overhead} items of bookkeeping cannot be committed in one transaction")
    taken_rereads = rereads[: capacity // REREAD_COST]
    capacity -= REREAD_COST * len(taken_rereads)
    taken_fresh = fresh[: capacity // FRESH_COST]
    return taken_fresh, taken_rereads, len(taken_fresh) == len(fresh) and len(taken_rereads) == len(rereads)


def commit_group(group: Group, store: ShipmentStore, options: CommitOptions) -> Committed:
    """Add a parcel's events to its shipment (creating or merging), retrying on races.

    A parcel whose changes do not fit one transaction (100 items) is written in slices,
    each a consistent state of the shipment; other shipments are absorbed by the last.
    Outbox entries found in a partition are leftovers of a run that crashed before
    publishing; they join this batch's publication when this is a retry of the crashed
    message, or when they are older than ``options.leftover_grace`` — a fresher entry
    belongs to a processor still running, which publishes it itself.
    """
    outcome = Committed(duplicates=group.duplicates_in_batch)
    leftovers_checked: set[str] = set()
    attempts = 0
    while True:
        now = clock.now()
        survivor, absorbing = _load_parcel(group, store)
        for partition in [p for p in (survivor, *absorbing) if p is not None]:
            if partition.shipment.shipment_id in leftovers_checked:
                continue
            leftovers_checked.add(partition.shipment.shipment_id)
            outcome.pending.extend(
                e for e in partition.outbox if group.retrying or now - e.created_at >= options.leftover_grace
            )
        stored = {s.event.event_id: s for s in survivor.events} if survivor else {}
        rereads: list[Reread] = []
        held_back: dict[str, StoredEvent] = {}  # readings of stored scans, weighed again if not written now
        for event_id in [event_id for event_id in group.events if event_id in stored]:
            incoming = held_back[event_id] = group.events.pop(event_id)
            better = _stronger(stored[event_id], incoming)
            if better.event != stored[event_id].event:
                rereads.append(Reread(stored=stored[event_id].event, better=better))
        moving = {s.event.event_id: s for other in absorbing for s in other.events if s.event.event_id not in stored}
        fresh = sorted(
            [*group.events.values(), *(s for i, s in moving.items() if i not in group.events)],
            key=lambda s: s.event.sort_key,
        )
        unclaimed = [
            k for k in group.keys if k not in group.owners and (survivor is None or k not in survivor.shipment.keys)
        ]
        if not fresh and not absorbing and not unclaimed and not rereads:
            outcome.duplicates += len(held_back)
            outcome.shipment_id = survivor.shipment.shipment_id if survivor else None
            return outcome
        if not fresh and survivor is None:
            return outcome  # a leg link alone names no shipment yet: nothing to create
        overhead = 1 + len(unclaimed) + sum(1 + len(other.shipment.keys) for other in absorbing)
        overhead += sum(2 for p in (survivor, *absorbing) if p for e in p.incidents if e.is_open)
        fresh_now, rereads_now, last_slice = _slice(fresh, rereads, overhead)
        commit = _build(survivor, group, fresh_now, absorbing if last_slice else [], now, options, rereads_now)
        while commit.size > MAX_TRANSACTION_ITEMS and len(fresh_now) + len(rereads_now) > 1:
            # Exception changes made it too big: a smaller slice (the rest follows in the next).
            if len(fresh_now) > 1 or not rereads_now:
                fresh_now = fresh_now[: len(fresh_now) // 2]
            else:
                rereads_now = rereads_now[: len(rereads_now) // 2]
            last_slice = False
            commit = _build(survivor, group, fresh_now, [], now, options, rereads_now)
        try:
            store.commit(commit)
        except Conflict:
            attempts += 1
            if attempts >= COMMIT_ATTEMPTS:
                raise
            group.events.update(held_back)  # weigh them again against the fresh partition
            group.owners = store.resolve(group.keys)
            time.sleep(random.uniform(0.0, min(0.4, 0.02 * 2**attempts)))  # noqa: S311 - jitter, not crypto
            continue
        waiting = {r.stored.event_id for r in rereads[len(rereads_now) :]}  # for a later slice
        group.events.update({event_id: held_back[event_id] for event_id in waiting})
        outcome.duplicates += len(held_back) - len(waiting)
        shipment_id = commit.shipment.shipment_id
        outcome.shipment_id = shipment_id
        outcome.stored += sum(1 for s in commit.events if s.event.event_id in group.events)
        outcome.reread += len(rereads_now)
        outcome.pending.extend(commit.outbox)
        for event in commit.events:
            group.events.pop(event.event.event_id, None)
        for key in [*commit.claim_keys, *(k for a in commit.absorb for k in a.repoint)]:
            group.owners[key] = shipment_id
        if last_slice:
            return outcome
