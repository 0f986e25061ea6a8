"""The ops side of the merchant API: the exception queue, operator resolutions, delivered-not-
received claims and refund decisions (docs/merchant-api.md).

- ``GET /v1/exceptions?owner=&type=&status=&limit=&cursor=`` — the queue, oldest SLA first,
  one Query per owner on the ``ByQueue`` index (``shared.dal.incidents``). Each row is what a
  support agent needs in one answer: the parcel's numbers, its last scan, the exception, who
  acts, the next action, the customer message key, the SLA and the time left.
- ``POST /v1/exceptions/{id}/resolve`` — an operator closes an open exception with a note;
  ``Shipment Exception Resolved`` goes out through the shipment's outbox, in its sequence.
- ``POST /v1/shipments/{id}/claims`` — a delivered-not-received claim: only on a delivered
  parcel (409 otherwise), opening that exception with the claim's details.
- ``GET /v1/shipments/{id}/refund-decision`` — ``shared.logic.refunds.rules`` over the stored shipment.

Unknown ids answer 404 with one body whatever the id looks like.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict

from shared import clock
from shared.clock import isoformat_z
from shared.dal.bus import EventBridgePublisher
from shared.dal.incidents import MAX_PAGE, DynamoIncidentStore, Expect, QueuePage
from shared.dal.shipments import DynamoShipmentStore
from shared.errors import Conflict, InvalidInput, NotFound
from shared.logic.api.merchant import parse_body
from shared.logic.incidents.playbooks import (
    EXCEPTION_RAISED,
    EXCEPTION_RESOLVED,
    Announcement,
    new_incident,
    order_key,
    playbooks,
    resolved,
)
from shared.logic.incidents.silence import BusinessThresholds
from shared.logic.refunds.rules import decide_refund, facts_of, refund_rules
from shared.logic.shipments.chain import Draft, finish
from shared.logic.shipments.ports import Publisher, ShipmentStore
from shared.logic.shipments.unit_of_work import Decision, SimpleWork, UnitOfWork
from shared.logic.views.shipment import find_shipment, queue_row
from shared.models.canonical import IncidentType, Milestone
from shared.models.incidents import Incident, IncidentStatus, Owner, ResolvedBy, incident_id_for
from shared.models.ops import ClaimRequest, QueueRow, ResolveRequest
from shared.models.ops import QueuePage as QueuePageView
from shared.models.refunds import RefundDecision, RefundDecisionView
from shared.models.shipment import Partition
from shared.settings import MerchantApiSettings, load

EXCEPTION_NOT_FOUND = "no exception with this id"
MAX_BODY_BYTES = 8 * 1024
PAGE_DEFAULT = 25
CLAIM_FUTURE_TOLERANCE = timedelta(minutes=5)  # clocks differ a little; a claim from tomorrow is a mistake
QUEUE_PARAMETERS = ("owner", "type", "status", "limit", "cursor")


class IncidentReader(Protocol):
    def get(self, exception_id: str) -> Incident | None: ...
    def list_queue(
        self,
        *,
        status: IncidentStatus = IncidentStatus.OPEN,
        owners: Sequence[Owner] = (),
        type: IncidentType | None = None,  # noqa: A002 - the route's query parameter
        limit: int = 50,
        cursor: str | None = None,
    ) -> QueuePage: ...


@dataclass
class OpsServices:
    """What the ops routes work with (AWS resources, or in-memory fakes in unit tests)."""

    store: ShipmentStore
    incidents: IncidentReader
    publisher: Publisher


def ops_services() -> OpsServices:
    """The services wired to the resources the merchant API's environment names."""
    settings = load(MerchantApiSettings)
    return OpsServices(
        store=DynamoShipmentStore(settings.shipments_table),
        incidents=DynamoIncidentStore(settings.shipments_table),
        publisher=EventBridgePublisher(settings.event_bus_name),
    )


# ------------------------------------------------------------------------------ input


def _choice(name: str, value: str | None, allowed: type[Any]) -> Any:
    if value is None or value == "":
        return None
    try:
        return allowed(value)
    except ValueError:
        raise InvalidInput(f"{name}: one of {', '.join(member.value for member in allowed)}") from None


# ------------------------------------------------------------------------------ the queue


@dataclass(frozen=True)
class QueueFilters:
    owners: tuple[Owner, ...]
    type: IncidentType | None
    status: IncidentStatus
    limit: int

    def fingerprint(self) -> str:
        text = "|".join([",".join(o.value for o in self.owners), self.type or "", self.status.value])
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def shown(self) -> dict[str, str | None]:
        return {
            "owner": ",".join(o.value for o in self.owners) or None,
            "type": self.type.value if self.type else None,
            "status": self.status.value,
        }


