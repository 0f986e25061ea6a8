"""Registration and the shipment views of the merchant API (DESIGN §4.1).

``POST /v1/shipments`` is idempotent on (carrier, tracking number). A registration
attaches to the shipment that already holds the number — whether a carrier's first event
created it or an earlier registration did — or creates one, with the discipline of the
processor's commits (``shared.logic.ingest.parcels``): the tracking-number items are written with
``attribute_not_exists`` and the record with its ``version``, in one transaction with an
outbox entry. So when a registration races the parcel's first scan, one of the two
transactions fails, re-reads and attaches to the shipment the other created: never two
shipments for one parcel. A retried registration finds nothing to change, writes nothing
and answers the same id and token; a registration with other data replaces the previous
registration's data and is announced again.

A registration naming a last-mile number links both legs, merging two shipments created
separately by each carrier's events exactly as a carrier's leg link does.
"""

from __future__ import annotations

import base64
import binascii
import json
import random
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError

from shared import clock
from shared.adapters.base import carrier_id
from shared.clock import isoformat_z
from shared.dal.shipments import Commit
from shared.errors import Conflict, DependencyUnavailable, InvalidInput, MalformedPayload, NotFound, PayloadTooLarge
from shared.logic.api.merchant import MerchantServices, shipment_view, tracking_url
from shared.logic.incidents.playbooks import PENDING_CHECK
from shared.logic.incidents.silence import silence_fields
from shared.logic.ingest.parcels import (
    CommitOptions,
    Contribution,
    ShipmentStore,
    commit_group,
    group_batch,
    poll_fields,
)
from shared.logic.ingest.process import EventPublisher
from shared.logic.shipments.timeline import walk
from shared.models.merchant import MerchantShipmentView, ShipmentPage
from shared.models.registration import RegistrationAnswer, RegistrationRequest
from shared.models.shipment import (
    OutboxEntry,
    Partition,
    Shipment,
    TrackingKey,
    new_public_token,
    new_shipment_id,
)

REGISTERED = "Shipment Registered"
REGISTRATION_SOURCE = "registration"  # a shipment's first_source when registration created it
MAX_BODY_BYTES = 16 * 1024
ATTEMPTS = 6
LABEL_FUTURE_TOLERANCE = timedelta(days=1)
PAGE_DEFAULT, PAGE_MAX = 10, 50
NOT_FOUND = "no shipment with this id"
_SHIPMENT_ID = re.compile(r"^shp_[0-9a-f]{24}$")
_CURSOR_INSTANT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$")


# ------------------------------------------------------------------------------ input


def describe(error: ValidationError) -> str:
    """Every problem of a payload as ``field: reason`` (never the value: it may be personal)."""
    problems: list[str] = []
    for detail in error.errors(include_url=False, include_input=False, include_context=False):
        where = ".".join(str(part) for part in detail["loc"]) or "body"
        if detail["type"] == "missing":
            reason = "is required"
        elif detail["type"] == "extra_forbidden":
            reason = "is not a field of this request"
        else:
            reason = detail["msg"].removeprefix("Value error, ")
        problems.append(f"{where}: {reason}")
    return "; ".join(problems[:20])


def parse_registration(body: str | bytes | None, *, now: datetime) -> RegistrationRequest:
    """The registration payload, or ``InvalidInput`` naming every bad field and why."""
    raw = body.encode("utf-8") if isinstance(body, str) else (body or b"")
    if len(raw) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"body: at most {MAX_BODY_BYTES} bytes")
    if not raw.strip():
        raise MalformedPayload("body: a JSON object is required")
    try:
        document = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise MalformedPayload("body: not a JSON document") from None
    if not isinstance(document, dict):
        raise MalformedPayload("body: a JSON object is required")
    try:
        request = RegistrationRequest.model_validate_json(raw)
    except ValidationError as error:
        raise InvalidInput(describe(error)) from None
    if request.label_created_at is not None and request.label_created_at > now + LABEL_FUTURE_TOLERANCE:
        raise InvalidInput("label_created_at: is more than a day in the future")
    if request.last_mile is not None and _keys(request)[0] == _keys(request)[1]:
        raise InvalidInput("last_mile: names the same tracking number as the parcel itself")
    return request


def _keys(request: RegistrationRequest) -> list[TrackingKey]:
    """The parcel's tracking numbers in Shiplight's terms (``UPS`` → ``ups``), shipper's first."""
    keys = [TrackingKey(carrier_id(request.carrier), request.tracking_number)]
    if request.last_mile is not None:
        keys.append(TrackingKey(carrier_id(request.last_mile.carrier), request.last_mile.tracking_number))
    return keys


