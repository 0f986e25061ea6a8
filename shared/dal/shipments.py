"""The shipments table (DynamoDB): resolve, load, commit, drain the outbox, quarantine."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from shared.dal.aws import aws_call, client, translate
from shared.dal.codec import decode_item, encode, encode_item
from shared.dal.items import (
    EVENT_PREFIX,
    META,
    OUTBOX_PREFIX,
    event_from_item,
    event_item,
    outbox_from_item,
    outbox_item,
    outbox_sk,
    quarantine_item,
    shipment_from_item,
    shipment_item,
    shipment_pk,
    tracking_item,
    tracking_pk,
)
from shared.errors import Conflict
from shared.models.shipment import (
    OutboxEntry,
    Partition,
    QuarantineRecord,
    Shipment,
    StoredEvent,
    TrackingKey,
)

TOKEN_INDEX = "ByToken"  # noqa: S105 - an index name, not a secret


@dataclass
class Commit:
    """One atomic write of a shipment partition."""

    shipment: Shipment  # the record to store (``version`` already advanced)
    expected_version: int | None  # None: the shipment is being created
    events: list[StoredEvent] = field(default_factory=list)
    outbox: list[OutboxEntry] = field(default_factory=list)
    claim_keys: list[TrackingKey] = field(default_factory=list)  # tracking numbers to map to it

    @property
    def size(self) -> int:
        return 1 + len(self.events) + len(self.outbox) + len(self.claim_keys)


class DynamoShipmentStore:
    """``ShipmentStore`` on DynamoDB (see ``shared.logic.process``)."""

    MAX_TRANSACTION_ITEMS = 100

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
            for attempt in range(8):
                with aws_call("read tracking numbers"):
                    response = ddb.batch_get_item(RequestItems=request)
                for raw in response.get("Responses", {}).get(self.table, []):
                    item = decode_item(raw)
                    found[TrackingKey(item["carrier"], item["tracking_number"])] = item["shipment_id"]
                request = response.get("UnprocessedKeys") or {}
                if not request:
                    break
                time.sleep(min(0.05 * 2**attempt, 1.0))
        return found

    def load(self, shipment_id: str) -> Partition | None:
        """The shipment, its timeline and its unpublished outbox, in one (paginated) Query."""
        items = self._query({"pk": shipment_pk(shipment_id)})
        meta = next((item for item in items if item["sk"] == META), None)
        if meta is None:
            return None
        return Partition(
            shipment=shipment_from_item(meta),
            events=[event_from_item(item) for item in items if item["sk"].startswith(EVENT_PREFIX)],
            outbox=[outbox_from_item(item) for item in items if item["sk"].startswith(OUTBOX_PREFIX)],
        )

    def public_items(self, token: str) -> list[dict[str, Any]]:
        """What the tracking page may show, from the ``ByToken`` index (one Query)."""
        return self._query({"public_token": token}, index=TOKEN_INDEX)

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
        items: list[dict[str, Any]] = []
        ddb = client("dynamodb")
        while True:
            with aws_call("read shipment"):
                response = ddb.query(**request)
            items.extend(decode_item(raw) for raw in response.get("Items", []))
            if "LastEvaluatedKey" not in response:
                return items
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    # -- writes --------------------------------------------------------------------------

    def commit(self, commit: Commit) -> None:
        """Write a partition change atomically; ``Conflict`` if anything moved underneath."""
        if commit.size > self.MAX_TRANSACTION_ITEMS:
            raise ValueError(f"a commit holds at most {self.MAX_TRANSACTION_ITEMS} items, got {commit.size}")
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
        for entry in commit.outbox:
            actions.append(self._put(outbox_item(entry), "attribute_not_exists(pk)"))
        token = hashlib.sha256(f"{shipment.shipment_id}#{shipment.version}".encode()).hexdigest()[:36]
        try:
            client("dynamodb").transact_write_items(TransactItems=actions, ClientRequestToken=token)
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
            for attempt in range(8):
                with aws_call("delete outbox entries"):
                    response = ddb.batch_write_item(RequestItems=pending)
                pending = response.get("UnprocessedItems") or {}
                if not pending:
                    break
                time.sleep(min(0.05 * 2**attempt, 1.0))

    def quarantine(self, record: QuarantineRecord) -> None:
        with aws_call("quarantine payload"):
            client("dynamodb").put_item(TableName=self.table, Item=encode_item(quarantine_item(record)))
