"""Exceptions in the shipments table: items, lookups and the ops queue.

Layout (one partition per shipment, read with the rest of it by ``DynamoShipmentStore.load``):

=============================  ==================================  ===========================
item                           key                                 notes
=============================  ==================================  ===========================
exception                      ``SHP#<id>`` / ``EXC#<type>#<ep>``  one per (shipment, type,
                                                                   episode): created with
                                                                   ``attribute_not_exists``
id lookup                      ``EXC#<exception_id>`` / ``EXC``    → shipment id and sort key
=============================  ==================================  ===========================

Exception items carry ``queue = <status>#<owner>`` and ``sla_due_at``, the keys of the
sparse ``ByQueue`` index (projection ALL): "open exceptions of one owner, oldest SLA first"
is one Query. An open exception not yet escalated also carries the ``ByTimer`` keys
(``timer_bucket``, ``timer_due_at`` = its SLA), so the silence checker's escalation pass
finds it when the SLA passes.

API (reads here; every write goes through ``DynamoShipmentStore.commit`` with a ``Commit``
whose ``exceptions`` are ``IncidentWrite``\\ s, so an exception change, the shipment record,
its sequence and its outbox entries are one transaction — see ``shared.logic.incidents.playbooks``
for opening, resolving and escalating):

- ``DynamoIncidentStore.get(exception_id)`` → ``Incident | None`` (consistent;
  any malformed id is simply not found);
- ``DynamoIncidentStore.list_for_shipment(shipment_id)`` → every exception of a shipment,
  open and resolved, by type and episode;
- ``DynamoIncidentStore.list_queue(status=, owners=, type=, limit=, cursor=)`` →
  ``QueuePage(items, next_cursor)``: the ops queue, oldest SLA first across the owners asked
  for (all four when ``owners`` is empty), optionally one type; ``next_cursor`` is an
  opaque string to pass back, ``None`` on the last page. A cursor that is not one of ours
  raises ``InvalidInput``.
"""

from __future__ import annotations

import base64
import binascii
import heapq
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from shared.dal.aws import aws_call, client, query_pages
from shared.dal.codec import decode_item, encode, encode_item
from shared.dal.items import shipment_pk, timer_bucket
from shared.errors import InvalidInput
from shared.models.canonical import IncidentType, sortable_text
from shared.models.incidents import (
    EXCEPTION_ID_PATTERN,
    Incident,
    IncidentStatus,
    Owner,
)

EXCEPTION_PREFIX = "EXC#"
LOOKUP_SK = "EXC"
QUEUE_INDEX = "ByQueue"
MAX_PAGE = 100
_ID = re.compile(EXCEPTION_ID_PATTERN)


def incident_sk(type_: IncidentType, episode: str) -> str:
    return f"{EXCEPTION_PREFIX}{type_.value}#{episode}"


def queue_key(status: IncidentStatus, owner: Owner) -> str:
    return f"{status.value}#{owner.value}"


def lookup_pk(exception_id: str) -> str:
    return f"{EXCEPTION_PREFIX}{exception_id}"


def incident_item(exception: Incident) -> dict[str, Any]:
    """The stored exception: its fields, its queue keys, and its SLA timer while it can
    still be escalated."""
    fields = {name: value for name, value in exception.model_dump(mode="json").items() if value is not None}
    item: dict[str, Any] = {
        "pk": shipment_pk(exception.shipment_id),
        "sk": incident_sk(exception.type, exception.episode),
        "entity": "exception",
        **fields,
        "queue": queue_key(exception.status, exception.owner),
    }
    if exception.is_open and exception.escalated_at is None:
        item["timer_due_at"] = sortable_text(exception.sla_due_at)
        item["timer_bucket"] = timer_bucket(exception.shipment_id, exception.sla_due_at, exception.updated_at)
    return item


def incident_from_item(item: dict[str, Any]) -> Incident:
    return Incident.model_validate({name: item[name] for name in Incident.model_fields if name in item})


def lookup_item(exception: Incident) -> dict[str, Any]:
    return {
        "pk": lookup_pk(exception.exception_id),
        "sk": LOOKUP_SK,
        "entity": "exception_id",
        "shipment_id": exception.shipment_id,
        "incident_sk": incident_sk(exception.type, exception.episode),
    }


class Expect(StrEnum):
    """The condition an exception write holds on the stored item."""

    NEW = "new"  # no exception of this (type, episode) exists: one per episode, whoever races
    OPEN = "open"  # it is still open (an operator may have closed it meanwhile)
    OPEN_UNESCALATED = "open_unescalated"  # still open and not yet escalated (escalate once)
    STORED = "stored"  # it exists, whatever its status (a correction that announces nothing)


@dataclass(frozen=True)
class IncidentWrite:
    """One exception item in a ``Commit`` (a new exception also writes its id lookup)."""

    exception: Incident
    expect: Expect

    @property
    def size(self) -> int:
        return 2 if self.expect is Expect.NEW else 1


@dataclass(frozen=True)
class QueuePage:
    items: list[Incident]
    next_cursor: str | None


