"""The shipments table (DynamoDB): resolve, load, commit, drain the outbox, quarantine."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from shared.clock import isoformat_z
from shared.dal.aws import aws_call, client, query_pages, translate
from shared.dal.codec import decode_item, encode, encode_item
from shared.dal.incidents import (
    EXCEPTION_PREFIX,
    Expect,
    IncidentWrite,
    incident_from_item,
    incident_item,
    lookup_item,
)
from shared.dal.items import (
    EVENT_PREFIX,
    META,
    OUTBOX_PREFIX,
    REGISTRATION,
    event_from_item,
    event_item,
    event_sk,
    outbox_from_item,
    outbox_item,
    outbox_sk,
    quarantine_item,
    registration_item,
    shipment_from_item,
    shipment_item,
    shipment_pk,
    sortable_instant,
    tracking_item,
    tracking_pk,
)
from shared.dal.token_index import TokenIndex
from shared.errors import Conflict, DependencyUnavailable
from shared.models.canonical import CanonicalEvent
from shared.models.shipment import (
    OutboxEntry,
    Partition,
    QuarantineRecord,
    Shipment,
    StoredEvent,
    TrackingKey,
)

MAX_TRANSACTION_ITEMS = 100  # DynamoDB's TransactWriteItems limit
BATCH_ATTEMPTS = 8
POLL_INDEX = "ByPollDue"


@dataclass(frozen=True)
class DueShipment:
    """A shipment the poll due-index says is due (only the projected attributes)."""

    shipment_id: str
    poll_source: str
    poll_number: str
    poll_due_at: str  # as stored: the condition of the re-arm
    status: str | None
    created_at: str
    last_event_at: str | None
    last_push_at: str | None
    poll_digest: str | None = None  # of the last answer enqueued


@dataclass
class Absorbed:
    """A shipment found to be another leg of the committed one: marked ``merged_into``,
    its tracking numbers repointed (each only if it still points at it)."""

    shipment: Shipment  # its record as stored after the merge
    expected_version: int
    repoint: list[TrackingKey] = field(default_factory=list)


@dataclass(frozen=True)
class Reread:
    """A stored reading of a scan replaced by a better reading of the same scan.

    Both share the ``event_id`` (it floors the instant to the minute), but the better
    reading may carry other seconds, so its sort key may differ: the store then writes the
    new item and deletes the old one in the same transaction.
    """

    stored: CanonicalEvent
    better: StoredEvent

    @property
    def moves(self) -> bool:
        return event_sk(self.stored) != event_sk(self.better.event)

    @property
    def size(self) -> int:
        return 2 if self.moves else 1


@dataclass
class Commit:
    """One atomic write of a shipment partition."""

    shipment: Shipment  # the record to store (``version`` already advanced)
    expected_version: int | None  # None: the shipment is being created
    events: list[StoredEvent] = field(default_factory=list)
    outbox: list[OutboxEntry] = field(default_factory=list)
    claim_keys: list[TrackingKey] = field(default_factory=list)  # tracking numbers to map to it
    absorb: list[Absorbed] = field(default_factory=list)
    replace_events: list[Reread] = field(default_factory=list)  # better readings of stored scans
    incidents: list[IncidentWrite] = field(default_factory=list)  # of this or an absorbed shipment
    # False when the decision kept the registration as loaded: its item is then left alone.
    registration_changed: bool = True

    @property
    def registrations(self) -> list[Shipment]:
        """The shipments whose registration item this commit writes: this one's when it changed,
        and any still on a record written before the registration moved to its own item."""
        main = self.shipment
        moved = [a.shipment for a in self.absorb if a.shipment.registered_at and not a.shipment.registration_apart]
        if main.registered_at and (self.registration_changed or not main.registration_apart):
            return [main, *moved]
        return moved

    @property
    def size(self) -> int:
        """Items in the transaction (at most ``MAX_TRANSACTION_ITEMS``)."""
        absorbed = sum(1 + len(a.repoint) for a in self.absorb)
        rereads = sum(r.size for r in self.replace_events)
        exceptions = sum(w.size for w in self.incidents)
        records = 1 + len(self.registrations)
        return records + len(self.events) + len(self.outbox) + len(self.claim_keys) + absorbed + rereads + exceptions


def _until_processed(
    call: Callable[..., dict[str, Any]], request: dict[str, Any], leftover: str, what: str
) -> Iterator[dict[str, Any]]:
    """Run a batch call again on what DynamoDB left unprocessed (``leftover``), backing off
    between tries; yields each response."""
    for attempt in range(BATCH_ATTEMPTS):
        with aws_call(what):
            response = call(RequestItems=request)
        yield response
        request = response.get(leftover) or {}
        if not request:
            return
        time.sleep(min(0.05 * 2**attempt, 1.0))
    raise DependencyUnavailable(f"{what}: DynamoDB left items unprocessed after {BATCH_ATTEMPTS} tries")


class DynamoShipmentStore:
    """``ShipmentStore`` on DynamoDB (see ``shared.logic.ingest.process``)."""

    def __init__(self, table_name: str) -> None:
        self.table = table_name

    # -- reads ---------------------------------------------------------------------------

    def resolve(self, keys: Collection[TrackingKey]) -> dict[TrackingKey, str]:
        """Shipment ids of the tracking numbers already known (strongly consistent)."""
        unique = list(dict.fromkeys(keys))
        found: dict[TrackingKey, str] = {}
        ddb = client("dynamodb")
        for start in range(0, len(unique), 100):
            request: dict[str, Any] = {
                self.table: {
                    "Keys": [{"pk": encode(tracking_pk(k)), "sk": encode("TRK")} for k in unique[start : start + 100]],
                    "ConsistentRead": True,
                    "ProjectionExpression": "carrier, tracking_number, shipment_id",
                }
            }
            for response in _until_processed(ddb.batch_get_item, request, "UnprocessedKeys", "read tracking numbers"):
                for raw in response.get("Responses", {}).get(self.table, []):
                    item = decode_item(raw)
                    found[TrackingKey(item["carrier"], item["tracking_number"])] = item["shipment_id"]
        return found

    def load(self, shipment_id: str) -> Partition | None:
        """The shipment, its timeline and its unpublished outbox, in one (paginated) Query."""
        items = self._query({"pk": shipment_pk(shipment_id)})
        meta = next((item for item in items if item["sk"] == META), None)
        if meta is None:
            return None
        registration = next((item for item in items if item["sk"] == REGISTRATION), None)
        events = [event_from_item(item) for item in items if item["sk"].startswith(EVENT_PREFIX)]
        return Partition(
            shipment=shipment_from_item(meta, events, registration),
            events=events,
            outbox=[outbox_from_item(item) for item in items if item["sk"].startswith(OUTBOX_PREFIX)],
            incidents=[incident_from_item(item) for item in items if item["sk"].startswith(EXCEPTION_PREFIX)],
        )

    def due_for_poll(self, shard: str, now: datetime, page_size: int = 100) -> Iterator[DueShipment]:
        """Shipments of one due-index shard whose poll time has come, oldest due first.

        Reads only the index (its projection carries what the poller needs), never a Scan.
        """
        request: dict[str, Any] = {
            "TableName": self.table,
            "IndexName": POLL_INDEX,
            "KeyConditionExpression": "poll_shard = :shard AND poll_due_at <= :now",
            "ExpressionAttributeValues": {":shard": encode(shard), ":now": encode(sortable_instant(now))},
            "Limit": page_size,
        }
        for item in query_pages(request, "read the poll due-index"):
            yield DueShipment(
                shipment_id=item["pk"].removeprefix("SHP#"),
                poll_source=item["poll_source"],
                poll_number=item["poll_number"],
                poll_due_at=item["poll_due_at"],
                status=item.get("status"),
                created_at=item["created_at"],
                last_event_at=item.get("last_event_at"),
                last_push_at=item.get("last_push_at"),
                poll_digest=item.get("poll_digest"),
            )

    def rearm_poll(
        self, due: DueShipment, *, polled_at: datetime, next_due: datetime | None, digest: str | None = None
    ) -> bool:
        """Move a polled shipment's due time (or take it out of the index) and record the
        ``digest`` of the answer just enqueued; ``False`` if the processor moved it meanwhile.
        The record's ``version`` advances, so a processor holding an older copy re-reads
        before writing."""
        key = {"pk": encode(shipment_pk(due.shipment_id)), "sk": encode(META)}
        values: dict[str, Any] = {
            ":old": encode(due.poll_due_at),
            ":polled": encode(isoformat_z(polled_at)),
            ":one": encode(1),
        }
        if next_due is None:
            expression = (
                "SET last_polled_at = :polled, version = version + :one "
                "REMOVE poll_due_at, poll_shard, poll_source, poll_number"
            )
        else:
            expression = "SET poll_due_at = :next, last_polled_at = :polled, version = version + :one"
            values[":next"] = encode(sortable_instant(next_due))
        if digest is not None:
            expression = expression.replace("SET ", "SET poll_digest = :digest, ", 1)
            values[":digest"] = encode(digest)
        try:
            client("dynamodb").update_item(
                TableName=self.table,
                Key=key,
                UpdateExpression=expression,
                ConditionExpression="poll_due_at = :old",
                ExpressionAttributeValues=values,
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise translate(error, "re-arm a poll") from error
        except BotoCoreError as error:
            raise translate(error, "re-arm a poll") from error
        return True

    def public_items(self, token: str) -> list[dict[str, Any]]:
        """What the tracking page may show, from the ``ByToken`` index (one Query)."""
        return TokenIndex(self.table).public_items(token)

    def _query(self, key: dict[str, str], index: str | None = None) -> list[dict[str, Any]]:
        ((name, value),) = key.items()
        request: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "#k = :v",
            "ExpressionAttributeNames": {"#k": name},
            "ExpressionAttributeValues": {":v": encode(value)},
        }
        if index:
            request["IndexName"] = index
        else:
            request["ConsistentRead"] = True
        return list(query_pages(request, "read shipment"))

    # -- writes --------------------------------------------------------------------------

    def commit(self, commit: Commit) -> None:
        """Write a partition change atomically; ``Conflict`` if anything moved underneath."""
        if commit.size > MAX_TRANSACTION_ITEMS:
            raise ValueError(f"a commit holds at most {MAX_TRANSACTION_ITEMS} items, got {commit.size}")
        shipment = commit.shipment
        actions: list[dict[str, Any]] = []
        if commit.expected_version is None:
            actions.append(self._put(shipment_item(shipment), "attribute_not_exists(pk)"))
        else:
            actions.append(
                self._put(
                    shipment_item(shipment),
                    "#v = :v",
                    names={"#v": "version"},
                    values={":v": commit.expected_version},
                )
            )
        # Unconditional: a registration item is written with its record, under the record's condition.
        for registered in commit.registrations:
            actions.append({"Put": {"TableName": self.table, "Item": encode_item(registration_item(registered))}})
        for key in commit.claim_keys:
            actions.append(
                self._put(tracking_item(key, shipment.shipment_id, shipment.updated_at), "attribute_not_exists(pk)")
            )
        for stored in commit.events:
            actions.append(
                self._put(
                    event_item(stored.event, shipment=shipment, source=stored.source),
                    "attribute_not_exists(pk)",
                )
            )
        for reread in commit.replace_events:
            better = event_item(reread.better.event, shipment=shipment, source=reread.better.source)
            if not reread.moves:
                actions.append(self._put(better, "attribute_exists(pk)"))
                continue
            actions.append(self._put(better, "attribute_not_exists(pk)"))
            old_key = {"pk": encode(shipment_pk(shipment.shipment_id)), "sk": encode(event_sk(reread.stored))}
            actions.append(
                {"Delete": {"TableName": self.table, "Key": old_key, "ConditionExpression": "attribute_exists(pk)"}}
            )
        for entry in commit.outbox:
            actions.append(self._put(outbox_item(entry), "attribute_not_exists(pk)"))
        for write in commit.incidents:
            item = incident_item(write.exception)
            if write.expect is Expect.NEW:
                actions.append(self._put(item, "attribute_not_exists(pk)"))
                actions.append(self._put(lookup_item(write.exception), "attribute_not_exists(pk)"))
                continue
            if write.expect is Expect.STORED:
                actions.append(self._put(item, "attribute_exists(pk)"))
                continue
            condition = "#s = :open"
            if write.expect is Expect.OPEN_UNESCALATED:
                condition += " AND attribute_not_exists(escalated_at)"
            actions.append(self._put(item, condition, names={"#s": "status"}, values={":open": "open"}))
        for absorbed in commit.absorb:
            actions.append(
                self._put(
                    shipment_item(absorbed.shipment),
                    "#v = :v",
                    names={"#v": "version"},
                    values={":v": absorbed.expected_version},
                )
            )
            for key in absorbed.repoint:
                actions.append(
                    self._put(
                        tracking_item(key, shipment.shipment_id, shipment.updated_at),
                        "#s = :s",
                        names={"#s": "shipment_id"},
                        values={":s": absorbed.shipment.shipment_id},
                    )
                )
        # No ClientRequestToken of our own: one derived from the version would be shared by
        # every writer racing to that version, turning a plain conflict into
        # IdempotentParameterMismatch. botocore sends a fresh one and reuses it on its retries.
        try:
            client("dynamodb").transact_write_items(TransactItems=actions)
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            reasons = [r.get("Code") for r in error.response.get("CancellationReasons", [])]
            if code == "TransactionCanceledException" and any(
                r in ("ConditionalCheckFailed", "TransactionConflict") for r in reasons
            ):
                raise Conflict(f"shipment {shipment.shipment_id} changed concurrently") from error
            raise translate(error, "commit shipment") from error
        except BotoCoreError as error:
            raise translate(error, "commit shipment") from error

    def _put(
        self,
        item: dict[str, Any],
        condition: str,
        names: dict[str, str] | None = None,
        values: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        put: dict[str, Any] = {
            "TableName": self.table,
            "Item": encode_item(item),
            "ConditionExpression": condition,
        }
        if names:
            put["ExpressionAttributeNames"] = names
        if values:
            put["ExpressionAttributeValues"] = {k: encode(v) for k, v in values.items()}
        return {"Put": put}

    def delete_outbox(self, entries: Sequence[OutboxEntry]) -> None:
        """Forget outbox entries the bus has accepted (batched, retrying unprocessed items)."""
        requests = [
            {"DeleteRequest": {"Key": {"pk": encode(shipment_pk(e.shipment_id)), "sk": encode(outbox_sk(e.sequence))}}}
            for e in entries
        ]
        ddb = client("dynamodb")
        for start in range(0, len(requests), 25):
            pending: dict[str, Any] = {self.table: requests[start : start + 25]}
            for _ in _until_processed(ddb.batch_write_item, pending, "UnprocessedItems", "delete outbox entries"):
                pass

    def quarantine(self, record: QuarantineRecord) -> None:
        with aws_call("quarantine payload"):
            client("dynamodb").put_item(TableName=self.table, Item=encode_item(quarantine_item(record)))
