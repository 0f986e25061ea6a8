"""USPS Tracking API v3 answers (``GET /tracking/v3/tracking/{n}?expand=DETAIL``) from true scans.

Rendered as USPS answers really look: events newest-first; ``eventTimestamp`` local wall time
truncated to the minute, ``GMTTimestamp`` UTC with seconds, ``GMTOffset`` like ``-05:00``;
booleans as the strings ``"true"``/``"false"``; ``eventCountry: null`` for domestic scans;
regional facilities named in ``eventCity`` with no state or ZIP; ``TL`` events with no location;
HTML in ``mailClass`` and ``services``. One observed quirk is kept on purpose: ``GMTTimestamp``
carries the *local* date (a scan at 23:28 CST on the 21st reads ``…-21T05:28:33Z``), which the
adapter must correct from the local time and offset.

USPS is polled only (no verifiable webhook signature), so there is no ``webhook_body``.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from infra.formats.scan import CANONICAL, Leg, Parcel, Place, Reading, TrueScan
from shared.models.canonical import IncidentType, Milestone

M, X = Milestone, IncidentType

# kind → (eventCode, eventType as USPS words it today). Codes: Pub 199 Appendix G-4.
CODES: dict[str, tuple[str, str]] = {
    "label_created": ("GX", "Shipping Label Created, USPS Awaiting Item"),
    "picked_up": ("03", "USPS in possession of item"),
    "departed_origin": ("SF", "Departed Post Office"),
    "in_transit": ("TL", "In Transit to Next Facility"),
    "arrived_hub": ("A1", "Arrived at USPS Regional Facility"),
    # USPS's domestic table has no customs codes: an inbound item is seen being processed at the
    # International Service Center, then departing it.
    "customs_started": ("10", "Processed Through USPS Facility"),
    "customs_hold": ("DX", "Delivery Status Not Updated"),
    "customs_cleared": ("EF", "Departed Sort Facility"),
    "handed_to_last_mile": ("07", "Arrived at Post Office"),
    "out_for_delivery": ("OF", "Out for Delivery"),
    "delivery_failed": ("52", "Notice Left (No Authorized Recipient Available)"),
    "address_issue": ("05", "Undeliverable as Addressed"),
    "delayed": ("71", "Rescheduled to Next Delivery Day"),
    "held": ("44", "Customer Recall"),
    # No G-4 code reports damage: the customer sees the status stop updating.
    "damaged": ("DX", "Delivery Status Not Updated"),
    "lost": ("11", "Sent to Mail Recovery Center"),
    "available_for_pickup": ("16", "Available for Pickup"),
    "delivered": ("01", "Delivered, Front Door/Porch"),
    "return_started": ("09", "Return to Sender Processed"),
    "return_delivered": ("01", "Delivered, To Original Sender"),
}

RENDERS: dict[str, set[Reading]] = {kind: {reading} for kind, reading in CANONICAL.items()}
RENDERS.update(
    {
        "customs_started": {(M.ARRIVED_HUB, None)},  # "10": processed at the ISC
        "customs_hold": {(None, X.DELAYED)},  # "DX": the only USPS notice that it is stuck
        "customs_cleared": {(M.IN_TRANSIT, None)},  # "EF": departed the ISC
        "address_issue": {(M.DELIVERY_FAILED, X.ADDRESS_ISSUE)},  # "05" is an attempt that failed
        "damaged": {(None, X.DELAYED)},  # "DX", as above
        # "01" after a return-to-sender scan in the same answer (as every poll shows it);
        # a bare "01" is a delivery.
        "return_delivered": {(M.RETURN_DELIVERED, None), (M.DELIVERED, None)},
    }
)

# The category USPS gives the latest event (statusCategory).
_CATEGORY = {
    "label_created": "Pre-Shipment",
    "picked_up": "Accepted",
    "out_for_delivery": "Out for Delivery",
    "delivery_failed": "Delivery Attempt",
    "address_issue": "Alert",
    "available_for_pickup": "Available for Pickup",
    "delivered": "Delivered",
    "return_started": "Alert",
    "return_delivered": "Delivered",
}
_NO_LOCATION = {"in_transit"}  # TL events: every place field null
_FACILITY = {"arrived_hub"}  # A1 events: eventCity is the facility, no state or ZIP


def usps_leg(parcel: Parcel) -> Leg:
    """The leg USPS tracks: the USPS one, else the first (USPS as the only carrier)."""
    return next((leg for leg in parcel.legs if leg.carrier == "usps"), parcel.first)


def _offset(local: datetime) -> str:
    delta = local.utcoffset() or timedelta(0)
    sign = "-" if delta < timedelta(0) else "+"
    minutes = abs(int(delta.total_seconds())) // 60
    return f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def _where(kind: str, place: Place | None) -> dict[str, Any]:
    empty: dict[str, Any] = {"eventCountry": None, "eventCity": None, "eventState": None, "eventZIP": None}
    if place is None or kind in _NO_LOCATION:
        return empty
    if kind in _FACILITY:
        name = " ".join(part for part in (place.city, place.region) if part).upper()
        return {**empty, "eventCity": f"{name} DISTRIBUTION CENTER" if name else None}
    return {
        # USPS leaves the country out of domestic scans.
        "eventCountry": None if place.country == "US" else place.country,
        "eventCity": place.city.upper() if place.city else None,
        "eventState": place.region,
        "eventZIP": place.postal_code,
    }


def tracking_event(scan: TrueScan) -> dict[str, Any]:
    """One ``trackingEvents`` item for a true scan."""
    code, text = CODES[scan.kind]
    local = scan.local()
    utc = scan.at.astimezone(UTC)
    return {
        "eventType": text,
        "eventTimestamp": local.strftime("%Y-%m-%dT%H:%M:00"),
        # USPS writes the UTC clock time under the local date.
        "GMTTimestamp": local.strftime("%Y-%m-%dT") + utc.strftime("%H:%M:%SZ"),
        "GMTOffset": _offset(local),
        **_where(scan.kind, scan.place),
        "firm": None,
        "name": None,
        "authorizedAgent": "false",
        "eventCode": code,
        "additionalProp": None,
    }


def _summary(scan: TrueScan) -> str:
    text = CODES[scan.kind][1]
    local = scan.local()
    clock = f"{local.hour % 12 or 12}:{local.minute:02d} {'pm' if local.hour >= 12 else 'am'}"
    when = f"{clock} on {local.strftime('%B %d, %Y')}"
    where = f" in {scan.place.city.upper()}, {scan.place.region}" if scan.place and scan.place.city else ""
    return f"Your item's latest status is {text} at {when}{where}."


def tracking_details(parcel: Parcel, scans: Sequence[TrueScan], *, now: datetime) -> dict[str, Any]:
    """The ``TrackingDetails`` object USPS answers with for the parcel's USPS number."""
    leg = usps_leg(parcel)
    seen = sorted((scan for scan in scans if scan.at <= now), key=lambda scan: scan.at, reverse=True)
    physical = [scan for scan in seen if scan.kind != "label_created"]
    latest = seen[0] if seen else None
    answer: dict[str, Any] = {
        "destinationCity": (parcel.destination.city or "").upper() or None,
        "destinationState": parcel.destination.region,
        "destinationZIP": parcel.destination.postal_code,
        "emailEnabled": "true",
        "kahalaIndicator": "false",
        "mailClass": "USPS Ground Advantage<SUP>&#153;</SUP>",
        "mailType": "DM",
        "originCity": (parcel.origin.city or "").upper() or None,
        "originState": parcel.origin.region,
        "originZIP": parcel.origin.postal_code,
        "proofOfDeliveryEnabled": "false",
        "restoreEnabled": "false",
        "RRAMEnabled": "false",
        "RREEnabled": "false",
        "services": ["USPS Tracking<SUP>&#174;</SUP>", "Up to $100 insurance included"],
        "serviceTypeCode": "001",
        "status": CODES[latest.kind][1] if latest else None,
        "statusCategory": _CATEGORY.get(latest.kind, "Moving Through Network") if latest else None,
        "statusSummary": _summary(latest) if latest else None,
        "tableCode": "T",
        "uniqueMailPieceID": str(zlib.crc32(leg.tracking_number.encode("ascii"))),
        "trackingEvents": [tracking_event(scan) for scan in seen],
        "trackingNumber": leg.tracking_number,
    }
    if physical:
        answer["mailPieceIntakeDate"] = physical[-1].local().strftime("%Y-%m-%d %H:%M:%S.000000")
    return answer


def poll_response(parcel: Parcel, scans: Sequence[TrueScan], *, now: datetime) -> bytes:
    """The HTTP 200 body of ``GET /tracking/v3/tracking/{n}?expand=DETAIL`` at ``now``."""
    return json.dumps(tracking_details(parcel, scans, now=now), indent=2).encode("utf-8")


def not_found(tracking_number: str) -> tuple[int, bytes]:
    """USPS's answer for a number it has no tracking for: HTTP 404 with the v3 ``ErrorMessage``."""
    body = {
        "apiVersion": "/tracking/v3",
        "error": {
            "code": "404",
            "message": "Tracking information is not available for this item.",
            "errors": [
                {
                    "status": "404",
                    "title": "Tracking not available",
                    "detail": f"No tracking is available for {tracking_number}: the number may be wrong, "
                    "or USPS has not received the item yet.",
                }
            ],
        },
    }
    return 404, json.dumps(body, indent=2).encode("utf-8")