def _registration_fields(request: RegistrationRequest) -> dict[str, Any]:
    """What a registration sets on the shipment record (all of it: a registration replaces
    the previous one's data)."""
    return {
        "order_id": request.order_id,
        "origin": request.origin.stored(),
        "destination": request.destination.stored(),
        "customer": request.customer.stored() if request.customer else None,
        "locale": request.locale,
        "time_zone": request.time_zone,
        "promised_delivery_date": request.promised_delivery_date,
        "label_created_at": request.label_created_at.astimezone(UTC) if request.label_created_at else None,
    }


# ------------------------------------------------------------------------------ register


@dataclass
class Registered:
    shipment: Shipment
    created: bool  # a new shipment (201) rather than an existing one (200)
    changed: bool  # something was written
    pending: list[OutboxEntry] = field(default_factory=list)  # to publish


def registered_detail(shipment: Shipment, sequence: int, *, first: bool) -> dict[str, Any]:
    """The ``Shipment Registered`` detail (the README documents this contract). No customer
    contact: bus events are archived and routed widely."""
    return {
        "shipment_id": shipment.shipment_id,
        "order_id": shipment.order_id,
        "carrier": shipment.carrier,
        "tracking_number": shipment.tracking_number,
        "tracking_numbers": shipment.tracking_keys,
        "sequence": sequence,
        "first_registration": first,
        "registered_at": isoformat_z(shipment.registered_at) if shipment.registered_at else None,
        "state": {
            "status": shipment.status.value if shipment.status else None,
            "status_since": isoformat_z(shipment.status_since) if shipment.status_since else None,
            "last_event_at": isoformat_z(shipment.last_event_at) if shipment.last_event_at else None,
            "event_count": shipment.event_count,
            "origin_country": shipment.origin.country if shipment.origin else None,
            "destination_country": shipment.destination.country if shipment.destination else None,
            "cross_border": shipment.cross_border,
            "promised_delivery_date": shipment.promised_delivery_date.isoformat()
            if shipment.promised_delivery_date
            else None,
            "label_created_at": isoformat_z(shipment.label_created_at) if shipment.label_created_at else None,
            "locale": shipment.locale,
            "time_zone": shipment.time_zone,
        },
    }


def _announce(shipment: Shipment, now: datetime, *, first: bool) -> OutboxEntry:
    return OutboxEntry(
        shipment_id=shipment.shipment_id,
        sequence=shipment.sequence,
        detail_type=REGISTERED,
        detail=registered_detail(shipment, shipment.sequence, first=first),
        created_at=now,
    )


def _watched(shipment: Shipment, partition: Partition | None, now: datetime) -> Shipment:
    """The record with its silence plan redone — the label time and the lane a registration
    brings move the no-first-scan and stalled deadlines — and a look by the silence checker
    shortly, which publishes the announcement if its writer could not."""
    ordered = walk([stored.event for stored in partition.events]).ordered if partition else []
    exceptions = partition.incidents if partition else []
    planned = shipment.model_copy(update=silence_fields(shipment, ordered, exceptions, now=now))
    check, timer = now + PENDING_CHECK, planned.timer_due_at
    return planned.model_copy(
        update={
            "outbox_pending_since": shipment.outbox_pending_since or now,
            "timer_due_at": check if timer is None or timer > check else timer,
        }
    )


def _create(request: RegistrationRequest, keys: list[TrackingKey], now: datetime, options: CommitOptions) -> Commit:
    shipment = Shipment(
        shipment_id=new_shipment_id(),
        carrier=keys[0].carrier,
        tracking_number=keys[0].tracking_number,
        public_token=new_public_token(),
        created_at=now,
        updated_at=now,
        first_source=REGISTRATION_SOURCE,
        tracking_keys=[str(k) for k in keys],
        sequence=1,
        version=1,
        registered_at=now,
        **_registration_fields(request),
    )
    shipment = _watched(shipment.model_copy(update=poll_fields(shipment, now, options)), None, now)
    return Commit(
        shipment=shipment, expected_version=None, outbox=[_announce(shipment, now, first=True)], claim_keys=keys
    )


def _ordered(existing: list[TrackingKey], requested: list[TrackingKey]) -> list[TrackingKey]:
    """The shipment's tracking numbers after a registration: a named last-mile number goes
    after the parcel's own, which leads (the record's carrier and number follow it)."""
    merged = [*existing, *(k for k in requested if k not in existing)]
    if len(requested) < 2:
        return merged
    first, last_mile = requested
    return [first, *(k for k in merged if k not in (first, last_mile)), last_mile]


