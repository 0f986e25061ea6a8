"""DHL Shipment Tracking - Unified: poll answers and push notifications.

``GET /track/shipments?trackingNumber=…`` answers ``{"shipments": [...]}``; the Unified push
API delivers the same shipment object, as ``{"shipments": [...]}`` or as one bare shipment:
both are read. A number DHL does not know is an RFC 7807 problem
(``{"title": "No result found", "status": 404, …}``): ignored, like any problem answer.

Codes (``mappings/dhl.toml``): ``statusCode`` is DHL's only code (pre-transit, transit,
delivered, failure, unknown). Each division puts its own meaning in the free-text ``status``;
a handful of exact values observed in DHL eCommerce answers refine ``transit`` and stand in
for ``unknown`` or a missing code. DHL's own example pairs ``statusCode: pre-transit`` with
``status: DELIVERED``: a decisive code wins over text, so that reads as a label. Express events
that carry only a ``description`` map to nothing and are reported as unmapped.

Time: ``events[].timestamp`` is local wall time without an offset (while ``status.timestamp``
may carry a ``Z``): resolved with the scan place's zone; a timestamp with an offset is used as
given. Places: ``address.addressLocality`` mixes street, city, region and country
(``"Oderweg 2, AMSTERDAM"``, ``"Henderson, NV, US"``, ``"HEATHROW, GB"``, Express
``"LEIPZIG - GERMANY"``): trailing country and region parts are peeled off and the city is the
part left after the last comma.

Returns: DHL has no return code ("RETURNED TO SHIPPER" arrives as ``failure``, its delivery as
``delivered``). What tells a return's delivery apart is where it happened: a ``delivered`` event
at the shipment's ``origin`` address (same country, and the same postal code, or the same city
when either has none) and not at its ``destination`` reads as ``return_delivered``. When the two
ends are the same place, or either is missing, a delivery stays a delivery.

Legs: ``details.references[]`` of type ``local-tracking-number`` with
``details.provider.destinationProvider`` names the last-mile carrier's number.
Docs: developer.dhl.com "Shipment Tracking - Unified" (OpenAPI) and "... - Unified - Push".
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError

from shared.adapters.base import (
    CodeMapping,
    LegLink,
    MappingTable,
    NormalizeResult,
    build_event,
    carrier_id,
    clip,
    first_error,
    location,
    parse_iso,
    time_from,
    tracking_number,
)
from shared.errors import PayloadError
from shared.models.canonical import Location, Milestone
from shared.models.geo import normalize_country
from shared.models.shipment import TrackingKey

CARRIER = "dhl"

Text = Annotated[str, Field(max_length=2000)]
Short = Annotated[str, Field(max_length=200)]

# DHL's own divisions as the Unified API names them (`service`, `destinationProvider`): a
# hand-over between them is still DHL.
DHL_DIVISIONS = frozenset(
    {
        "express",
        "freight",
        "freight-fr",
        "post-de",
        "post-international",
        "dsc",
        "dgf",
        "ecommerce",
        "ecommerce-europe",
        "ecommerce-apac",
        "svb",
        "sameday",
    }
)
_REGION = re.compile(r"[A-Z]{2,3}")


class _Input(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Address(_Input):
    countryCode: Short | None = None
    postalCode: Short | None = None
    addressLocality: Short | None = None


class Place(_Input):
    address: Address | None = None


class ShipmentEvent(_Input):
    timestamp: Short
    location: Place | None = None
    statusCode: Short | None = None
    status: Text | None = None
    description: Text | None = None


class Reference(_Input):
    number: Short | None = None
    type: Short | None = None


class Provider(_Input):
    destinationProvider: Short | None = None


class Details(_Input):
    provider: Provider | None = None
    references: Annotated[list[Reference], Field(max_length=50)] | Reference | None = None


class Shipment(_Input):
    id: Short | StrictInt
    service: Short | None = None
    origin: Place | None = None
    destination: Place | None = None
    details: Details | None = None
    events: Annotated[list[ShipmentEvent], Field(max_length=1000)] = []


class Shipments(_Input):
    shipments: Annotated[list[Shipment], Field(max_length=50)]


def _table() -> MappingTable:
    return MappingTable.load("dhl")


def _status_key(status: str | None) -> str | None:
    return status.strip().upper() if status and status.strip() else None


def map_codes(status_code: str | None, status: str | None) -> tuple[CodeMapping | None, list[str], bool]:
    """One mapping from an event's ``statusCode`` and ``status``: (mapping, unmapped codes,
    whether ``status`` was read as a code).

    A decisive ``statusCode`` (pre-transit, delivered, failure) stands; otherwise an exact
    ``status`` value from the table replaces it (``transit`` + ``OUT FOR DELIVERY``); a code that
    defers (``unknown``) or is missing leaves the meaning to ``status`` alone.
    """
    table = _table()
    unmapped: list[str] = []
    code = status_code.strip() if status_code and status_code.strip() else None
    # DHL spells the same values "Transit", "Pre-Transit" in its push subscriptions: case is noise.
    by_code = table.lookup("statusCode", code.lower() if code else None)
    if code is not None and by_code is None:
        unmapped.append(f"statusCode={code}")
    if by_code is not None and by_code.decisive:
        return by_code, unmapped, False
    key = _status_key(status)
    by_status = table.lookup("status", key)
    if by_status is not None:
        return by_status, unmapped, True
    if by_code is not None and not by_code.defer:
        return by_code, unmapped, False
    # Nothing coded: DHL said "unknown", sent no statusCode, or one outside its five values.
    if code is None:
        unmapped.append(f"status={key[:60]}" if key else "statusCode=-")
    elif by_code is not None and key:
        unmapped.append(f"status={key[:60]}")
    return None, unmapped, key is not None


def map_carrier_code(code: str) -> CodeMapping | None:
    """The mapping of one DHL Unified code as an aggregator relays it: a ``statusCode``
    (``transit``…) or one of the exact ``status`` values of the table; ``None`` otherwise
    (DHL Express checkpoint codes such as ``PU`` or ``OK`` belong to another DHL API)."""
    table = _table()
    return table.lookup("statusCode", code.strip().lower()) or table.lookup("status", _status_key(code))


def _peel_country(part: str, country: str | None, *, country_slot: bool) -> str | None:
    """``part`` as the country it names, when it can only be the country: it matches
    ``countryCode``, or (with no countryCode) it is a name or sits where only a country goes —
    a bare "CA" at the end of "Whittier, CA" may be California."""
    named = normalize_country(part)
    if named is None:
        return None
    if country is not None:
        return named if named == country else None
    return named if len(part) > 3 or country_slot else None


def place_of(address: Address | None) -> Location | None:
    """A canonical place from a DHL ``address`` (see module doc for ``addressLocality``)."""
    if address is None:
        return None
    country = normalize_country(clip(address.countryCode, 100))
    locality = clip(address.addressLocality, 200) or ""
    parts = [part.strip() for part in locality.split(",") if part.strip()]
    if len(parts) == 1 and " - " in parts[0]:  # Express: "LEIPZIG - GERMANY"
        head, _, tail = parts[0].rpartition(" - ")
        named = _peel_country(tail.strip(), country, country_slot=True)
        if named and head.strip():
            parts, country = [head.strip()], named
    region = None
    if len(parts) > 1:
        named = _peel_country(parts[-1], country, country_slot=len(parts) >= 3)
        if named:
            parts.pop()
            country = named
    if len(parts) > 1 and _REGION.fullmatch(parts[-1]):
        region = parts.pop()
    return location(
        city=parts[-1] if parts else None,
        region=region,
        postal_code=address.postalCode,
        country=country or address.countryCode,
    )


RETURN_DELIVERY = CodeMapping(milestone=Milestone.RETURN_DELIVERED)


def _postal(code: str, country: str) -> str:
    compact = re.sub(r"\s+", "", code).upper()
    return compact.split("-", 1)[0] if country == "US" else compact  # a ZIP+4 is its ZIP


def same_place(a: Location | None, b: Location | None) -> bool:
    """Whether two DHL places are the same address as far as DHL writes one: the same country,
    and the same postal code, or the same city when either has no postal code."""
    if a is None or b is None or a.country is None or a.country != b.country:
        return False
    if a.postal_code and b.postal_code:
        return _postal(a.postal_code, a.country) == _postal(b.postal_code, a.country)
    return a.city is not None and b.city is not None and a.city.casefold() == b.city.casefold()


def _sender(shipment: Shipment) -> Location | None:
    """The shipment's origin when a delivery there can only be a return: both ends are known
    and they are different places."""
    origin = place_of(shipment.origin.address if shipment.origin else None)
    destination = place_of(shipment.destination.address if shipment.destination else None)
    if destination is None or same_place(origin, destination):
        return None
    return origin


def _carrier_of(provider: str) -> str:
    name = provider.strip().lower()
    if name in DHL_DIVISIONS or name.startswith(("parcel-", "freight", "ecommerce")):
        return CARRIER
    return carrier_id(provider)


def _legs(shipment: Shipment, number: str) -> list[LegLink]:
    details = shipment.details
    if details is None or details.provider is None or not details.provider.destinationProvider:
        return []  # a local number without its carrier cannot be tracked
    references = details.references
    listed = references if isinstance(references, list) else [references] if references else []
    legs: list[LegLink] = []
    for reference in listed:
        if reference.type != "local-tracking-number" or not reference.number:
            continue
        try:
            local = TrackingKey(_carrier_of(details.provider.destinationProvider), tracking_number(reference.number))
        except PayloadError:
            continue  # not a tracking number: the leg is extra information, the events still count
        if local != (CARRIER, number):
            legs.append(LegLink(first=TrackingKey(CARRIER, number), last_mile=local))
    return legs


def _shipments_of(data: Any) -> list[Shipment] | str:
    """The shipments in a payload, or the reason it carries none."""
    if not isinstance(data, dict):
        raise PayloadError("DHL payload is not a JSON object")
    if "shipments" not in data and "id" not in data:
        status = data.get("status")
        if isinstance(status, int) and isinstance(data.get("title"), str):
            return f"DHL problem answer {status}: no shipment tracked under this number"
        raise PayloadError("DHL payload has neither shipments nor a shipment id")
    try:
        if "shipments" in data:
            return Shipments.model_validate(data).shipments
        return [Shipment.model_validate(data)]
    except ValidationError as error:
        raise PayloadError(f"DHL shipment: {first_error(error)}") from None


def normalize(body: bytes, *, received_at: datetime) -> NormalizeResult:
    """Canonical events of one DHL Unified answer or push notification."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise PayloadError("DHL payload is not JSON") from None
    shipments = _shipments_of(data)
    if isinstance(shipments, str):
        return NormalizeResult(ignored=shipments)
    if not any(shipment.events for shipment in shipments):
        return NormalizeResult(ignored="DHL answer carries no shipment events")
    result = NormalizeResult()
    for shipment in shipments:
        number = tracking_number(str(shipment.id))
        result.legs.extend(_legs(shipment, number))
        sender = _sender(shipment)
        for event in shipment.events:
            mapping, unmapped, read_status = map_codes(event.statusCode, event.status)
            result.unmapped.extend(unmapped)
            place = place_of(event.location.address if event.location else None)
            if mapping is not None and mapping.milestone is Milestone.DELIVERED and same_place(place, sender):
                mapping = RETURN_DELIVERY  # delivered back where it came from (see module doc)
            instant = parse_iso(event.timestamp)
            when = time_from(instant, place)
            code = (event.statusCode or "").strip() or "-"
            result.events.append(
                build_event(
                    carrier=CARRIER,
                    tracking_number=number,
                    mapping=mapping,
                    when=when,
                    place=place,
                    description=event.description or event.status,
                    raw_code=f"{code}/{(event.status or '').strip()}" if read_status else code,
                    received_at=received_at,
                )
            )
    return result
