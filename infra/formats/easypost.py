"""EasyPost webhook bodies: an ``Event`` whose ``result`` is the whole ``Tracker``.

EasyPost re-sends the tracker's full history with every ``tracker.updated``, oldest
detail first — which is exactly what makes duplicates the normal case downstream.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from infra.formats.scan import CANONICAL, Parcel, Reading, TrueScan
from shared.models.canonical import IncidentType as X
from shared.models.canonical import Milestone as M


@dataclass(frozen=True)
class Scan:
    at: datetime
    status: str
    status_detail: str
    message: str
    city: str | None = None
    state: str | None = None
    zip: str | None = None
    country: str | None = "US"
    carrier_code: str | None = None


def _z(instant: datetime) -> str:
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def tracker(tracking_code: str, carrier: str, scans: list[Scan], *, tracker_id: str) -> dict[str, Any]:
    latest = scans[-1] if scans else None
    return {
        "id": tracker_id,
        "object": "Tracker",
        "mode": "production",
        "tracking_code": tracking_code,
        "status": latest.status if latest else "pre_transit",
        "status_detail": latest.status_detail if latest else "label_created",
        "created_at": _z(scans[0].at) if scans else None,
        "updated_at": _z(latest.at) if latest else None,
        "signed_by": None,
        "weight": 17.6,
        "est_delivery_date": None,
        "shipment_id": None,
        "carrier": carrier,
        "tracking_details": [
            {
                "object": "TrackingDetail",
                "message": scan.message,
                "description": scan.message,
                "status": scan.status,
                "status_detail": scan.status_detail,
                "datetime": _z(scan.at),
                "source": carrier,
                "carrier_code": scan.carrier_code or "",
                "tracking_location": {
                    "object": "TrackingLocation",
                    "city": scan.city,
                    "state": scan.state,
                    "country": scan.country,
                    "zip": scan.zip,
                },
            }
            for scan in scans
        ],
        "carrier_detail": {"object": "CarrierDetail", "service": "Ground", "alternate_identifier": None},
        "finalized": bool(latest and latest.status in ("delivered", "return_to_sender")),
        "is_return": False,
        "public_url": f"https://track.easypost.com/{tracker_id}",
    }


def tracker_event(
    tracking_code: str, carrier: str, scans: list[Scan], *, event_id: str, tracker_id: str, created: bool = False
) -> bytes:
    """The compact JSON body EasyPost posts for ``tracker.created`` / ``tracker.updated``."""
    result = tracker(tracking_code, carrier, scans, tracker_id=tracker_id)
    event = {
        "description": "tracker.created" if created else "tracker.updated",
        "mode": "production",
        "previous_attributes": {},
        "created_at": result["updated_at"],
        "pending_urls": [],
        "completed_urls": [],
        "updated_at": result["updated_at"],
        "id": event_id,
        "user_id": "user_demo",
        "status": "pending",
        "object": "Event",
        "result": result,
    }
    return json.dumps(event, separators=(",", ":")).encode("utf-8")


# ------------------------------------------------------------------------------ true scans

# How EasyPost tells each kind of scan (status, status_detail). EasyPost has no customs
# codes: customs scans arrive as plain in-transit updates, a customs hold as a hold.
_CODES: dict[str, tuple[str, str]] = {
    "label_created": ("pre_transit", "label_created"),
    "picked_up": ("in_transit", "received_at_origin_facility"),
    "departed_origin": ("in_transit", "departed_origin_facility"),
    "in_transit": ("in_transit", "departed_facility"),
    "arrived_hub": ("in_transit", "arrived_at_facility"),
    "customs_started": ("in_transit", "in_transit"),
    "customs_hold": ("in_transit", "held"),
    "customs_cleared": ("in_transit", "in_transit"),
    "handed_to_last_mile": ("in_transit", "transferred_to_destination_carrier"),
    "out_for_delivery": ("out_for_delivery", "out_for_delivery"),
    "delivery_failed": ("failure", "delivery_exception"),
    "address_issue": ("in_transit", "address_correction"),
    "delayed": ("in_transit", "delayed"),
    "held": ("in_transit", "held"),
    "damaged": ("in_transit", "damaged"),
    "lost": ("in_transit", "lost"),
    "available_for_pickup": ("available_for_pickup", "arrived_at_pickup_location"),
    "delivered": ("delivered", "arrived_at_destination"),
    "return_started": ("return_to_sender", "return"),
    "return_delivered": ("delivered", "arrived_at_destination"),  # EasyPost: a delivery on a return tracker
}
_MESSAGES = {
    "customs_started": "Processed through customs",
    "customs_cleared": "Released by customs",
    "customs_hold": "Held by customs",
}

RENDERS: dict[str, set[Reading]] = {kind: {reading} for kind, reading in CANONICAL.items()}
RENDERS.update(
    {
        "customs_started": {(M.IN_TRANSIT, None)},
        "customs_cleared": {(M.IN_TRANSIT, None)},
        "customs_hold": {(None, X.HELD)},
        "return_delivered": {(M.DELIVERED, None)},
    }
)

_CARRIER_NAMES = {"ups": "UPS", "fedex": "FedEx", "usps": "USPS", "dhl": "DHLExpress"}


def _scan(scan: TrueScan) -> Scan:
    status, detail = _CODES[scan.kind]
    place = scan.place
    message = scan.note or _MESSAGES.get(scan.kind) or detail.replace("_", " ").capitalize()
    return Scan(
        at=scan.at,
        status=status,
        status_detail=detail,
        message=message,
        city=place.city if place else None,
        state=place.region if place else None,
        zip=place.postal_code if place else None,
        country=place.country if place else None,
    )


def webhook_body(parcel: Parcel, scans: Sequence[TrueScan], *, now: datetime) -> bytes:
    """The ``tracker.updated`` EasyPost posts after the last of ``scans`` (the whole history)."""
    leg = parcel.first
    ordered = sorted(scans, key=lambda s: s.at)
    return tracker_event(
        leg.tracking_number,
        _CARRIER_NAMES.get(leg.carrier, leg.carrier),
        [_scan(s) for s in ordered],
        event_id="evt_" + hashlib.sha256(f"{leg.tracking_number}:{len(ordered)}".encode()).hexdigest()[:16],
        tracker_id=f"trk_{parcel.reference or leg.tracking_number.lower()}",
        created=len(ordered) == 1,
    )
