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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from shared.adapters import load_adapter
from shared.clock import parse_instant
from shared.dal.bus import EventBridgePublisher
from shared.dal.shipments import DynamoShipmentStore
from shared.envelope import IngestEnvelope
from shared.errors import PayloadError, ServiceError
from shared.logic.ingest.parcels import Contribution, ParcelWork, group_batch
from shared.logic.shipments.chain import CommitOptions
from shared.logic.shipments.ports import Publisher, ShipmentStore
from shared.logic.shipments.unit_of_work import UnitOfWork
from shared.models.canonical import CanonicalEvent
from shared.models.shipment import QuarantineRecord, TrackingKey
from shared.settings import ProcessorSettings, load
from shared.sources import get_source

DEFAULT_OPTIONS = CommitOptions()


class IngestStore(ShipmentStore, Protocol):
    """The shipments table as the processor uses it: the write path's store, and the
    quarantine of payloads no adapter could read."""

    def quarantine(self, record: QuarantineRecord) -> None: ...


ArchiveReader = Callable[[str, str], bytes]


@dataclass
class Staged:
    """What one queue message contributes to a batch."""

    message_id: str
    source: str
    attempt: int = 1  # SQS ApproximateReceiveCount
    channel: str = "webhook"
    received_at: datetime | None = None
    events: list[CanonicalEvent] = field(default_factory=list)
    legs: list[tuple[TrackingKey, TrackingKey]] = field(default_factory=list)
    unmapped: list[str] = field(default_factory=list)
    quarantined: str | None = None
    ignored: str | None = None


@dataclass
class BatchOutcome:
    failed_message_ids: set[str] = field(default_factory=set)
    counts: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)


# ------------------------------------------------------------------------------ stage


def stage(message_id: str, body: str, *, attempt: int, store: IngestStore, read_archive: ArchiveReader) -> Staged:
    """Turn one ingest message into canonical events, or quarantine its payload."""
    envelope = IngestEnvelope.from_json(body)
    raw = (
        envelope.body.encode("utf-8")
        if envelope.body is not None
        else read_archive(envelope.archive_bucket, envelope.archive_key)
    )
    received_at = parse_instant(envelope.received_at)
    staged = Staged(
        message_id=message_id,
        source=envelope.source,
        attempt=attempt,
        channel=envelope.channel,
        received_at=received_at,
    )
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
    staged.legs = [(leg.first, leg.last_mile) for leg in result.legs]
    return staged


# ------------------------------------------------------------------------------ commit


def commit_batch(
    staged: Sequence[Staged],
    *,
    store: ShipmentStore,
    publisher: Publisher,
    options: CommitOptions = DEFAULT_OPTIONS,
) -> BatchOutcome:
    """Commit every staged event per parcel, then publish; failed messages are returned."""
    outcome = BatchOutcome()
    for item in staged:
        outcome.counts["payloads"] += 1
        outcome.counts["events_received"] += len(item.events)
        outcome.counts["unmapped_codes"] += len(item.unmapped)
        outcome.counts["quarantined"] += item.quarantined is not None
        outcome.counts["ignored"] += item.ignored is not None
    groups = group_batch(
        (
            Contribution(
                message_id=item.message_id,
                source=item.source,
                # A carrier's or aggregator's webhook means carrier news is flowing; a
                # warehouse's does not (the carrier still has to be asked).
                pushed=item.channel == "webhook" and get_source(item.source).kind != "partner",
                attempt=item.attempt,
                events=item.events,
                legs=item.legs,
                received_at=item.received_at,
            )
            for item in staged
        ),
        store.resolve,
    )
    uow = UnitOfWork(store, publisher)
    messages_of: dict[str, set[str]] = defaultdict(set)
    for group in groups:
        work = ParcelWork(group, options)
        try:
            uow.run(work)
        except ServiceError as error:
            outcome.failed_message_ids |= group.message_ids
            outcome.errors.append(f"{group.keys[0]}: {error.detail}")
            continue
        outcome.counts["events_stored"] += work.outcome.stored
        outcome.counts["duplicates_dropped"] += work.outcome.duplicates
        outcome.counts["readings_improved"] += work.outcome.reread
        if work.outcome.shipment_id:
            messages_of[work.outcome.shipment_id] |= group.message_ids
    # One relay for the batch: PutEvents calls of ten changes across its shipments. What the
    # bus refused (or what stayed in the outbox) fails its messages, so SQS delivers them
    # again and their retry publishes it.
    relayed = uow.relay()
    outcome.counts["changes_published"] += len(relayed.accepted)
    outcome.errors += relayed.problems
    unsettled = relayed.refused if relayed.forgotten else [*relayed.refused, *relayed.accepted]
    for entry in unsettled:
        outcome.failed_message_ids |= messages_of.get(entry.shipment_id, set())
    return outcome


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
    "readings_improved": "ScanReadingsImproved",
}


class IngestBatch:
    """One invocation's work: ``stage_record`` per SQS record, then ``flush`` the batch."""

    def __init__(
        self,
        *,
        store: IngestStore,
        publisher: Publisher,
        read_archive: ArchiveReader,
        options: CommitOptions = DEFAULT_OPTIONS,
    ) -> None:
        self.store = store
        self.publisher = publisher
        self.read_archive = read_archive
        self.options = options
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
        self.outcome = commit_batch(staged, store=self.store, publisher=self.publisher, options=self.options)
        return self.outcome.failed_message_ids

    def metrics(self) -> dict[str, int]:
        """Counts of this batch under their CloudWatch metric names."""
        return {METRIC_NAMES[name]: value for name, value in self.outcome.counts.items() if name in METRIC_NAMES}


def ingest_batch() -> IngestBatch:
    """An ``IngestBatch`` wired to the AWS resources named by the environment."""
    from shared.dal.ingress import read_archived  # the claim-check path only: large payloads

    settings = load(ProcessorSettings)
    return IngestBatch(
        store=DynamoShipmentStore(settings.shipments_table),
        publisher=EventBridgePublisher(settings.event_bus_name),
        read_archive=read_archived,
        options=CommitOptions.from_setting(settings.poll_sources),
    )
