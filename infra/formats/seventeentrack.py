"""17TRACK (API v2.x) bodies rendered from true scans: the ``TRACKING_UPDATED`` push, the
``gettrackinfo`` answer and its not-found answer.

Every leg with scans is one provider (the carrier that scanned it), its events
newest-first, each with ``time_utc`` (the instant), ``time_iso`` (local time with offset)
and ``time_raw`` (the carrier's own date, time and zone), a ``location`` line and a mostly
structured ``address``. ``misc_info`` names the last-mile number once its carrier has
scanned the parcel. The numeric ``carrier`` key is the 17TRACK key of the first carrier.
The adapter relies on neither the provider order nor the event order.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from infra.formats.scan import CANONICAL, Parcel, Place, Reading, TrueScan
from shared.models.canonical import Milestone

M = Milestone

# kind → (sub_status, stage, description), from 17TRACK's sub-status and key-stage tables.
CODES: dict[str, tuple[str, str | None, str]] = {
    "label_created": ("InfoReceived", "InfoReceived", "Shipment information received"),
    "picked_up": ("InTransit_PickedUp", "PickedUp", "Picked up from the sender"),
    "departed_origin": ("InTransit_Departure", "Departure", "Departed from the origin country"),
    "in_transit": ("InTransit_Other", None, "In transit to the next facility"),
    "arrived_hub": ("InTransit_Arrival", "Arrival", "Arrived at the sorting centre"),
    "customs_started": ("InTransit_CustomsProcessing", None, "Handed over to customs"),
    "customs_hold": ("InTransit_CustomsRequiringInformation", None, "Customs require further information"),
    "customs_cleared": ("InTransit_CustomsReleased", None, "Released by customs"),
    "handed_to_last_mile": ("InTransit_Arrival", "Arrival", "Received by the delivery carrier"),
    "out_for_delivery": ("OutForDelivery_Other", "OutForDelivery", "Out for delivery"),
    "delivery_failed": ("DeliveryFailure_NoBody", None, "Delivery attempted, recipient not available"),
    "address_issue": ("Exception_NoBody", None, "Recipient address information is incorrect"),
    "delayed": ("Exception_Delayed", None, "Delivery delayed"),
    "held": ("Exception_Security", None, "Held at the facility pending fees"),
    "damaged": ("Exception_Damage", None, "Package found damaged"),
    "lost": ("Exception_Lost", None, "Package lost"),
    "available_for_pickup": ("AvailableForPickup_Other", "AvailableForPickup", "Available for pickup"),
    "delivered": ("Delivered_Other", "Delivered", "Delivered"),
    "return_started": ("Exception_Returning", "Returning", "Returning to the sender"),
    "return_delivered": ("Exception_Returned", "Returned", "Returned to the sender"),
}

_HANDOVER: Reading = (M.HANDED_TO_LAST_MILE, None)

RENDERS: dict[str, set[Reading]] = {kind: {reading} for kind, reading in CANONICAL.items()}
# No sub-status says "handed over": the last-mile provider's first movement scan (here an
# arrival) is read as the handover; reported by the first provider it stays an arrival. Any
# movement kind that is the last-mile provider's first scan reads the same way.
RENDERS["handed_to_last_mile"] = {_HANDOVER, (M.ARRIVED_HUB, None)}
for _kind in ("picked_up", "departed_origin", "in_transit", "arrived_hub"):
    RENDERS[_kind].add(_HANDOVER)

# Shiplight carrier id → (17TRACK carrier key, provider name). Keys as used with the public
# v2 API by independent clients (CARRIER_CODES tables); 17TRACK's full list is apicarrier.all.json.
PROVIDERS: dict[str, tuple[int, str]] = {
    "dhl": (100001, "DHL"),
    "ups": (100002, "UPS"),
    "fedex": (100003, "FedEx"),
    "usps": (21051, "USPS"),
    "china_post": (3011, "China Post"),
    "yanwen": (190012, "Yanwen"),
    "yunexpress": (190107, "YunExpress"),
    "cainiao": (190271, "Cainiao"),
}

# What 17TRACK answers (HTTP 200) for a number it has no information on.
NOT_FOUND_CODE = -18019909


def provider(carrier: str) -> tuple[int, str]:
    """The 17TRACK key and provider name of a Shiplight carrier id (key 0 when unknown)."""
    return PROVIDERS.get(carrier, (0, carrier.replace("_", " ").title()))


def _z(instant: datetime) -> str:
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _hash(text: str) -> int:
    return zlib.crc32(text.encode("utf-8")) - 2**31


def _address(place: Place | None) -> dict[str, Any]:
    return {
        "country": place.country if place else None,
        "state": place.region if place else None,
        "city": place.city if place else None,
        "street": None,
        "postal_code": place.postal_code if place else None,
        "coordinates": {"longitude": None, "latitude": None},
    }


def event(scan: TrueScan) -> dict[str, Any]:
    """One provider event for a true scan."""
    sub_status, stage, description = CODES[scan.kind]
    local = scan.local()
    offset = local.strftime("%z")
    place = scan.place
    return {
        "time_iso": local.isoformat(timespec="seconds"),
        "time_utc": _z(scan.at),
        "time_raw": {
            "date": local.strftime("%Y-%m-%d"),
            "time": local.strftime("%H:%M:%S"),
            "timezone": f"{offset[:3]}:{offset[3:]}",
        },
        "description": scan.note or description,
        "location": ", ".join(part for part in (place.city, place.region, place.country) if part) if place else None,
        "stage": stage,
        "sub_status": sub_status,
        "address": _address(place),
    }


def _main_status(sub_status: str) -> str:
    return sub_status.split("_", 1)[0]


def track_info(parcel: Parcel, scans: Sequence[TrueScan], *, now: datetime) -> dict[str, Any]:
    """The ``track_info`` object 17TRACK holds for the parcel after the last of ``scans``."""
    newest_first = sorted(scans, key=lambda scan: scan.at, reverse=True)
    legs_seen = sorted({scan.leg for scan in scans}, reverse=True)  # the newest leg first
    providers = []
    for leg in legs_seen:
        key, name = provider(parcel.legs[leg].carrier)
        events = [event(scan) for scan in newest_first if scan.leg == leg]
        providers.append(
            {
                "provider": {"key": key, "name": name, "alias": name, "tel": None, "homepage": None, "country": ""},
                "provider_lang": None,
                "service_type": parcel.service,
                "latest_sync_status": "Success",
                "latest_sync_time": _z(now),
                "events_hash": _hash(json.dumps(events)),
                "events": events,
            }
        )
    latest = newest_first[0] if newest_first else None
    sub_status = CODES[latest.kind][0] if latest else "NotFound_Other"
    last_mile = parcel.last_mile  # the first carrier hands 17TRACK the last-mile number up front
    local_key, local_name = provider(last_mile.carrier) if last_mile else (0, "")
    first_at = newest_first[-1].at if newest_first else now
    return {
        "shipping_info": {
            "shipper_address": _address(parcel.origin),
            "recipient_address": _address(parcel.destination),
        },
        "latest_status": {"status": _main_status(sub_status), "sub_status": sub_status, "sub_status_descr": None},
        "latest_event": event(latest) if latest else None,
        "time_metrics": {
            "days_after_order": (now - first_at).days,
            "days_of_transit": (now - first_at).days,
            "days_of_transit_done": ((latest.at if latest else now) - first_at).days,
            "days_after_last_update": (now - (latest.at if latest else now)).days,
            "estimated_delivery_date": {"source": None, "from": None, "to": None},
        },
        "milestone": [],
        "misc_info": {
            "risk_factor": 0,
            "service_type": parcel.service,
            "weight_raw": None,
            "weight_kg": None,
            "pieces": None,
            "dimensions": None,
            "customer_number": None,
            "reference_number": parcel.reference or None,
            "local_number": last_mile.tracking_number if last_mile else "",
            "local_provider": local_name,
            "local_key": local_key,
        },
        "tracking": {"providers_hash": _hash(json.dumps(providers)), "providers": providers},
    }


def _accepted(parcel: Parcel, scans: Sequence[TrueScan], *, now: datetime) -> dict[str, Any]:
    return {
        "number": parcel.first.tracking_number,
        "carrier": provider(parcel.first.carrier)[0],
        "param": None,
        "tag": parcel.reference or "",
        "track_info": track_info(parcel, scans, now=now),
    }


def webhook_body(parcel: Parcel, scans: Sequence[TrueScan], *, now: datetime) -> bytes:
    """The body 17TRACK POSTs (``TRACKING_UPDATED``) after the last scan in ``scans``."""
    body = {"event": "TRACKING_UPDATED", "data": _accepted(parcel, scans, now=now)}
    return json.dumps(body, separators=(",", ":")).encode("utf-8")


def poll_response(parcel: Parcel, scans: Sequence[TrueScan], *, now: datetime) -> bytes:
    """The ``gettrackinfo`` answer (HTTP 200) for the parcel's first number."""
    body = {"code": 0, "data": {"accepted": [_accepted(parcel, scans, now=now)], "rejected": []}}
    return json.dumps(body, separators=(",", ":")).encode("utf-8")


def not_found(tracking_number: str) -> tuple[int, bytes]:
    """17TRACK's answer for a number it has no information on: HTTP 200, the number rejected."""
    body = {
        "code": 0,
        "data": {
            "accepted": [],
            "rejected": [
                {
                    "number": tracking_number,
                    "error": {"code": NOT_FOUND_CODE, "message": "No tracking information at this time."},
                }
            ],
        },
    }
    return 200, json.dumps(body, separators=(",", ":")).encode("utf-8")
