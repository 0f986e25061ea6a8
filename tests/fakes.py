"""In-memory stand-ins implementing the same Protocols as the data layer.

``tests/integration/test_store_contract.py`` runs one scenario against both this fake
and the DynamoDB store, so the fake cannot drift from the real semantics; mypy checks
it against the Protocols (``make typecheck``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Iterator, Sequence
from datetime import datetime

from shared.clock import isoformat_z
from shared.dal.incidents import Expect, incident_sk
from shared.dal.items import event_sk, registration_item, shipment_from_item, shipment_item
from shared.dal.orders import OrderPage
from shared.dal.shipments import MAX_TRANSACTION_ITEMS, Commit, DueShipment
from shared.errors import Conflict
from shared.logic.api.auth import ApiKeyStore
from shared.logic.api.merchant import OrderIndex
from shared.logic.ingest.process import IngestStore
from shared.logic.polling.poller import DueIndex
from shared.logic.shipments.ports import Publisher, ShipmentStore
from shared.models.apikeys import ApiKeyRecord
from shared.models.canonical import sortable_text
from shared.models.incidents import Incident
from shared.models.shipment import (
    OutboxEntry,
    Partition,
    QuarantineRecord,
    Shipment,
    StoredEvent,
    TrackingKey,
    last_scan_of,
)


class InMemoryShipmentStore:
    """The shipments table in memory. ``shipments`` holds each record with its registration as
    the table keeps them (``shared.dal.items``: no last scan; a registration item written only
    when the commit writes it); ``load`` adds the last scan from the timeline, as
    ``DynamoShipmentStore`` does."""

    def __init__(self) -> None:
        self.shipments: dict[str, Shipment] = {}
        self.events: dict[str, dict[str, StoredEvent]] = {}  # shipment → sort key → event, as in DynamoDB
        self.outbox: dict[str, dict[int, OutboxEntry]] = {}
        self.tracking: dict[TrackingKey, str] = {}
        self.quarantined: list[QuarantineRecord] = []
        self.incidents: dict[str, dict[str, Incident]] = {}  # shipment → sort key → exception
        self.commits = 0
        self.index_reads = 0
        self.fail_next_commit: Exception | None = None

    def resolve(self, keys: Collection[TrackingKey]) -> dict[TrackingKey, str]:
        return {key: self.tracking[key] for key in keys if key in self.tracking}

    def load(self, shipment_id: str) -> Partition | None:
        shipment = self.shipments.get(shipment_id)
        if shipment is None:
            return None
        events = list(self.events.get(shipment_id, {}).values())
        return Partition(
            shipment=shipment.model_copy(update={"last_scan": last_scan_of(events)}),
            events=events,
            outbox=sorted(self.outbox.get(shipment_id, {}).values(), key=lambda e: e.sequence),
            incidents=[self.incidents[shipment_id][sk] for sk in sorted(self.incidents.get(shipment_id, {}))],
        )

    def commit(self, commit: Commit) -> None:
        if self.fail_next_commit is not None:
            error, self.fail_next_commit = self.fail_next_commit, None
            raise error
        if commit.size > MAX_TRANSACTION_ITEMS:
            raise ValueError(f"a commit holds at most {MAX_TRANSACTION_ITEMS} items, got {commit.size}")
        shipment = commit.shipment
        current = self.shipments.get(shipment.shipment_id)
        if commit.expected_version is None and current is not None:
            raise Conflict("exists")
        if commit.expected_version is not None and (current is None or current.version != commit.expected_version):
            raise Conflict("version moved")
        if any(key in self.tracking for key in commit.claim_keys):
            raise Conflict("tracking number taken")
        stored = self.events.setdefault(shipment.shipment_id, {})
        if any(event_sk(s.event) in stored for s in commit.events):
            raise Conflict("event exists")
        for reread in commit.replace_events:
            if event_sk(reread.stored) not in stored or (reread.moves and event_sk(reread.better.event) in stored):
                raise Conflict("replaced reading moved")
        for absorbed in commit.absorb:
            current_other = self.shipments.get(absorbed.shipment.shipment_id)
            if current_other is None or current_other.version != absorbed.expected_version:
                raise Conflict("absorbed shipment moved")
            if any(self.tracking.get(k) != absorbed.shipment.shipment_id for k in absorbed.repoint):
                raise Conflict("tracking number moved")
        for write in commit.incidents:
            held = self.incidents.get(write.exception.shipment_id, {}).get(
                incident_sk(write.exception.type, write.exception.episode)
            )
            if write.expect is Expect.NEW and held is not None:
                raise Conflict("exception exists")
            if write.expect is Expect.STORED and held is None:
                raise Conflict("exception missing")
            if write.expect in (Expect.OPEN, Expect.OPEN_UNESCALATED) and (held is None or not held.is_open):
                raise Conflict("exception no longer open")
            if write.expect is Expect.OPEN_UNESCALATED and held is not None and held.escalated_at is not None:
                raise Conflict("exception already escalated")
        self.commits += 1
        registered = commit.registrations
        self._store(shipment, shipment in registered)
        for write in commit.incidents:
            exception = write.exception
            self.incidents.setdefault(exception.shipment_id, {})[incident_sk(exception.type, exception.episode)] = (
                exception
            )
        for key in commit.claim_keys:
            self.tracking[key] = shipment.shipment_id
        for absorbed in commit.absorb:
            self._store(absorbed.shipment, absorbed.shipment in registered)
            for key in absorbed.repoint:
                self.tracking[key] = shipment.shipment_id
        for s in commit.events:
            stored[event_sk(s.event)] = s
        for reread in commit.replace_events:
            del stored[event_sk(reread.stored)]
            stored[event_sk(reread.better.event)] = reread.better
        for entry in commit.outbox:
            self.outbox.setdefault(shipment.shipment_id, {})[entry.sequence] = entry

    def _store(self, shipment: Shipment, registration_written: bool) -> None:
        """The record as its item keeps it, with the registration its registration item holds:
        this commit's if it writes one, else the one stored before."""
        holder = shipment if registration_written else self.shipments.get(shipment.shipment_id)
        registration = registration_item(holder) if holder is not None and holder.registered_at else None
        self.shipments[shipment.shipment_id] = shipment_from_item(shipment_item(shipment), registration=registration)

    def delete_outbox(self, entries: Sequence[OutboxEntry]) -> None:
        for entry in entries:
            self.outbox.get(entry.shipment_id, {}).pop(entry.sequence, None)

    def quarantine(self, record: QuarantineRecord) -> None:
        self.quarantined.append(record)

    # -- the poll due-index ----------------------------------------------------------------

    def due_for_poll(self, shard: str, now: datetime, page_size: int = 100) -> Iterator[DueShipment]:
        due = sorted(
            (s for s in self.shipments.values() if s.poll_shard == shard and s.poll_due_at and s.poll_due_at <= now),
            key=lambda s: s.poll_due_at or now,
        )
        for shipment in due:
            self.index_reads += 1
            assert shipment.poll_source
            assert shipment.poll_number
            assert shipment.poll_due_at
            yield DueShipment(
                shipment_id=shipment.shipment_id,
                poll_source=shipment.poll_source,
                poll_number=shipment.poll_number,
                poll_due_at=sortable_text(shipment.poll_due_at),
                status=shipment.status.value if shipment.status else None,
                created_at=isoformat_z(shipment.created_at),
                last_event_at=isoformat_z(shipment.last_event_at) if shipment.last_event_at else None,
                last_push_at=isoformat_z(shipment.last_push_at) if shipment.last_push_at else None,
                poll_digest=shipment.poll_digest,
            )

    def rearm_poll(
        self, due: DueShipment, *, polled_at: datetime, next_due: datetime | None, digest: str | None = None
    ) -> bool:
        shipment = self.shipments[due.shipment_id]
        if shipment.poll_due_at is None or sortable_text(shipment.poll_due_at) != due.poll_due_at:
            return False
        cleared = {"poll_due_at": None, "poll_shard": None, "poll_source": None, "poll_number": None}
        self.shipments[due.shipment_id] = shipment.model_copy(
            update={"last_polled_at": polled_at, "version": shipment.version + 1}
            | ({"poll_due_at": next_due} if next_due else cleared)
            | ({"poll_digest": digest} if digest is not None else {})
        )
        return True


