"""Processing a batch from the ingest queue (the ``event_processor``'s logic).

Three steps, each idempotent so at-least-once delivery never duplicates anything:

1. **stage** each message: read the envelope, run the source's adapter. A verified
   payload the adapter cannot read is quarantined with its reason (and stays in the raw
   archive); it is never retried forever and never dropped.
2. **commit** per shipment: load the partition in one Query, drop events already stored
   (``event_id``), recompute the status from the whole timeline, and write the new events,
   the shipment record and an outbox entry per announced transition in one transaction,
   conditioned on the record's ``version``. A crash after this point loses nothing: the
   outbox entries are in the table.
3. **publish** every pending outbox entry of the batch's shipments (new ones and any left
   by an earlier crash) in ``PutEvents`` calls of ≤ 10, then delete what the bus accepted.
   Messages whose shipment could not be committed or published are reported as failed so
   SQS delivers them again; their retry finds the events stored and drains the outbox.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from shared import clock
from shared.adapters import load_adapter
from shared.clock import isoformat_z
from shared.dal.bus import EventBridgePublisher
from shared.dal.ingress import read_archived
from shared.dal.shipments import Commit, DynamoShipmentStore
from shared.envelope import IngestEnvelope
from shared.errors import Conflict, PayloadError, ServiceError
from shared.logic.timeline import Transition, news, walk
from shared.models.canonical import CanonicalEvent
from shared.models.shipment import (
    OutboxEntry,
    Partition,
    QuarantineRecord,
    Shipment,
    StoredEvent,
    TrackingKey,
    new_public_token,
    new_shipment_id,
)
from shared.settings import ProcessorSettings, load

MILESTONE_REACHED = "Shipment Milestone Reached"
COMMIT_ATTEMPTS = 6
# Longer than an event_processor invocation can run (its timeout is 30 s).
DEFAULT_LEFTOVER_GRACE = timedelta(seconds=60)
# Events per transaction: each may add an outbox entry, plus the record and a tracking number.
EVENTS_PER_COMMIT = 45


class ShipmentStore(Protocol):
    def resolve(self, keys: Collection[TrackingKey]) -> dict[TrackingKey, str]: ...
    def load(self, shipment_id: str) -> Partition | None: ...
    def commit(self, commit: Commit) -> None: ...
    def delete_outbox(self, entries: Sequence[OutboxEntry]) -> None: ...
    def quarantine(self, record: QuarantineRecord) -> None: ...


class EventPublisher(Protocol):
    def publish(self, entries: Sequence[OutboxEntry]) -> list[OutboxEntry]: ...


ArchiveReader = Callable[[str, str], bytes]


@dataclass
class Staged:
    """What one queue message contributes to a batch."""

    message_id: str
    source: str
    attempt: int = 1  # SQS ApproximateReceiveCount
    events: list[CanonicalEvent] = field(default_factory=list)
    unmapped: list[str] = field(default_factory=list)
    quarantined: str | None = None
    ignored: str | None = None


@dataclass
class BatchOutcome:
    failed_message_ids: set[str] = field(default_factory=set)
    counts: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)


# ------------------------------------------------------------------------------ stage


def stage(message_id: str, body: str, *, attempt: int, store: ShipmentStore, read_archive: ArchiveReader) -> Staged:
    """Turn one ingest message into canonical events, or quarantine its payload."""
    envelope = IngestEnvelope.from_json(body)
    raw = (
        envelope.body.encode("utf-8")
        if envelope.body is not None
        else read_archive(envelope.archive_bucket, envelope.archive_key)
    )
    received_at = datetime.fromisoformat(envelope.received_at.replace("Z", "+00:00"))
    staged = Staged(message_id=message_id, source=envelope.source, attempt=attempt)
    try:
        result = load_adapter(envelope.source).normalize(raw, received_at=received_at)
    except PayloadError as error:
        store.quarantine(
            QuarantineRecord(
                source=envelope.source,
                received_at=received_at,
                delivery_id=envelope.delivery_id,
                content_sha256=envelope.content_sha256,
                archive_bucket=envelope.archive_bucket,
                archive_key=envelope.archive_key,
                reason=error.detail,
            )
        )
        staged.quarantined = error.detail
        return staged
    staged.events, staged.unmapped, staged.ignored = result.events, result.unmapped, result.ignored
    return staged


# ------------------------------------------------------------------------------ commit


@dataclass
class _Group:
    """The batch's events for one shipment (or one not yet created)."""

    key: TrackingKey
    shipment_id: str | None
    events: dict[str, StoredEvent] = field(default_factory=dict)
    message_ids: set[str] = field(default_factory=set)
    duplicates_in_batch: int = 0
    retrying: bool = False  # one of its messages is being delivered again


@dataclass
class _Committed:
    stored: int = 0
    duplicates: int = 0
    pending: list[OutboxEntry] = field(default_factory=list)


