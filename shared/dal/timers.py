"""The ``ByTimer`` index and what the silence checker reads and writes beside it.

The index is sparse, sharded and keys-only: a shipment record carries ``timer_bucket`` /
``timer_due_at`` while its silence deadline (or an unpublished outbox) needs the checker, an
open exception while its SLA can still pass (``shared.dal.items`` computes the keys). A
checker run reads the cursor item (``pk = TIMERS``, the oldest hour that may still hold a
timer; a warm container remembers it), Queries each shard of each hour from there to now with
``timer_due_at <= now``, and reads each candidate once with a strongly consistent ``GetItem``
(a silence about to be raised also reads the timeline's newest event: the record does not store
its last scan).
Nothing here Scans.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from shared.dal.aws import aws_call, client, query_pages, translate
from shared.dal.codec import decode_item, encode
from shared.dal.incidents import incident_from_item
from shared.dal.items import (
    EVENT_PREFIX,
    META,
    OUTBOX_PREFIX,
    event_from_item,
    outbox_from_item,
    shipment_from_item,
    shipment_pk,
    timer_bucket,
)
from shared.dal.shipments import DynamoShipmentStore
from shared.models.canonical import CanonicalEvent, sortable_text
from shared.models.incidents import Incident
from shared.models.shipment import OutboxEntry, Shipment

TIMER_INDEX = "ByTimer"
CURSOR_KEY = {"pk": "TIMERS", "sk": "CURSOR"}


@dataclass(frozen=True)
class Timer:
    """A ``ByTimer`` index entry (keys only)."""

    shipment_id: str
    sk: str  # META: the record's silence timer; EXC#...: an exception's SLA
    due_at: str  # as stored


class DynamoTimerIndex(DynamoShipmentStore):
    """``TimerIndex`` on DynamoDB (see ``shared.logic.timers.checker``).

    ``remembered`` is a warm container's memory of the cursor, per table: the hour this
    container last read or moved it to. The stored cursor never moves back, so what a
    container remembers is at most behind it — a run then re-reads hours already drained and
    misses nothing — and a warm checker skips the cursor read.
    """

    def __init__(self, table_name: str, remembered: dict[str, str] | None = None) -> None:
        super().__init__(table_name)
        self._remembered = remembered

    def read_cursor(self) -> str | None:
        if self._remembered is not None and self.table in self._remembered:
            return self._remembered[self.table]
        with aws_call("read the timer cursor"):
            item = (
                client("dynamodb")
                .get_item(TableName=self.table, Key={k: encode(v) for k, v in CURSOR_KEY.items()}, ConsistentRead=True)
                .get("Item")
            )
        cursor: str | None = decode_item(item).get("drained_before") if item else None
        self._remember(cursor)
        return cursor

    def _remember(self, hour: str | None) -> None:
        if self._remembered is not None and hour is not None:
            self._remembered[self.table] = max(hour, self._remembered.get(self.table, hour))

    def advance_cursor(self, hour: str) -> None:
        """Move the cursor forward to ``hour`` (never back: two checkers may race)."""
        try:
            client("dynamodb").put_item(
                TableName=self.table,
                Item={
                    **{k: encode(v) for k, v in CURSOR_KEY.items()},
                    "entity": encode("timer_cursor"),
                    "drained_before": encode(hour),
                },
                ConditionExpression="attribute_not_exists(pk) OR drained_before < :hour",
                ExpressionAttributeValues={":hour": encode(hour)},
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise translate(error, "advance the timer cursor") from error
            # another checker moved it at least this far: remembering ``hour`` stays behind it
        except BotoCoreError as error:
            raise translate(error, "advance the timer cursor") from error
        self._remember(hour)

    def due_timers(self, bucket: str, now: datetime, page_size: int = 100) -> Iterator[Timer]:
        """Entries of one bucket due by ``now``, earliest first (keys only)."""
        request: dict[str, Any] = {
            "TableName": self.table,
            "IndexName": TIMER_INDEX,
            "KeyConditionExpression": "timer_bucket = :b AND timer_due_at <= :now",
            "ExpressionAttributeValues": {":b": encode(bucket), ":now": encode(sortable_text(now))},
            "Limit": page_size,
        }
        for item in query_pages(request, "read the timer index"):
            yield Timer(item["pk"].removeprefix("SHP#"), item["sk"], item["timer_due_at"])

    def read_shipment(self, shipment_id: str) -> Shipment | None:
        """The record alone (one strongly consistent ``GetItem``): what a timer's decision reads.
        Without its registration item, which a decision over the record alone never writes."""
        with aws_call("read a shipment record"):
            item = (
                client("dynamodb")
                .get_item(
                    TableName=self.table,
                    Key={"pk": encode(shipment_pk(shipment_id)), "sk": encode(META)},
                    ConsistentRead=True,
                )
                .get("Item")
            )
        return shipment_from_item(decode_item(item)) if item else None

    def read_last_event(self, shipment_id: str) -> CanonicalEvent | None:
        """The newest event of a shipment's timeline (one Query of one item, eventually
        consistent: the last scan a raised silence shows; the next change refreshes it)."""
        request: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :evt)",
            "ExpressionAttributeValues": {":pk": encode(shipment_pk(shipment_id)), ":evt": encode(EVENT_PREFIX)},
            "ScanIndexForward": False,
            "Limit": 1,
        }
        with aws_call("read a shipment's last event"):
            items = client("dynamodb").query(**request).get("Items", [])
        return event_from_item(decode_item(items[0])).event if items else None

    def read_exception(self, shipment_id: str, sk: str) -> Incident | None:
        with aws_call("read an exception"):
            item = (
                client("dynamodb")
                .get_item(
                    TableName=self.table,
                    Key={"pk": encode(shipment_pk(shipment_id)), "sk": encode(sk)},
                    ConsistentRead=True,
                )
                .get("Item")
            )
        return incident_from_item(decode_item(item)) if item else None

    def pending_outbox(self, shipment_id: str) -> list[OutboxEntry]:
        request: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :out)",
            "ExpressionAttributeValues": {":pk": encode(shipment_pk(shipment_id)), ":out": encode(OUTBOX_PREFIX)},
            "ConsistentRead": True,
        }
        return [outbox_from_item(item) for item in query_pages(request, "read a shipment's outbox")]

    def move_timer(self, shipment: Shipment, *, due: datetime | None, now: datetime, clear_pending: bool) -> bool:
        """Re-arm the record's timer at ``due`` (``None``: out of the index), if it still is
        where ``shipment`` saw it; ``False`` when someone moved it meanwhile.

        The record's ``version`` does not move: a processor holding an older copy may write
        the old timer back, which costs one early wake-up and nothing else.
        """
        values: dict[str, Any] = {}
        if shipment.timer_due_at is None:
            condition = "attribute_not_exists(timer_due_at)"
        else:
            condition = "timer_due_at = :seen"
            values[":seen"] = encode(sortable_text(shipment.timer_due_at))
        sets, removes = [], []
        if due is None:
            removes += ["timer_bucket", "timer_due_at"]
        else:
            sets += ["timer_bucket = :bucket", "timer_due_at = :due"]
            values[":bucket"] = encode(timer_bucket(shipment.shipment_id, due, now))
            values[":due"] = encode(sortable_text(due))
        if clear_pending:
            removes.append("outbox_pending_since")
        expression = " ".join(
            part
            for part in (f"SET {', '.join(sets)}" if sets else "", f"REMOVE {', '.join(removes)}" if removes else "")
            if part
        )
        if not expression:
            return True
        request: dict[str, Any] = {
            "TableName": self.table,
            "Key": {"pk": encode(shipment_pk(shipment.shipment_id)), "sk": encode(META)},
            "UpdateExpression": expression,
            "ConditionExpression": condition,
        }
        if values:
            request["ExpressionAttributeValues"] = values
        try:
            client("dynamodb").update_item(**request)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise translate(error, "move a timer") from error
        except BotoCoreError as error:
            raise translate(error, "move a timer") from error
        return True