def _attach(
    partition: Partition,
    request: RegistrationRequest,
    keys: list[TrackingKey],
    owners: dict[TrackingKey, str],
    now: datetime,
    options: CommitOptions,
) -> Commit | None:
    """The registration written onto an existing shipment; ``None`` if nothing would change."""
    current = partition.shipment
    fields = _registration_fields(request)
    unclaimed = [k for k in keys if k not in owners]
    ordered = _ordered(current.keys, keys)
    same = all(getattr(current, name) == value for name, value in fields.items())
    if same and not unclaimed and ordered == current.keys and current.registered_at is not None:
        return None
    updated = current.model_copy(
        update={
            **fields,
            "registered_at": current.registered_at or now,
            "carrier": ordered[0].carrier,
            "tracking_number": ordered[0].tracking_number,
            "tracking_keys": [str(k) for k in ordered],
            "sequence": current.sequence + 1,
            "version": current.version + 1,
            "updated_at": now,
        }
    )
    if ordered != current.keys:  # the carrier to poll may have changed
        updated = updated.model_copy(update=poll_fields(updated, now, options))
    updated = _watched(updated, partition, now)
    return Commit(
        shipment=updated,
        expected_version=current.version,
        outbox=[_announce(updated, now, first=current.registered_at is None)],
        claim_keys=unclaimed,
    )


def _partitions(owners: dict[TrackingKey, str], keys: list[TrackingKey], store: ShipmentStore) -> list[Partition]:
    """The distinct shipments holding the parcel's numbers (following merges), in key order."""
    found: list[Partition] = []
    for key in keys:
        shipment_id: str | None = owners.get(key)
        partition = store.load(shipment_id) if shipment_id else None
        while partition is not None and partition.shipment.merged_into:
            partition = store.load(partition.shipment.merged_into)
        if partition is not None and all(p.shipment.shipment_id != partition.shipment.shipment_id for p in found):
            found.append(partition)
    return found


def _link_legs(keys: list[TrackingKey], store: ShipmentStore, options: CommitOptions) -> list[OutboxEntry]:
    """Merge the shipments each leg created, as a carrier's leg link would."""
    link = Contribution(
        message_id=REGISTRATION_SOURCE,
        source=REGISTRATION_SOURCE,
        pushed=False,
        attempt=1,
        events=[],
        legs=[(keys[0], keys[1])],
    )
    pending: list[OutboxEntry] = []
    for group in group_batch([link], store.resolve):
        pending.extend(commit_group(group, store, options).pending)
    return pending


def register_shipment(request: RegistrationRequest, *, store: ShipmentStore, options: CommitOptions) -> Registered:
    """Attach a registration to the parcel's shipment, creating it if no carrier spoke yet."""
    keys = _keys(request)
    pending: list[OutboxEntry] = []
    for attempt in range(ATTEMPTS):
        now = clock.now()
        owners = store.resolve(keys)
        partitions = _partitions(owners, keys, store)
        try:
            if len(partitions) > 1:
                pending.extend(_link_legs(keys, store, options))
                continue
            if not partitions:
                commit = _create(request, keys, now, options)
                store.commit(commit)
                return Registered(commit.shipment, created=True, changed=True, pending=[*pending, *commit.outbox])
            partition = partitions[0]
            # Announcements a crashed or failed registration left behind, and any other
            # leftover old enough that no running processor still owns it.
            leftovers = [
                e
                for e in partition.outbox
                if e.detail_type == REGISTERED or now - e.created_at >= options.leftover_grace
            ]
            change = _attach(partition, request, keys, owners, now, options)
            if change is None:
                return Registered(partition.shipment, created=False, changed=False, pending=[*pending, *leftovers])
            store.commit(change)
            return Registered(
                change.shipment, created=False, changed=True, pending=[*pending, *leftovers, *change.outbox]
            )
        except Conflict:
            time.sleep(random.uniform(0.0, min(0.4, 0.02 * 2**attempt)))  # noqa: S311 - jitter, not crypto
    raise Conflict("the shipment kept changing while it was being registered: send the same request again")


def publish_outbox(pending: Sequence[OutboxEntry], *, store: ShipmentStore, publisher: EventPublisher) -> None:
    """Publish outbox entries in order and forget those the bus accepted.

    ``DependencyUnavailable`` if any was refused: it stays in the outbox, and the same
    request sent again publishes it (bus delivery is at least once; consumers deduplicate
    on ``shipment_id`` + ``sequence``).
    """
    unique = {(e.shipment_id, e.sequence): e for e in pending}
    ordered = sorted(unique.values(), key=lambda e: (e.shipment_id, e.sequence))
    if not ordered:
        return
    failed = publisher.publish(ordered)
    refused = {(e.shipment_id, e.sequence) for e in failed}
    accepted = [e for e in ordered if (e.shipment_id, e.sequence) not in refused]
    if accepted:
        store.delete_outbox(accepted)
    if failed:
        raise DependencyUnavailable("stored, but the event bus refused the announcement: send the same request again")