def milestone_detail(shipment: Shipment, transition: Transition, sequence: int) -> dict[str, Any]:
    """The ``Shipment Milestone Reached`` detail (the README documents this contract)."""
    event = transition.event
    return {
        "shipment_id": shipment.shipment_id,
        "order_id": shipment.order_id,
        "carrier": shipment.carrier,
        "tracking_number": shipment.tracking_number,
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


def _new_shipment(key: TrackingKey, source: str, now: datetime) -> Shipment:
    return Shipment(
        shipment_id=new_shipment_id(),
        carrier=key.carrier,
        tracking_number=key.tracking_number,
        public_token=new_public_token(),
        created_at=now,
        updated_at=now,
        first_source=source,
    )


def _commit_slice(partition: Partition | None, group: _Group, fresh: list[StoredEvent], now: datetime) -> Commit:
    """The transaction that adds ``fresh`` events to a partition (or creates it)."""
    first_source = fresh[0].source if fresh else "unknown"
    shipment = partition.shipment if partition else _new_shipment(group.key, first_source, now)
    existing = [stored.event for stored in partition.events] if partition else []
    before = {event.event_id: event for event in existing}
    after = walk([*existing, *(stored.event for stored in fresh)])
    announced = news(
        after,
        previous_status_event=before.get(shipment.status_event_id or ""),
        new_event_ids={stored.event.event_id for stored in fresh},
    )
    last = after.last_event
    updated = shipment.model_copy(
        update={
            "status": after.status,
            "status_since": after.status_event.occurred_at if after.status_event else None,
            "status_event_id": after.status_event.event_id if after.status_event else None,
            "last_event_at": last.occurred_at if last else None,
            "event_count": len(after.ordered),
            "sequence": shipment.sequence + len(announced),
            "version": shipment.version + 1,
            "updated_at": now,
        }
    )
    outbox = [
        OutboxEntry(
            shipment_id=shipment.shipment_id,
            sequence=shipment.sequence + index,
            detail_type=MILESTONE_REACHED,
            detail=milestone_detail(updated, transition, shipment.sequence + index),
            created_at=now,
        )
        for index, transition in enumerate(announced, start=1)
    ]
    return Commit(
        shipment=updated,
        expected_version=shipment.version if partition else None,
        events=fresh,
        outbox=outbox,
        claim_keys=[] if partition else [group.key],
    )


def _commit_group(group: _Group, store: ShipmentStore, *, leftover_grace: timedelta) -> _Committed:
    """Add a group's events to its shipment, retrying on concurrent changes.

    Outbox entries found in the partition are leftovers of a run that crashed before
    publishing; they join this batch's publication when this is a retry of the crashed
    message, or when they are older than ``leftover_grace`` (longer than a processor
    invocation can last). A fresher entry belongs to a processor still running, which
    will publish it itself: taking it too would publish it twice.
    """
    outcome = _Committed(duplicates=group.duplicates_in_batch)
    leftovers_checked = False
    attempts = 0
    while True:
        partition = store.load(group.shipment_id) if group.shipment_id else None
        now = clock.now()
        if partition is not None and not leftovers_checked:
            outcome.pending.extend(
                entry for entry in partition.outbox if group.retrying or now - entry.created_at >= leftover_grace
            )
            leftovers_checked = True
        stored_ids = {stored.event.event_id for stored in partition.events} if partition else set()
        for event_id in [event_id for event_id in group.events if event_id in stored_ids]:
            del group.events[event_id]
            outcome.duplicates += 1
        if not group.events:
            return outcome
        fresh = sorted(group.events.values(), key=lambda stored: stored.event.sort_key)[:EVENTS_PER_COMMIT]
        commit = _commit_slice(partition, group, fresh, now)
        try:
            store.commit(commit)
        except Conflict:
            attempts += 1
            if attempts >= COMMIT_ATTEMPTS:
                raise
            if partition is None:  # another processor created it first: use theirs
                group.shipment_id = store.resolve([group.key]).get(group.key)
            continue
        group.shipment_id = commit.shipment.shipment_id
        outcome.stored += len(commit.events)
        outcome.pending.extend(commit.outbox)
        for stored in commit.events:
            del group.events[stored.event.event_id]


def commit_batch(
    staged: Sequence[Staged],
    *,
    store: ShipmentStore,
    publisher: EventPublisher,
    leftover_grace: timedelta = DEFAULT_LEFTOVER_GRACE,
) -> BatchOutcome:
    """Commit every staged event per shipment, then publish; failed messages are returned."""
    outcome = BatchOutcome()
    for item in staged:
        outcome.counts["payloads"] += 1
        outcome.counts["events_received"] += len(item.events)
        outcome.counts["unmapped_codes"] += len(item.unmapped)
        outcome.counts["quarantined"] += item.quarantined is not None
        outcome.counts["ignored"] += item.ignored is not None

    keys = {TrackingKey(e.carrier, e.tracking_number) for item in staged for e in item.events}
    known = store.resolve(keys) if keys else {}
    groups: dict[str, _Group] = {}
    for item in staged:
        for event in item.events:
            key = TrackingKey(event.carrier, event.tracking_number)
            shipment_id = known.get(key)
            group = groups.setdefault(shipment_id or f"new:{key}", _Group(key=key, shipment_id=shipment_id))
            group.message_ids.add(item.message_id)
            group.retrying |= item.attempt > 1
            if event.event_id in group.events:
                group.duplicates_in_batch += 1
            else:
                group.events[event.event_id] = StoredEvent(event=event, source=item.source)

    pending: list[OutboxEntry] = []
    messages_of: dict[str, set[str]] = defaultdict(set)
    for group in groups.values():
        try:
            committed = _commit_group(group, store, leftover_grace=leftover_grace)
        except ServiceError as error:
            outcome.failed_message_ids |= group.message_ids
            outcome.errors.append(f"{group.key}: {error.detail}")
            continue
        outcome.counts["events_stored"] += committed.stored
        outcome.counts["duplicates_dropped"] += committed.duplicates
        pending.extend(committed.pending)
        if group.shipment_id:
            messages_of[group.shipment_id] |= group.message_ids

    _publish(pending, store=store, publisher=publisher, messages_of=messages_of, outcome=outcome)
    return outcome


def _publish(
    pending: list[OutboxEntry],
    *,
    store: ShipmentStore,
    publisher: EventPublisher,
    messages_of: dict[str, set[str]],
    outcome: BatchOutcome,
) -> None:
    if not pending:
        return
    unique = {(entry.shipment_id, entry.sequence): entry for entry in pending}
    ordered = sorted(unique.values(), key=lambda entry: (entry.shipment_id, entry.sequence))
    try:
        failed = publisher.publish(ordered)
    except ServiceError as error:
        failed = ordered
        outcome.errors.append(f"publish: {error.detail}")
    failed_keys = {(entry.shipment_id, entry.sequence) for entry in failed}
    accepted = [entry for entry in ordered if (entry.shipment_id, entry.sequence) not in failed_keys]
    outcome.counts["changes_published"] += len(accepted)
    for entry in failed:
        outcome.failed_message_ids |= messages_of.get(entry.shipment_id, set())
    if accepted:
        try:
            store.delete_outbox(accepted)
        except ServiceError as error:
            # Published but not forgotten: the next retry would publish again, so say so.
            outcome.errors.append(f"outbox cleanup: {error.detail}")
            for entry in accepted:
                outcome.failed_message_ids |= messages_of.get(entry.shipment_id, set())


# ------------------------------------------------------------------------------ wiring

METRIC_NAMES = {
    "payloads": "PayloadsProcessed",
    "events_received": "EventsReceived",
    "events_stored": "EventsStored",
    "duplicates_dropped": "DuplicatesDropped",
    "changes_published": "ChangesPublished",
    "quarantined": "PayloadsQuarantined",
    "ignored": "PayloadsIgnored",
    "unmapped_codes": "UnmappedCodes",
}


class IngestBatch:
    """One invocation's work: ``stage_record`` per SQS record, then ``flush`` the batch."""

    def __init__(
        self,
        *,
        store: ShipmentStore,
        publisher: EventPublisher,
        read_archive: ArchiveReader,
        leftover_grace: timedelta = DEFAULT_LEFTOVER_GRACE,
    ) -> None:
        self.store = store
        self.publisher = publisher
        self.read_archive = read_archive
        self.leftover_grace = leftover_grace
        self.outcome = BatchOutcome()
        self.unmapped: Counter[str] = Counter()

    def stage_record(self, record: Any) -> Staged:
        """Powertools record handler (an ``SQSRecord``)."""
        attempt = int(record.attributes.approximate_receive_count or 1)
        staged = stage(
            record.message_id, record.body, attempt=attempt, store=self.store, read_archive=self.read_archive
        )
        for code in staged.unmapped:
            self.unmapped[f"{staged.source}:{code}"] += 1
        return staged

    def flush(self, staged: list[Staged]) -> set[str]:
        self.outcome = commit_batch(
            staged, store=self.store, publisher=self.publisher, leftover_grace=self.leftover_grace
        )
        return self.outcome.failed_message_ids

    def metrics(self) -> dict[str, int]:
        """Counts of this batch under their CloudWatch metric names."""
        return {METRIC_NAMES[name]: value for name, value in self.outcome.counts.items() if name in METRIC_NAMES}


def ingest_batch() -> IngestBatch:
    """An ``IngestBatch`` wired to the AWS resources named by the environment."""
    settings = load(ProcessorSettings)
    return IngestBatch(
        store=DynamoShipmentStore(settings.shipments_table),
        publisher=EventBridgePublisher(settings.event_bus_name),
        read_archive=read_archived,
    )