def parse_queue_query(query: dict[str, str]) -> tuple[QueueFilters, str | None]:
    """The queue's filters (``owner`` may list several, comma-separated) and the store's cursor."""
    unknown = sorted(set(query) - set(QUEUE_PARAMETERS))
    if unknown:
        raise InvalidInput(f"{unknown[0]}: not a parameter of this route ({', '.join(QUEUE_PARAMETERS)})")
    owners: list[Owner] = []
    for part in (query.get("owner") or "").split(","):
        owner = _choice("owner", part.strip(), Owner)
        if owner is not None and owner not in owners:
            owners.append(owner)
    limit_text = query.get("limit") or ""
    if limit_text and (not limit_text.isdigit() or not 1 <= int(limit_text) <= MAX_PAGE):
        raise InvalidInput(f"limit: a whole number from 1 to {MAX_PAGE}")
    filters = QueueFilters(
        owners=tuple(owners),
        type=_choice("type", query.get("type"), IncidentType),
        status=_choice("status", query.get("status"), IncidentStatus) or IncidentStatus.OPEN,
        limit=int(limit_text) if limit_text else PAGE_DEFAULT,
    )
    cursor = query.get("cursor") or None
    return filters, _open_cursor(cursor, filters) if cursor else None


def _wrap_cursor(inner: str, filters: QueueFilters) -> str:
    """Our cursor: the store's position bound to the filters it was made for."""
    raw = json.dumps({"f": filters.fingerprint(), "p": inner}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _open_cursor(cursor: str, filters: QueueFilters) -> str:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        document = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeError):
        raise InvalidInput("cursor: not a cursor this route returned") from None
    if not isinstance(document, dict) or not isinstance(document.get("p"), str) or len(cursor) > 8192:
        raise InvalidInput("cursor: not a cursor this route returned")
    if document.get("f") != filters.fingerprint():
        raise InvalidInput("cursor: made for other filters (owner, type, status): start again without it")
    inner: str = document["p"]
    return inner


def list_exceptions(query: dict[str, str], services: OpsServices) -> QueuePageView:
    """``GET /v1/exceptions``: one page of the queue, oldest SLA first."""
    filters, cursor = parse_queue_query(query)
    now = clock.now()
    page = services.incidents.list_queue(
        status=filters.status, owners=filters.owners, type=filters.type, limit=filters.limit, cursor=cursor
    )
    return QueuePageView(
        as_of=now,
        filters=filters.shown(),
        items=[queue_row(exception, now) for exception in page.items],
        next_cursor=_wrap_cursor(page.next_cursor, filters) if page.next_cursor else None,
    )


# ------------------------------------------------------------------------------ resolve


def resolve_by_operator(
    exception_id: str,
    shipment_id: str,
    *,
    note: str,
    store: ShipmentStore,
    publisher: Publisher,
    now: datetime | None = None,
) -> Incident:
    """Close an open incident by hand, with its announcement, and publish it.

    ``NotFound`` if the shipment has no such incident; an incident already resolved is
    returned as it is (resolving twice changes nothing and publishes nothing). What the bus
    refuses stays in the outbox, and the silence checker publishes it within minutes."""

    def decide(partition: Partition | None, at: datetime) -> Decision[Incident]:
        found = next((e for e in partition.incidents if e.exception_id == exception_id), None) if partition else None
        if partition is None or found is None:
            raise NotFound(EXCEPTION_NOT_FOUND)
        if not found.is_open:
            return Decision(None, found)
        closed = resolved(found, now=at, by=ResolvedBy.OPERATOR, note=note)
        draft = Draft.of_partition(partition, partition.shipment, at)
        draft.write(closed, Expect.OPEN)
        draft.announce_incident(Announcement(EXCEPTION_RESOLVED, closed, order_key(None, at, 2)))
        return Decision(finish(draft), closed)

    uow = UnitOfWork(store, publisher, now=(lambda: now) if now else clock.now)
    closed = uow.run(SimpleWork(lambda s: s.load(shipment_id), decide))
    uow.relay()
    return closed


def resolve_exception(exception_id: str, body: str | bytes | None, services: OpsServices) -> QueueRow:
    """``POST /v1/exceptions/{id}/resolve``: close an open exception with the operator's note.

    404 for any id that names no exception (one answer, whatever the id looks like); 409 if it
    is already resolved (by the parcel moving on, or by another operator)."""
    found = services.incidents.get(exception_id)
    if found is None:
        raise NotFound(EXCEPTION_NOT_FOUND)
    request = parse_body(body, ResolveRequest, max_bytes=MAX_BODY_BYTES)
    if not found.is_open:
        raise Conflict(_already_resolved(found))
    now = clock.now()
    closed = resolve_by_operator(
        exception_id, found.shipment_id, note=request.note, store=services.store, publisher=services.publisher, now=now
    )
    if closed.resolved_by is not ResolvedBy.OPERATOR or closed.resolved_at != now:
        raise Conflict(_already_resolved(closed))  # someone (or the parcel) closed it meanwhile
    return queue_row(closed, now)


def _already_resolved(exception: Incident) -> str:
    when = isoformat_z(exception.resolved_at) if exception.resolved_at else "earlier"
    how = "by an operator" if exception.resolved_by is ResolvedBy.OPERATOR else "automatically"
    return f"this exception was already resolved {how} at {when}"


