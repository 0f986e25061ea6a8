"""EasyPost webhook bodies: an ``Event`` whose ``result`` is the whole ``Tracker``.

EasyPost re-sends the tracker's full history with every ``tracker.updated``, oldest
detail first — which is exactly what makes duplicates the normal case downstream.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any


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
