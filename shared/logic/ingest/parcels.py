"""The processor's decision: a batch's canonical events, grouped into parcels, each added to
its shipment through the one write path (``shared.logic.shipments.unit_of_work``).

Tracking numbers are first grouped into parcels: two numbers linked by a leg (a shipper
carrier's and a last-mile carrier's, docs/sources.md) or already mapped to one shipment are one
parcel. For each parcel, :class:`ParcelWork` loads its shipment's partition (one Query), drops
events already stored (``event_id``), keeps the better reading of a scan read twice, and hands
the new timeline to the decision chain (``shared.logic.shipments.chain``): status, poll
cadence, incidents and silence follow, and the new events, the record (conditioned on its
``version``), the tracking numbers it claims and an outbox entry per announced change are one
transaction. When a leg link reveals that two shipments created separately are one parcel,
the younger is merged into the older: its events are copied over first (idempotently), and
the last slice repoints its tracking numbers and marks it ``merged_into``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shared.dal.shipments import MAX_TRANSACTION_ITEMS, Absorbed, Commit, Reread
from shared.logic.incidents.episodes import resolve_all
from shared.logic.shipments.chain import CommitOptions, Draft, finish, incident_news, leftovers, outbox_for
from shared.logic.shipments.ports import ShipmentStore
from shared.logic.shipments.unit_of_work import Decision
from shared.models.canonical import CanonicalEvent, reading_strength
from shared.models.shipment import (
    REGISTRATION_FIELDS,
    OutboxEntry,
    Partition,
    Shipment,
    StoredEvent,
    TrackingKey,
    new_public_token,
    new_shipment_id,
)

# Transaction items each change may need: a new event and its outbox entry; a better
# reading (new item, deletion of the old one when its instant moved, an outbox entry).
FRESH_COST = 2
REREAD_COST = 3


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


def group_batch(
    contributions: Iterable[Contribution], resolve: Callable[[list[TrackingKey]], dict[TrackingKey, str]]
) -> list[Group]:
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


def _merged(other: Partition, into: Shipment, now: datetime) -> tuple[Shipment, list[Any], list[OutboxEntry]]:
    """A shipment found to be another leg of ``into``: its record marked ``merged_into`` and out of
    every index, its open incidents resolved, and their announcements in its own sequence."""
    closing, closed = resolve_all(other, now=now, note=f"merged into {into.shipment_id}")
    merged = other.shipment.model_copy(
        update={
            "merged_into": into.shipment_id,
            "merged_into_token": into.public_token,
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
    outbox = outbox_for(merged, [incident_news(a) for a in closed], other.shipment.sequence + 1, now)
    return merged, closing, outbox


def decide_parcel(
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
    loaded = partition.shipment if partition else None
    record = loaded or _new_shipment(group.keys[0], sources[0] if sources else "unknown", now)
    replaced = {r.stored.event_id: r.better.event for r in rereads}
    existing = [replaced.get(stored.event.event_id, stored.event) for stored in partition.events] if partition else []
    owned = set(partition.shipment.keys) if partition else set()  # numbers already claimed by it
    all_keys = [*record.keys, *(k for k in group.keys if k not in record.keys)]
    for other in absorbing:
        all_keys += [k for k in other.shipment.keys if k not in all_keys]
    # The shipper carrier's number leads, whichever number was seen first: the record's
    # carrier and number, the poller's choice of carrier and the page's order follow it.
    all_keys.sort(key=lambda k: k not in group.firsts)
    pushes = [t for t in (record.last_push_at, group.pushed_at) if t is not None]
    draft = Draft(
        loaded=loaded,
        record=record,
        now=now,
        options=options,
        timeline=[*existing, *(stored.event for stored in fresh)],
        stored_events=[stored.event for stored in partition.events] if partition else [],
        # A better reading of a stored scan is not news of its own; it is announced only if
        # it changes the status (timeline.news compares the status before and after).
        new_event_ids={stored.event.event_id for stored in fresh},
        incidents=list(partition.incidents) if partition else [],
        moved=True,
    )
    draft.update(
        carrier=all_keys[0].carrier,
        tracking_number=all_keys[0].tracking_number,
        tracking_keys=[str(k) for k in all_keys],
        last_push_at=max(pushes) if pushes else None,
    )
    registered = next((other.shipment for other in absorbing if other.shipment.registered_at), None)
    if draft.record.registered_at is None and registered is not None:  # the merchant's data survives the merge
        draft.update(**{name: getattr(registered, name) for name in REGISTRATION_FIELDS})
    absorbed: list[Absorbed] = []
    closings: list[Any] = []
    closing_outbox: list[OutboxEntry] = []
    for other in absorbing:
        merged, closing, outbox = _merged(other, record, now)
        closings += closing
        closing_outbox += outbox
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
    return finish(
        draft,
        events=fresh,
        replace_events=rereads,
        claim_keys=[k for k in group.keys if k not in claimed and k not in owned],
        absorb=absorbed,
        more_incident_writes=closings,
        more_outbox=closing_outbox,
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
    fresh: list[StoredEvent], rereads: list[Reread], overhead: int, room: int
) -> tuple[list[StoredEvent], list[Reread], bool]:
    """The changes that fit ``room`` transaction items beside ``overhead``, and whether that is all."""
    capacity = min(room, MAX_TRANSACTION_ITEMS) - overhead
    if capacity < max(FRESH_COST, REREAD_COST):
        raise ValueError(f"a parcel with {overhead} items of bookkeeping cannot be committed in one transaction")
    taken_rereads = rereads[: capacity // REREAD_COST]
    capacity -= REREAD_COST * len(taken_rereads)
    taken_fresh = fresh[: capacity // FRESH_COST]
    return taken_fresh, taken_rereads, len(taken_fresh) == len(fresh) and len(taken_rereads) == len(rereads)


@dataclass(frozen=True)
class ParcelSlice:
    """What one decision over a parcel chose (``ParcelWork.applied`` books it)."""

    shipment_id: str | None
    weighed: frozenset[str] = frozenset()  # batch events of scans already stored, weighed now
    waiting: frozenset[str] = frozenset()  # of those, better readings left for a later slice
    rereads: int = 0


class ParcelWork:
    """A parcel's events added to its shipment (creating or merging), as a ``Work``.

    A parcel whose changes do not fit one transaction (100 items) is written in slices, each a
    consistent state of the shipment; other shipments are absorbed by the last. Outbox
    entries found in a partition are leftovers of a run that crashed before publishing; they
    join this batch's publication when this is a retry of the crashed message, or when they
    are older than ``options.leftover_grace`` — a fresher entry belongs to a processor still
    running, which publishes it itself.
    """

    def __init__(self, group: Group, options: CommitOptions) -> None:
        self.group = group
        self.options = options
        self.outcome = Committed(duplicates=group.duplicates_in_batch)

    def load(self, store: ShipmentStore) -> tuple[Partition | None, list[Partition]]:
        return _load_parcel(self.group, store)

    def decide(
        self, loaded: tuple[Partition | None, list[Partition]], now: datetime, room: int
    ) -> Decision[ParcelSlice]:
        survivor, absorbing = loaded
        group = self.group
        found = [entry for partition in (survivor, *absorbing) if partition is not None for entry in partition.outbox]
        left = found if group.retrying else leftovers(found, now, self.options)
        stored = {s.event.event_id: s for s in survivor.events} if survivor else {}
        incoming = dict(group.events)
        rereads: list[Reread] = []
        for event_id in [event_id for event_id in incoming if event_id in stored]:
            better = _stronger(stored[event_id], incoming.pop(event_id))
            if better.event != stored[event_id].event:
                rereads.append(Reread(stored=stored[event_id].event, better=better))
        weighed = frozenset(event_id for event_id in group.events if event_id in stored)
        moving = {s.event.event_id: s for other in absorbing for s in other.events if s.event.event_id not in stored}
        fresh = sorted(
            [*incoming.values(), *(s for i, s in moving.items() if i not in incoming)],
            key=lambda s: s.event.sort_key,
        )
        unclaimed = [
            k for k in group.keys if k not in group.owners and (survivor is None or k not in survivor.shipment.keys)
        ]
        survivor_id = survivor.shipment.shipment_id if survivor else None
        if (not fresh and not absorbing and not unclaimed and not rereads) or (not fresh and survivor is None):
            # Nothing new (or a leg link alone, which names no shipment yet: nothing to create).
            return Decision(None, ParcelSlice(survivor_id, weighed), left)
        overhead = 1 + len(unclaimed) + sum(1 + len(other.shipment.keys) for other in absorbing)
        overhead += sum(2 for p in (survivor, *absorbing) if p for e in p.incidents if e.is_open)
        fresh_now, rereads_now, last_slice = _slice(fresh, rereads, overhead, room)
        commit = decide_parcel(
            survivor, group, fresh_now, absorbing if last_slice else [], now, self.options, rereads_now
        )
        waiting = frozenset(r.stored.event_id for r in rereads[len(rereads_now) :])  # for a later slice
        return Decision(
            commit,
            ParcelSlice(commit.shipment.shipment_id, weighed, waiting, len(rereads_now)),
            left,
            done=last_slice,
        )

    def applied(self, decision: Decision[ParcelSlice]) -> None:
        """Book a decision that took effect: what was stored, what was a duplicate, which
        tracking numbers now name the shipment."""
        chosen, commit, group = decision.result, decision.commit, self.group
        for event_id in chosen.weighed - chosen.waiting:  # stored scans, settled now
            group.events.pop(event_id, None)
        self.outcome.duplicates += len(chosen.weighed - chosen.waiting)
        self.outcome.shipment_id = chosen.shipment_id or self.outcome.shipment_id
        if commit is None:
            return
        self.outcome.stored += sum(1 for s in commit.events if s.event.event_id in group.events)
        self.outcome.reread += chosen.rereads
        for event in commit.events:
            group.events.pop(event.event.event_id, None)
        for key in [*commit.claim_keys, *(k for a in commit.absorb for k in a.repoint)]:
            group.owners[key] = commit.shipment.shipment_id

    def conflicted(self, store: ShipmentStore) -> None:
        """Someone else wrote first: the tracking numbers may name other shipments now."""
        self.group.owners = store.resolve(self.group.keys)
