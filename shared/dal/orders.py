"""The ``ByOrder`` index of the shipments table: a merchant's order id → its shipments.

Sparse (only registered shipment records carry ``order_id``) and keys only: a page is one
Query of the index, then each shipment is read from its own partition.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shared.dal.aws import aws_call, client
from shared.dal.codec import decode_item, encode
from shared.dal.items import META, shipment_pk

ORDER_INDEX = "ByOrder"


@dataclass(frozen=True)
class OrderPage:
    shipment_ids: list[str]  # oldest registration first
    after: tuple[str, str] | None  # (created_at, shipment_id) to resume after; None: the last page


class DynamoOrderIndex:
    """``OrderIndex`` on DynamoDB (see ``shared.logic.merchant.registration``)."""

    def __init__(self, table_name: str) -> None:
        self.table = table_name

    def shipments_of_order(self, order_id: str, *, limit: int, after: tuple[str, str] | None) -> OrderPage:
        request: dict[str, Any] = {
            "TableName": self.table,
            "IndexName": ORDER_INDEX,
            "KeyConditionExpression": "order_id = :order",
            "ExpressionAttributeValues": {":order": encode(order_id)},
        }
        if after is not None:
            request["ExclusiveStartKey"] = self._key(order_id, *after)
        found: list[str] = []
        ddb = client("dynamodb")
        while True:
            request["Limit"] = limit - len(found)
            with aws_call("read the order index"):
                response = ddb.query(**request)
            for raw in response.get("Items", []):
                item = decode_item(raw)
                # Other items may one day carry an order id; only shipment records count.
                if item.get("sk") == META:
                    found.append(str(item["pk"]).removeprefix("SHP#"))
            last = response.get("LastEvaluatedKey")
            if not last:
                return OrderPage(found, None)
            key = decode_item(last)
            resume = (str(key["created_at"]), str(key["pk"]).removeprefix("SHP#"))
            if len(found) >= limit:
                return OrderPage(found, resume)
            request["ExclusiveStartKey"] = last

    @staticmethod
    def _key(order_id: str, created_at: str, shipment_id: str) -> dict[str, Any]:
        return {
            "order_id": encode(order_id),
            "created_at": encode(created_at),
            "pk": encode(shipment_pk(shipment_id)),
            "sk": encode(META),
        }