class RecordingPublisher:
    """Keeps what was published; can fail, or crash the process, on demand."""

    def __init__(self) -> None:
        self.published: list[OutboxEntry] = []
        self.calls = 0
        self.reject_next: int = 0  # entries EventBridge answers with an error code
        self.crash_next: BaseException | None = None

    def publish(self, entries: Sequence[OutboxEntry]) -> list[OutboxEntry]:
        if self.crash_next is not None:
            crash, self.crash_next = self.crash_next, None
            raise crash
        failed: list[OutboxEntry] = []
        for start in range(0, len(entries), 10):
            self.calls += 1
            for entry in entries[start : start + 10]:
                if self.reject_next:
                    self.reject_next -= 1
                    failed.append(entry)
                else:
                    self.published.append(entry)
        return failed


class ProcessCrash(BaseException):
    """Stands for the Lambda process dying (timeout, out of memory): nothing catches it."""


_store_is_a_store: ShipmentStore = InMemoryShipmentStore()
_store_is_an_ingest_store: IngestStore = InMemoryShipmentStore()
_store_is_a_due_index: DueIndex = InMemoryShipmentStore()
_publisher_is_a_publisher: Publisher = RecordingPublisher()


class InMemoryOrderIndex:
    """The ``ByOrder`` index over an in-memory store: registered shipment records by order id,
    oldest first, resumed after a (created_at, shipment_id) position."""

    def __init__(self, store: InMemoryShipmentStore) -> None:
        self.store = store

    def shipments_of_order(self, order_id: str, *, limit: int, after: tuple[str, str] | None) -> OrderPage:
        indexed = sorted(
            (isoformat_z(s.created_at), s.shipment_id) for s in self.store.shipments.values() if s.order_id == order_id
        )
        if after is not None:
            indexed = [position for position in indexed if position > after]
        page = indexed[:limit]
        return OrderPage([shipment_id for _, shipment_id in page], page[-1] if len(indexed) > limit else None)


class InMemoryApiKeyStore:
    def __init__(self) -> None:
        self.records: dict[str, ApiKeyRecord] = {}
        self.reads = 0

    def get(self, key_id: str) -> ApiKeyRecord | None:
        self.reads += 1
        return self.records.get(key_id)

    def create(self, record: ApiKeyRecord) -> None:
        if record.key_id in self.records:
            raise Conflict("exists")
        self.records[record.key_id] = record

    def revoke(self, key_id: str, at: str) -> bool:
        record = self.records.get(key_id)
        if record is None:
            return False
        if record.revoked_at is None:
            self.records[key_id] = dataclasses.replace(record, revoked_at=at)
        return True

    def all(self) -> list[ApiKeyRecord]:
        return sorted(self.records.values(), key=lambda r: (r.created_at, r.key_id))


_order_index_is_an_order_index: OrderIndex = InMemoryOrderIndex(InMemoryShipmentStore())
_key_store_is_a_key_store: ApiKeyStore = InMemoryApiKeyStore()
