"""Registration: ``POST /v1/shipments`` (docs/merchant-api.md), a decision over the loaded shipment.

``POST /v1/shipments`` is idempotent on (carrier, tracking number). A registration attaches to
the shipment that already holds the number — whether a carrier's first event created it or an
earlier registration did — or creates one, through the one write path
(``shared.logic.shipments.unit_of_work``): the tracking-number items are written with
``attribute_not_exists`` and the record with its ``version``, in one transaction with the
``Shipment Registered`` announcement. So when a registration races the parcel's first scan, one
of the two transactions fails, re-reads and attaches to the shipment the other created: never
two shipments for one parcel. A retried registration finds nothing to change, writes nothing
and answers the same id and token; a registration with other data replaces the previous
registration's data and is announced again. The chain redoes what a registration moves: the
silence deadlines (label time, lane) and, when the numbers change, the carrier to poll.

A registration naming a last-mile number links both legs, merging two shipments created
separately by each carrier's events exactly as a carrier's leg link does.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from shared import clock
from shared.adapters.base import carrier_id
from shared.clock import isoformat_z
from shared.dal.shipments import Commit
from shared.errors import Conflict, DependencyUnavailable, InvalidInput
from shared.logic.api.merchant import MerchantServices, parse_body, tracking_url
from shared.logic.incidents.playbooks import order_key
from shared.logic.ingest.parcels import Contribution, ParcelWork, group_batch
from shared.logic.shipments.chain import CommitOptions, Draft, finish, leftovers
from shared.logic.shipments.ports import ShipmentStore
from shared.logic.shipments.unit_of_work import Decision, SimpleWork, UnitOfWork
from shared.models.detail import detail_header, detail_state
from shared.models.registration import RegistrationAnswer, RegistrationRequest
from shared.models.shipment import Partition, Shipment, TrackingKey, new_public_token, new_shipment_id

REGISTERED = "Shipment Registered"
REGISTRATION_SOURCE = "registration"  # a shipment's first_source when registration created it
MAX_BODY_BYTES = 16 * 1024
MERGES = 6  # shipments merged before giving up (each merge is one more registration attempt)
LABEL_FUTURE_TOLERANCE = timedelta(days=1)


# ------------------------------------------------------------------------------ input


def parse_registration(body: str | bytes | None, *, now: datetime) -> RegistrationRequest:
    """The registration payload, or ``InvalidInput`` naming every bad field and why."""
    request = parse_body(body, RegistrationRequest, max_bytes=MAX_BODY_BYTES)
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


def registered_detail(shipment: Shipment, sequence: int, *, first: bool) -> dict[str, Any]:
    """The ``Shipment Registered`` detail (docs/events.md documents this contract). No customer
    contact: bus events are archived and routed widely."""
    return {
        **detail_header(shipment, sequence),
        "first_registration": first,
        "registered_at": isoformat_z(shipment.registered_at) if shipment.registered_at else None,
        "state": detail_state(
            shipment,
            origin_country=shipment.origin.country if shipment.origin else None,
            destination_country=shipment.destination.country if shipment.destination else None,
            cross_border=shipment.cross_border,
            promised_delivery_date=shipment.promised_delivery_date.isoformat()
            if shipment.promised_delivery_date
            else None,
            label_created_at=isoformat_z(shipment.label_created_at) if shipment.label_created_at else None,
            locale=shipment.locale,
            time_zone=shipment.time_zone,
        ),
    }


def _announce(draft: Draft, *, first: bool) -> None:
    draft.announce(
        REGISTERED,
        order_key(None, draft.now, 0),
        lambda record, sequence: registered_detail(record, sequence, first=first),
    )


def _create(request: RegistrationRequest, keys: list[TrackingKey], now: datetime, options: CommitOptions) -> Commit:
    record = Shipment(
        shipment_id=new_shipment_id(),
        carrier=keys[0].carrier,
        tracking_number=keys[0].tracking_number,
        public_token=new_public_token(),
        created_at=now,
        updated_at=now,
        first_source=REGISTRATION_SOURCE,
        tracking_keys=[str(k) for k in keys],
        registered_at=now,
        **_registration_fields(request),
    )
    draft = Draft.of_partition(None, record, now, options)
    _announce(draft, first=True)
    return finish(draft, claim_keys=keys)


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
    draft = Draft.of_partition(partition, current, now, options)
    draft.update(
        **fields,
        registered_at=current.registered_at or now,
        carrier=ordered[0].carrier,
        tracking_number=ordered[0].tracking_number,
        tracking_keys=[str(k) for k in ordered],
    )
    draft.moved = ordered != current.keys  # the carrier to poll may have changed
    _announce(draft, first=current.registered_at is None)
    return finish(draft, claim_keys=unclaimed)


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


def _link_legs(keys: list[TrackingKey], uow: UnitOfWork, options: CommitOptions) -> None:
    """Merge the shipments each leg created, as a carrier's leg link would."""
    link = Contribution(
        message_id=REGISTRATION_SOURCE,
        source=REGISTRATION_SOURCE,
        pushed=False,
        attempt=1,
        events=[],
        legs=[(keys[0], keys[1])],
    )
    for group in group_batch([link], uow.store.resolve):
        uow.run(ParcelWork(group, options))


class _Holders(NamedTuple):
    owners: dict[TrackingKey, str]
    partitions: list[Partition]


def register_shipment(request: RegistrationRequest, *, uow: UnitOfWork, options: CommitOptions) -> Registered:
    """Attach a registration to the parcel's shipment, creating it if no carrier spoke yet.
    What it announces is left in ``uow`` to relay."""
    keys = _keys(request)

    def load(store: ShipmentStore) -> _Holders:
        owners = store.resolve(keys)
        return _Holders(owners, _partitions(owners, keys, store))

    def decide(held: _Holders, now: datetime) -> Decision[Registered | None]:
        if len(held.partitions) > 1:
            return Decision(None, None)  # two shipments hold its numbers: merge them first
        if not held.partitions:
            commit = _create(request, keys, now, options)
            return Decision(commit, Registered(commit.shipment, created=True, changed=True))
        partition = held.partitions[0]
        # Announcements a crashed or failed registration left behind, and any other
        # leftover old enough that no running processor still owns it.
        left = [e for e in partition.outbox if e.detail_type == REGISTERED] + leftovers(partition.outbox, now, options)
        change = _attach(partition, request, keys, held.owners, now, options)
        if change is None:
            return Decision(None, Registered(partition.shipment, created=False, changed=False), left)
        return Decision(change, Registered(change.shipment, created=False, changed=True), left)

    for _ in range(MERGES):
        registered = uow.run(SimpleWork(load, decide))
        if registered is not None:
            return registered
        _link_legs(keys, uow, options)
    raise Conflict("the shipment kept changing while it was being registered: send the same request again")


def register_from_body(
    body: str | bytes | None, services: MerchantServices, *, origin: str
) -> tuple[int, RegistrationAnswer]:
    """``POST /v1/shipments``: 201 and the new shipment, or 200 and the existing one.

    What it announces is published before the answer; ``DependencyUnavailable`` (503) if the
    bus refused it: it stays in the outbox, and the same request sent again publishes it (bus
    delivery is at least once; consumers deduplicate on ``shipment_id`` + ``sequence``)."""
    request = parse_registration(body, now=clock.now())
    uow = UnitOfWork(services.store, services.publisher)
    outcome = register_shipment(request, uow=uow, options=services.options)
    if not uow.relay().complete:
        raise DependencyUnavailable("stored, but the event bus refused the announcement: send the same request again")
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