def register_from_body(
    body: str | bytes | None, services: MerchantServices, *, origin: str
) -> tuple[int, RegistrationAnswer]:
    """``POST /v1/shipments``: 201 and the new shipment, or 200 and the existing one."""
    request = parse_registration(body, now=clock.now())
    outcome = register_shipment(request, store=services.store, options=services.options)
    publish_outbox(outcome.pending, store=services.store, publisher=services.publisher)
    shipment = outcome.shipment
    answer = RegistrationAnswer(
        shipment_id=shipment.shipment_id,
        tracking_token=shipment.public_token,
        tracking_url=tracking_url(shipment.public_token, public_base_url=services.public_base_url, origin=origin),
        order_id=request.order_id,
        carrier=shipment.carrier,
        tracking_number=shipment.tracking_number,
        created=outcome.created,
        registered_at=shipment.registered_at or clock.now(),
    )
    return (201 if outcome.created else 200), answer


# ------------------------------------------------------------------------------ read


def _load_shipment(shipment_id: str, store: ShipmentStore) -> Partition:
    """The shipment behind an id (a merged one answers with the shipment it joined);
    ``NotFound`` with one answer whatever the id looks like."""
    if not _SHIPMENT_ID.fullmatch(shipment_id):
        raise NotFound(NOT_FOUND)
    partition = store.load(shipment_id)
    for _ in range(4):  # merges chain rarely, and never in a loop
        if partition is None or not partition.shipment.merged_into:
            break
        partition = store.load(partition.shipment.merged_into)
    if partition is None:
        raise NotFound(NOT_FOUND)
    return partition


def _view(partition: Partition, services: MerchantServices, origin: str) -> MerchantShipmentView:
    # The ops queue's row builder; imported here because shared.logic.merchant.ops builds on this module.
    from shared.logic.merchant.ops import queue_row

    now = clock.now()
    link = tracking_url(partition.shipment.public_token, public_base_url=services.public_base_url, origin=origin)
    rows = [queue_row(e, now) for e in sorted(partition.incidents, key=lambda e: e.sla_due_at) if e.is_open]
    return shipment_view(partition, tracking_link=link, exceptions=rows)


def get_shipment(shipment_id: str, services: MerchantServices, *, origin: str) -> MerchantShipmentView:
    """``GET /v1/shipments/{id}``."""
    return _view(_load_shipment(shipment_id, services.store), services, origin)


def encode_cursor(after: tuple[str, str]) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(after), separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[str, str]:
    """The position an opaque cursor stands for; ``InvalidInput`` for anything this API did not give."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created_at, shipment_id = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (ValueError, TypeError, UnicodeEncodeError, binascii.Error):
        raise InvalidInput("cursor: not a cursor this API gave") from None
    if not (
        isinstance(created_at, str)
        and isinstance(shipment_id, str)
        and _CURSOR_INSTANT.fullmatch(created_at)
        and _SHIPMENT_ID.fullmatch(shipment_id)
    ):
        raise InvalidInput("cursor: not a cursor this API gave")
    return created_at, shipment_id


def _limit(text: str | None) -> int:
    if text is None or text == "":
        return PAGE_DEFAULT
    if not text.isdigit() or not 1 <= int(text) <= PAGE_MAX:
        raise InvalidInput(f"limit: a whole number from 1 to {PAGE_MAX}")
    return int(text)


def list_shipments(query: dict[str, str], services: MerchantServices, *, origin: str) -> ShipmentPage:
    """``GET /v1/shipments?order_id=…[&limit=…][&cursor=…]``: an order's shipments, oldest first."""
    unknown = sorted(set(query) - {"order_id", "limit", "cursor"})
    if unknown:
        raise InvalidInput(f"{unknown[0]}: not a parameter of this route (order_id, limit, cursor)")
    order_id = (query.get("order_id") or "").strip()
    if not order_id:
        raise InvalidInput("order_id: is required")
    if len(order_id) > 128 or any(ord(c) < 32 or 127 <= ord(c) < 160 for c in order_id):
        raise InvalidInput("order_id: at most 128 printable characters")
    limit = _limit(query.get("limit"))
    after = decode_cursor(query["cursor"]) if query.get("cursor") else None
    page = services.orders.shipments_of_order(order_id, limit=limit, after=after)
    views: list[MerchantShipmentView] = []
    listed: set[str] = set()
    for shipment_id in page.shipment_ids:
        try:
            # A shipment merged into another is listed as the one it joined, once.
            partition = _load_shipment(shipment_id, services.store)
        except NotFound:
            continue
        shipment = partition.shipment
        if shipment.shipment_id in listed:
            continue
        listed.add(shipment.shipment_id)
        views.append(_view(partition, services, origin))
    return ShipmentPage(
        order_id=order_id, shipments=views, next_cursor=encode_cursor(page.after) if page.after else None
    )
