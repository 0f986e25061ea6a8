"""Shippo ``track_updated`` webhook bodies rendered from true scans.

Shippo re-sends the whole Track with every update: ``tracking_history`` oldest-first,
``tracking_status`` repeating the latest event, every ``status_date`` in UTC (``…Z``).
A Track is one carrier and one number: scans a partner carrier makes for the last mile
are relayed under the shipper carrier's number (as USPS does for its partners), so they
read as that carrier's.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from infra.formats.scan import CANONICAL, Parcel, Place, Reading, TrueScan
from shared.models.canonical import IncidentType, Milestone

M, X = Milestone, IncidentType

# kind → (status, substatus code, status_details), from Shippo's "Event definitions".
# ``None`` substatus: Shippo sends ``"substatus": null`` (as in its test-mode examples).
CODES: dict[str, tuple[str, str | None, str]] = {
    "label_created": ("PRE_TRANSIT", "information_received", "Shipping label created, awaiting the parcel."),
    "picked_up": ("TRANSIT", "package_accepted", "Your shipment has been accepted."),
    "departed_origin": ("TRANSIT", "package_departed", "Departed the origin facility."),
    "in_transit": ("TRANSIT", None, "Your shipment is in transit."),
    "arrived_hub": ("TRANSIT", "package_arrived", "Arrived at a carrier facility."),
    "customs_started": ("TRANSIT", "package_processing", "Processing at the international gateway."),
    "customs_hold": ("TRANSIT", "package_held", "Held at the carrier facility."),
    "customs_cleared": ("TRANSIT", "package_processed", "Processed at the international gateway."),
    "handed_to_last_mile": ("TRANSIT", "package_arrived", "Arrived at the destination facility."),
    "out_for_delivery": ("TRANSIT", "out_for_delivery", "Out for delivery."),
    "delivery_failed": ("TRANSIT", "delivery_attempted", "Delivery attempted, no one available."),
    "address_issue": ("TRANSIT", "address_issue", "Address information is incorrect."),
    "delayed": ("TRANSIT", "delayed", "Delivery of the package is delayed."),
    "held": ("TRANSIT", "package_held", "Held at the carrier facility."),
    "damaged": ("TRANSIT", "package_damaged", "The package has been damaged."),
    "lost": ("FAILURE", "package_lost", "The package has been lost."),
    "available_for_pickup": ("TRANSIT", "pickup_available", "Available for pickup at the carrier location."),
    "delivered": ("DELIVERED", "delivered", "Your shipment has been delivered."),
    "return_started": ("RETURNED", "return_to_sender", "Your shipment is being returned to the sender."),
    "return_delivered": ("RETURNED", "return_to_sender", "Your shipment has been returned to the sender."),
}

RENDERS: dict[str, set[Reading]] = {kind: {reading} for kind, reading in CANONICAL.items()}
# Shippo's only departure substatus is a departure from any intermediate location.
RENDERS["departed_origin"] = {(M.IN_TRANSIT, None)}
# No customs substatuses: customs processing comes as processing/processed at a location,
# a customs hold as a parcel held at the carrier.
RENDERS["customs_started"] = {(M.ARRIVED_HUB, None)}
RENDERS["customs_cleared"] = {(M.ARRIVED_HUB, None)}
RENDERS["customs_hold"] = {(None, X.HELD)}
# No handover substatus: the destination facility's arrival scan is what Shippo relays.
RENDERS["handed_to_last_mile"] = {(M.ARRIVED_HUB, None)}
# RETURNED covers a return on its way and one that reached the sender alike.
RENDERS["return_delivered"] = {(M.RETURN_STARTED, X.RETURN_TO_SENDER)}

# Substatuses Shippo marks "action required" (its event-definitions table).
ACTION_REQUIRED = frozenset(
    {
        "address_issue",
        "contact_carrier",
        "delivery_attempted",
        "location_inaccessible",
        "notice_left",
        "package_damaged",
        "package_held",
        "pickup_available",
        "reschedule_delivery",
        "package_unclaimed",
        "package_undeliverable",
        "package_lost",
    }
)

# Shiplight carrier id → Shippo carrier token (Shippo "Carrier tokens" reference).
TOKENS: dict[str, str] = {
    "ups": "ups",
    "fedex": "fedex",
    "usps": "usps",
    "dhl": "dhl_express",
    "canada_post": "canada_post",
    "ontrac": "ontrac",
    "lasership": "lasership",
}


def token(carrier: str) -> str:
    """The Shippo carrier token of a Shiplight carrier id."""
    return TOKENS.get(carrier, carrier)


def _z(instant: datetime, *, millis: bool = False) -> str:
    value = instant.astimezone(UTC)
    if millis:
        return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def _location(place: Place | None) -> dict[str, Any] | None:
    if place is None:
        return None
    return {"city": place.city, "state": place.region, "zip": place.postal_code, "country": place.country}


def _object_id(number: str, scan: TrueScan) -> str:
    return uuid.uuid5(uuid.NAMESPACE_URL, f"shippo:{number}:{scan.kind}:{scan.at.isoformat()}").hex


def event(number: str, scan: TrueScan, *, now: datetime) -> dict[str, Any]:
    """One Shippo tracking event for a true scan."""
    status, substatus, details = CODES[scan.kind]
    return {
        "object_created": _z(now, millis=True),
        "object_updated": _z(now, millis=True),
        "object_id": _object_id(number, scan),
        "status": status,
        "status_details": scan.note or details,
        "status_date": _z(scan.at),
        "substatus": (
            {"code": substatus, "text": details, "action_required": substatus in ACTION_REQUIRED} if substatus else None
        ),
        "location": _location(scan.place),
    }


def _address(place: Place) -> dict[str, Any]:
    return {"city": place.city, "state": place.region, "zip": place.postal_code, "country": place.country}


def track(parcel: Parcel, scans: Sequence[TrueScan], *, now: datetime) -> dict[str, Any]:
    """The Track object Shippo sends (``data``) after the last of ``scans``."""
    number = parcel.first.tracking_number
    history = [event(number, scan, now=now) for scan in sorted(scans, key=lambda scan: scan.at)]
    current = history[-1] if history else None
    return {
        "messages": [],
        "carrier": token(parcel.first.carrier),
        "tracking_number": number,
        "address_from": _address(parcel.origin),
        "address_to": _address(parcel.destination),
        "transaction": None,
        "original_eta": None,
        "eta": None,
        "servicelevel": {"token": f"{token(parcel.first.carrier)}_{parcel.service.lower()}", "name": parcel.service},
        "metadata": parcel.reference or None,
        "tracking_status": current
        or {
            "object_created": _z(now, millis=True),
            "object_updated": None,
            "object_id": uuid.uuid5(uuid.NAMESPACE_URL, f"shippo:{number}").hex,
            "status": "UNKNOWN",
            "status_details": "The carrier has not scanned this parcel yet.",
            "status_date": None,
            "substatus": None,
            "location": None,
        },
        "tracking_history": history,
        "test": False,
    }


def webhook_body(parcel: Parcel, scans: Sequence[TrueScan], *, now: datetime) -> bytes:
    """The body Shippo POSTs (``track_updated``) after the last scan in ``scans``."""
    body = {"event": "track_updated", "test": False, "data": track(parcel, scans, now=now)}
    return json.dumps(body, separators=(",", ":")).encode("utf-8")