# ------------------------------------------------------------------------------ claims


class ClaimAnswer(BaseModel):
    """``POST /v1/shipments/{id}/claims``: the claim as the queue shows it, and what the
    refund rules say about it now."""

    model_config = ConfigDict(frozen=True)

    created: bool  # false: this very claim was recorded before (a retried request)
    claim: QueueRow
    refund_decision: RefundDecision


def record_claim(shipment_id: str, body: str | bytes | None, services: OpsServices) -> ClaimAnswer:
    """Open a ``delivered_not_received`` exception carrying the claim's details.

    Only a delivered parcel can be claimed as not received: anything else is a 409 (a parcel
    still travelling, or on its way back, has other remedies). One claim per shipment may be
    open at a time: the same request repeated answers the claim it recorded (200); another
    claim while one is open is a 409 naming it."""
    partition = find_shipment(shipment_id, services.store)
    request = parse_body(body, ClaimRequest, max_bytes=MAX_BODY_BYTES)
    now = clock.now()
    shipment = partition.shipment
    if shipment.status is not Milestone.DELIVERED or shipment.status_since is None:
        status = shipment.status.value if shipment.status else "no scan yet"
        raise Conflict(f"status: the parcel is not delivered ({status}); a not-received claim needs a delivery scan")
    claimed_at = request.claimed_at
    if claimed_at > now + CLAIM_FUTURE_TOLERANCE:
        raise InvalidInput("claimed_at: is in the future")
    if claimed_at < shipment.status_since:
        raise InvalidInput("claimed_at: is before the delivery scan")
    delivery = shipment.status_event_id or isoformat_z(shipment.status_since)
    episode = _claim_episode(delivery, request)
    open_claims = [e for e in partition.incidents if e.is_open and e.type is IncidentType.DELIVERED_NOT_RECEIVED]
    if open_claims and all(e.episode != episode for e in open_claims):
        raise Conflict(f"a claim is already open on this shipment: {open_claims[0].exception_id}")
    details = {
        "description": request.description,
        "claimed_at": isoformat_z(claimed_at),
        "contact_channel": request.contact_channel.value,
        "reference": request.reference,
        "delivered_at": isoformat_z(shipment.status_since),
        "delivery_event_id": shipment.status_event_id,
    }
    exception, created = open_claim(
        shipment.shipment_id, episode, cause_at=claimed_at, details=details, services=services, now=now
    )
    after = services.store.load(shipment.shipment_id) or partition
    return ClaimAnswer(created=created, claim=queue_row(exception, now), refund_decision=_decide(after, now))


def open_claim(
    shipment_id: str,
    episode: str,
    *,
    cause_at: datetime,
    details: dict[str, Any],
    services: OpsServices,
    now: datetime,
) -> tuple[Incident, bool]:
    """Open the ``delivered_not_received`` incident of ``episode`` with its playbook and
    publish it. Returns it and whether it was created: the same episode opened again returns
    the stored one unchanged (idempotent)."""
    kind = IncidentType.DELIVERED_NOT_RECEIVED

    def decide(partition: Partition | None, at: datetime) -> Decision[tuple[Incident, bool]]:
        if partition is None:
            raise NotFound("no shipment with this id")
        incident_id = incident_id_for(shipment_id, kind, episode)
        existing = next((e for e in partition.incidents if e.exception_id == incident_id), None)
        if existing is not None:
            return Decision(None, (existing, False))
        created = new_incident(
            partition.shipment, kind, episode, now=at, cause_at=cause_at, rules=playbooks(), details=details
        )
        draft = Draft.of_partition(partition, partition.shipment, at)
        draft.write(created, Expect.NEW)
        draft.announce_incident(Announcement(EXCEPTION_RAISED, created, order_key(None, at, 1)))
        return Decision(finish(draft), (created, True))

    uow = UnitOfWork(services.store, services.publisher, now=lambda: now)
    opened = uow.run(SimpleWork(lambda store: store.load(shipment_id), decide))
    uow.relay()
    return opened


def _claim_episode(delivery: str, request: ClaimRequest) -> str:
    """The same claim (retried) names the same episode; another claim, another one."""
    content = json.dumps(
        [delivery, isoformat_z(request.claimed_at), request.description, request.contact_channel.value],
        separators=(",", ":"),
    )
    return "claim-" + hashlib.sha256(content.encode()).hexdigest()[:32]


# ------------------------------------------------------------------------------ refunds


def _decide(partition: Partition, now: datetime) -> RefundDecision:
    return decide_refund(facts_of(partition, now), refund_rules(), BusinessThresholds())


def refund_decision(shipment_id: str, services: OpsServices) -> RefundDecisionView:
    """``GET /v1/shipments/{id}/refund-decision``."""
    partition = find_shipment(shipment_id, services.store)
    now = clock.now()
    decision = _decide(partition, now)
    return RefundDecisionView(
        **decision.model_dump(),
        shipment_id=partition.shipment.shipment_id,
        status=partition.shipment.status,
        as_of=now,
    )