def _encode_cursor(positions: dict[str, Any]) -> str:
    raw = json.dumps(positions, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str, status: IncidentStatus, owners: Sequence[Owner]) -> dict[str, Any]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        positions = json.loads(raw)
    except (binascii.Error, ValueError):
        raise InvalidInput("cursor: not a cursor this listing returned") from None
    valid = isinstance(positions, dict) and all(
        key in {o.value for o in owners}
        and (
            value == "done"
            or (
                isinstance(value, dict)
                and set(value) == {"pk", "sk", "queue", "sla_due_at"}
                and all(isinstance(part, str) and len(part) <= 1024 for part in value.values())
                and value["queue"] == f"{status.value}#{key}"
            )
        )
        for key, value in positions.items()
    )
    if not valid:
        raise InvalidInput("cursor: not a cursor this listing returned (or the filters changed)")
    return dict(positions)


class DynamoIncidentStore:
    """Reads of exceptions (writes: ``DynamoShipmentStore.commit``)."""

    def __init__(self, table_name: str) -> None:
        self.table = table_name

    def get(self, exception_id: str) -> Incident | None:
        """The exception with this id (strongly consistent); ``None`` for any unknown or
        malformed id."""
        if not isinstance(exception_id, str) or not _ID.fullmatch(exception_id):
            return None
        ddb = client("dynamodb")
        with aws_call("read an exception id"):
            found = ddb.get_item(
                TableName=self.table,
                Key={"pk": encode(lookup_pk(exception_id)), "sk": encode(LOOKUP_SK)},
                ConsistentRead=True,
            ).get("Item")
        if not found:
            return None
        lookup = decode_item(found)
        with aws_call("read an exception"):
            item = ddb.get_item(
                TableName=self.table,
                Key={"pk": encode(shipment_pk(lookup["shipment_id"])), "sk": encode(lookup["incident_sk"])},
                ConsistentRead=True,
            ).get("Item")
        return incident_from_item(decode_item(item)) if item else None

    def list_for_shipment(self, shipment_id: str) -> list[Incident]:
        """Every exception of a shipment, open and resolved (one consistent Query)."""
        request: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :exc)",
            "ExpressionAttributeValues": {":pk": encode(shipment_pk(shipment_id)), ":exc": encode(EXCEPTION_PREFIX)},
            "ConsistentRead": True,
        }
        return [incident_from_item(item) for item in query_pages(request, "list a shipment's exceptions")]

    def list_queue(
        self,
        *,
        status: IncidentStatus = IncidentStatus.OPEN,
        owners: Sequence[Owner] = (),
        type: IncidentType | None = None,  # noqa: A002 - the route's query parameter
        limit: int = 50,
        cursor: str | None = None,
    ) -> QueuePage:
        """The ops queue: exceptions of ``status`` for ``owners``, oldest SLA first.

        One Query per owner on the ``ByQueue`` index, merged by SLA; the cursor remembers
        where each owner's partition was left, so pages never repeat or skip an item.
        """
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidInput(f"limit: must be between 1 and {MAX_PAGE}")
        asked = list(dict.fromkeys(owners)) or list(Owner)
        positions: dict[str, Any] = _decode_cursor(cursor, status, asked) if cursor else {}
        streams = {
            owner: self._queue_stream(status, owner, type, positions.get(owner.value), limit)
            for owner in asked
            if positions.get(owner.value) != "done"
        }
        heads: list[tuple[str, str, str, Owner, Incident]] = []
        for owner, stream in streams.items():
            first = next(stream, None)
            if first is not None:
                heads.append((sortable_text(first.sla_due_at), first.shipment_id, first.exception_id, owner, first))
            else:
                positions[owner.value] = "done"
        heapq.heapify(heads)
        items: list[Incident] = []
        while heads and len(items) < limit:
            _, _, _, owner, exception = heapq.heappop(heads)
            items.append(exception)
            positions[owner.value] = _position(exception)
            following = next(streams[owner], None)
            if following is None:
                positions[owner.value] = "done"
            else:
                heapq.heappush(
                    heads,
                    (
                        sortable_text(following.sla_due_at),
                        following.shipment_id,
                        following.exception_id,
                        owner,
                        following,
                    ),
                )
        return QueuePage(items, _encode_cursor(positions) if heads else None)

    def _queue_stream(
        self,
        status: IncidentStatus,
        owner: Owner,
        type_: IncidentType | None,
        start: dict[str, Any] | None,
        limit: int,
    ) -> Iterator[Incident]:
        request: dict[str, Any] = {
            "TableName": self.table,
            "IndexName": QUEUE_INDEX,
            "KeyConditionExpression": "#q = :q",
            "ExpressionAttributeNames": {"#q": "queue"},
            "ExpressionAttributeValues": {":q": encode(queue_key(status, owner))},
            "Limit": limit + 1,
        }
        if type_ is not None:
            request["FilterExpression"] = "#t = :t"
            request["ExpressionAttributeNames"]["#t"] = "type"
            request["ExpressionAttributeValues"][":t"] = encode(type_.value)
        if start is not None:
            request["ExclusiveStartKey"] = encode_item(start)
        for item in query_pages(request, "read the ops queue"):
            yield incident_from_item(item)


def _position(exception: Incident) -> dict[str, str]:
    """The ``ByQueue`` key of an item: where to resume after it."""
    return {
        "pk": shipment_pk(exception.shipment_id),
        "sk": incident_sk(exception.type, exception.episode),
        "queue": queue_key(exception.status, exception.owner),
        "sla_due_at": sortable_text(exception.sla_due_at),
    }
