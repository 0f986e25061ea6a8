"""The ``ByToken`` index: what a tracking page may show, in one Query (docs/architecture.md).

Shipment and event items carry ``public_token``; the index projects only public attributes
(template.yaml), so this read cannot see a customer. botocore only, through ``shared.dal.aws``
and ``shared.dal.codec``: the public route's cold start is what a customer waits for.
"""

from __future__ import annotations

from typing import Any

from shared.dal.aws import query_pages
from shared.dal.codec import encode

TOKEN_INDEX = "ByToken"  # noqa: S105 - an index name, not a secret


class TokenIndex:
    """The token index of one shipments table."""

    def __init__(self, table: str) -> None:
        self.table = table

    def public_items(self, token: str) -> list[dict[str, Any]]:
        """Every item published under ``token`` (the shipment record and its events), decoded."""
        request: dict[str, Any] = {
            "TableName": self.table,
            "IndexName": TOKEN_INDEX,
            "KeyConditionExpression": "#k = :v",
            "ExpressionAttributeNames": {"#k": "public_token"},
            "ExpressionAttributeValues": {":v": encode(token)},
        }
        return list(query_pages(request, "read shipment"))
