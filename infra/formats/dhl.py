"""DHL Shipment Tracking - Unified answers and push notifications from true scans.

Rendered as DHL eCommerce shipments look through the Unified API: events newest-first, each
``timestamp`` local wall time without an offset, ``statusCode`` DHL's coarse code and ``status``
the division's upper-case text, ``addressLocality`` like ``"Henderson, NV, US"`` or
``"Leipzig, DE"``, and the shipment's ``status`` repeating the latest event. A last-mile leg
appears as a ``local-tracking-number`` reference with ``details.provider.destinationProvider``;
the last-mile carrier's scans are relayed under the DHL number, as DHL eCommerce does.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from infra.formats.scan import CANONICAL, Leg, Parcel, Place, Reading, TrueScan
from shared.models.canonical import IncidentType, Milestone

M, X = Milestone, IncidentType

# kind → (statusCode, status, description). Only the status values in mappings/dhl.toml carry
# meaning beyond statusCode; the others are DHL-style free text, read as their statusCode.
CODES: dict[str, tuple[str, str, str | None]] = {
    "label_created": ("unknown", "LABEL CREATED", None),
    "picked_up": ("transit", "PACKAGE RECEIVED AT DHL ECOMMERCE DISTRIBUTION CENTER", None),
    "departed_origin": ("transit", "DEPARTURE ORIGIN DHL ECOMMERCE FACILITY", None),
    "in_transit": ("transit", "IN TRANSIT TO NEXT FACILITY", None),
    "arrived_hub": ("transit", "PROCESSED", None),
    "customs_started": ("transit", "ARRIVED AT CUSTOMS", None),
    "customs_hold": ("transit", "CUSTOMS CLEARANCE DELAY", "Awaiting documents requested by customs"),
    "customs_cleared": ("transit", "CLEARED CUSTOMS", None),
    "handed_to_last_mile": ("transit", "TENDERED TO DELIVERY SERVICE PROVIDER", None),
    "out_for_delivery": ("transit", "OUT FOR DELIVERY", None),
    "delivery_failed": ("failure", "DELIVERY ATTEMPTED", "Recipient not available"),
    "address_issue": ("failure", "DELIVERY NOT POSSIBLE", "Address incomplete"),
    "delayed": ("transit", "SHIPMENT DELAYED", None),
    "held": ("transit", "SHIPMENT ON HOLD", None),
    "damaged": ("transit", "SHIPMENT DAMAGED", "Under investigation"),
    "lost": ("failure", "SHIPMENT NOT LOCATED", None),
    "available_for_pickup": ("transit", "READY FOR PICKUP AT SERVICE POINT", None),
    "delivered": ("delivered", "DELIVERED", "DELIVERED - PARCEL LOCKER"),
    "return_started": ("failure", "RETURNED TO SHIPPER", None),
    "return_delivered": ("delivered", "DELIVERED", "DELIVERED TO SENDER"),
}

# DHL Unified has one problem code (failure) and no codes for departures, customs clearance,
# holds, pickup points or returns: those arrive as plain transit/failure events whose meaning
# is only in the free text, and read as their statusCode. A return's delivery is told apart by
# its place: delivered at the shipment's origin, not its destination.
RENDERS: dict[str, set[Reading]] = {kind: {reading} for kind, reading in CANONICAL.items()}
RENDERS.update(
    {
        "customs_hold": {(M.IN_TRANSIT, None)},
        "customs_cleared": {(M.IN_TRANSIT, None)},
        "address_issue": {(M.DELIVERY_FAILED, X.DELIVERY_FAILED)},
        "delayed": {(M.IN_TRANSIT, None)},
        "held": {(M.IN_TRANSIT, None)},
        "damaged": {(M.IN_TRANSIT, None)},
        "lost": {(M.DELIVERY_FAILED, X.DELIVERY_FAILED)},
        "available_for_pickup": {(M.IN_TRANSIT, None)},
        "return_started": {(M.DELIVERY_FAILED, X.DELIVERY_FAILED)},
        # at the origin (as the simulator's returns are) it reads as the return's delivery; a
        # delivery anywhere else is one
        "return_delivered": {(M.RETURN_DELIVERED, None), (M.DELIVERED, None)},
    }
)

_REGIONAL = {"US", "CA", "AU"}  # DHL eCommerce writes "City, ST, CC" there


def dhl_leg(parcel: Parcel) -> Leg:
    """The leg DHL tracks: the DHL one, else the first."""
    return next((leg for leg in parcel.legs if leg.carrier == "dhl"), parcel.first)


def _locality(place: Place) -> str:
    parts = [place.city or ""]
    if place.region and place.country in _REGIONAL:
        parts.append(place.region)
    parts.append(place.country)
    return ", ".join(part for part in parts if part)


def _place(place: Place, *, locality: str | None = None) -> dict[str, Any]:
    address: dict[str, Any] = {"countryCode": place.country}
    if place.postal_code:
        address["postalCode"] = place.postal_code
    address["addressLocality"] = locality if locality is not None else _locality(place)
    return {"address": address}


def shipment_event(scan: TrueScan) -> dict[str, Any]:
    """One ``events`` item for a true scan."""
    status_code, status, description = CODES[scan.kind]
    event: dict[str, Any] = {"timestamp": scan.local().strftime("%Y-%m-%dT%H:%M:%S")}
    if scan.place is not None:
        event["location"] = _place(scan.place)
    event["statusCode"] = status_code
    event["status"] = status
    if description:
        event["description"] = description
    return event


def shipment(parcel: Parcel, scans: Sequence[TrueScan], *, now: datetime) -> dict[str, Any]:
    """The Unified ``shipment`` object for the parcel's DHL number at ``now``."""
    leg = dhl_leg(parcel)
    seen = sorted((scan for scan in scans if scan.at <= now), key=lambda scan: scan.at, reverse=True)
    events = [shipment_event(scan) for scan in seen]
    details: dict[str, Any] = {
        "product": {"productName": "DHL Parcel International Standard"},
        "weight": {"value": 0.92, "unitText": "KG"},
        "references": [
            {"number": f"SL{zlib.crc32(leg.tracking_number.encode()) % 10**8:08d}", "type": "customer-reference"}
        ],
    }
    last = parcel.last_mile
    if last is not None and last.tracking_number != leg.tracking_number:
        details["provider"] = {"destinationProvider": last.carrier}
        details["references"].append({"number": last.tracking_number, "type": "local-tracking-number"})
    answer: dict[str, Any] = {
        "id": leg.tracking_number,
        "service": "ecommerce",
        "origin": _place(parcel.origin, locality=(parcel.origin.city or "").upper()),
        "destination": _place(parcel.destination, locality=(parcel.destination.city or "").upper()),
    }
    if events:
        answer["status"] = dict(events[0])
    answer["details"] = details
    answer["events"] = events
    return answer


