"""The ApiKeys table (DynamoDB): one item per merchant API key, keyed by ``key_id``.

A table of its own rather than items in the shipments table: the authorizer's role can then
read exactly this table (``GetItem``) and nothing that holds customer data. Listing is a
Scan, used only by ``shiplight api-key list`` on a table of a handful of items; no function
is allowed to Scan.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from shared.dal.aws import aws_call, client, translate
from shared.dal.codec import decode_item, encode, encode_item
from shared.errors import Conflict
from shared.models.apikeys import ApiKeyRecord


def _record(item: dict[str, Any]) -> ApiKeyRecord:
    return ApiKeyRecord(
        key_id=item["key_id"],
        label=item.get("label", ""),
        key_sha256=item["key_sha256"],
        created_at=item["created_at"],
        revoked_at=item.get("revoked_at"),
    )


class DynamoApiKeyStore:
    """``ApiKeyStore`` on DynamoDB (see ``shared.logic.api.auth``)."""

    def __init__(self, table_name: str) -> None:
        self.table = table_name

    def get(self, key_id: str) -> ApiKeyRecord | None:
        with aws_call("read an API key"):
            response = client("dynamodb").get_item(
                TableName=self.table, Key={"key_id": encode(key_id)}, ConsistentRead=True
            )
        item = response.get("Item")
        return _record(decode_item(item)) if item else None

    def create(self, record: ApiKeyRecord) -> None:
        """Store a new key; ``Conflict`` if its id exists (2^-64 odds: the caller draws again)."""
        item: dict[str, Any] = {
            "key_id": record.key_id,
            "label": record.label,
            "key_sha256": record.key_sha256,
            "created_at": record.created_at,
        }
        try:
            client("dynamodb").put_item(
                TableName=self.table, Item=encode_item(item), ConditionExpression="attribute_not_exists(key_id)"
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                raise Conflict(f"API key {record.key_id} exists") from error
            raise translate(error, "store an API key") from error
        except BotoCoreError as error:
            raise translate(error, "store an API key") from error

    def revoke(self, key_id: str, at: str) -> bool:
        """Mark a key revoked at ``at``; ``False`` if there is no such key. Revoking twice
        keeps the first time."""
        try:
            client("dynamodb").update_item(
                TableName=self.table,
                Key={"key_id": encode(key_id)},
                UpdateExpression="SET revoked_at = if_not_exists(revoked_at, :at)",
                ConditionExpression="attribute_exists(key_id)",
                ExpressionAttributeValues={":at": encode(at)},
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise translate(error, "revoke an API key") from error
        except BotoCoreError as error:
            raise translate(error, "revoke an API key") from error
        return True

    def all(self) -> list[ApiKeyRecord]:
        """Every key, oldest first (a Scan: the table holds a handful of items)."""
        request: dict[str, Any] = {"TableName": self.table, "ConsistentRead": True}
        records: list[ApiKeyRecord] = []
        ddb = client("dynamodb")
        while True:
            with aws_call("list API keys"):
                response = ddb.scan(**request)
            records.extend(_record(decode_item(raw)) for raw in response.get("Items", []))
            if "LastEvaluatedKey" not in response:
                return sorted(records, key=lambda r: (r.created_at, r.key_id))
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]