def poll_response(parcel: Parcel, scans: Sequence[TrueScan], *, now: datetime) -> bytes:
    """The HTTP 200 body of ``GET /track/shipments?trackingNumber=…`` at ``now``."""
    number = dhl_leg(parcel).tracking_number
    url = f"/track/shipments?trackingNumber={number}"
    body = {
        "url": url,
        "firstUrl": url,
        "prevUrl": url,
        "nextUrl": url,
        "lastUrl": url,
        "shipments": [shipment(parcel, scans, now=now)],
        "possibleAdditionalShipmentsUrl": [f"{url}&service=express", f"{url}&service=parcel-de"],
    }
    return json.dumps(body, indent=2).encode("utf-8")


def webhook_body(parcel: Parcel, scans: Sequence[TrueScan], *, now: datetime) -> bytes:
    """What the Unified push API posts after the last scan: the whole shipment again."""
    return json.dumps({"shipments": [shipment(parcel, scans, now=now)]}, separators=(",", ":")).encode("utf-8")


def not_found(tracking_number: str) -> tuple[int, bytes]:
    """DHL's answer for an unknown number: HTTP 404 with an RFC 7807 problem body."""
    body = {
        "title": "No result found",
        "detail": f"No shipment could be found for tracking number {tracking_number}.",
        "status": 404,
        "instance": f"/shipment/{tracking_number}",
    }
    return 404, json.dumps(body, indent=2).encode("utf-8")
