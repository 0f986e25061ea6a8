"""AfterShip ``tracking_update`` webhook bodies rendered from true scans.

AfterShip re-sends the whole Tracking with every update: checkpoints oldest-first, each
tagged with its ``tag``/``subtag`` and the slug of the carrier that scanned it. Checkpoint
times are the wall time of the scan's place: carriers that print local time without an
offset (UPS, USPS) come through without one, the others with theirs. A parcel with a
last-mile carrier carries a ``last_mile`` object naming that carrier's number.
"""

from __future__ import annotations

import csv
import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from infra.formats.scan import CANONICAL, Parcel, Place, Reading, TrueScan
from shared.models import geo
from shared.models.canonical import Milestone

M = Milestone

# kind → (tag, subtag, subtag_message), from AfterShip's "Delivery Sub-statuses".
CODES: dict[str, tuple[str, str, str]] = {
    "label_created": ("InfoReceived", "InfoReceived_001", "Info Received"),
    "picked_up": ("InTransit", "InTransit_002", "Acceptance scan"),
    "departed_origin": ("InTransit", "InTransit_007", "Departure Scan"),
    "in_transit": ("InTransit", "InTransit_001", "In Transit"),
    "arrived_hub": ("InTransit", "InTransit_003", "Arrival scan"),
    "customs_started": ("InTransit", "InTransit_006", "Customs clearance started"),
    "customs_hold": ("Exception", "Exception_004", "Delayed (Customs clearance)"),
    "customs_cleared": ("InTransit", "InTransit_005", "Customs clearance completed"),
    "handed_to_last_mile": ("InTransit", "InTransit_003", "Arrival scan"),
    "out_for_delivery": ("OutForDelivery", "OutForDelivery_001", "Out for Delivery"),
    "delivery_failed": ("AttemptFail", "AttemptFail_001", "Failed Attempt"),
    "address_issue": ("Exception", "Exception_007", "Incorrect Address"),
    "delayed": ("Exception", "Exception_005", "Delayed (External factors)"),
    "held": ("Exception", "Exception_006", "Held for payment"),
    "damaged": ("Exception", "Exception_012", "Shipment damaged"),
    "lost": ("Exception", "Exception_013", "Shipment lost"),
    "available_for_pickup": ("AvailableForPickup", "AvailableForPickup_001", "Available for pickup"),
    "delivered": ("Delivered", "Delivered_001", "Delivered"),
    "return_started": ("Exception", "Exception_010", "Returning to sender"),
    "return_delivered": ("Exception", "Exception_011", "Returned to sender"),
}

_HANDOVER: Reading = (M.HANDED_TO_LAST_MILE, None)

RENDERS: dict[str, set[Reading]] = {kind: {reading} for kind, reading in CANONICAL.items()}
# AfterShip's only departure sub-status (InTransit_007) is a departure from any facility: the
# adapter can tell the origin's only when the acceptance scan is in the same history.
RENDERS["departed_origin"] = {(M.DEPARTED_ORIGIN, None), (M.IN_TRANSIT, None)}
# No sub-status says "handed over": the last-mile carrier's first movement scan (here an
# arrival scan under its own slug) is read as the handover; reported by the first carrier it
# stays an arrival. Any movement kind that is the last-mile carrier's first scan reads so too.
RENDERS["handed_to_last_mile"] = {_HANDOVER, (M.ARRIVED_HUB, None)}
for _kind in ("picked_up", "departed_origin", "in_transit", "arrived_hub"):
    RENDERS[_kind].add(_HANDOVER)

# Shiplight carrier id → AfterShip courier slug (AfterShip "Supported Couriers").
SLUGS: dict[str, str] = {
    "ups": "ups",
    "fedex": "fedex",
    "usps": "usps",
    "dhl": "dhl",
    "canada_post": "canada-post",
    "royal_mail": "royal-mail",
    "ontrac": "ontrac",
    "lasership": "lasership",
    "china_post": "china-post",
    "yunexpress": "yunexpress",
    "fourpx": "4px",
    "cainiao": "cainiao",
    "yanwen": "yanwen",
}
# Carriers whose own feeds print local wall time without an offset (research §8 Q1).
WALL_TIME_ONLY = frozenset({"ups", "usps"})


@cache
def _alpha3() -> dict[str, str]:
    with open(Path(geo.__file__).parent / "countries.csv", encoding="utf-8", newline="") as handle:
        rows = csv.reader(line for line in handle if not line.startswith("#"))
        next(rows)
        return {alpha2: alpha3 for alpha2, alpha3, _names in rows}


def slug(carrier: str) -> str:
    """The AfterShip slug of a Shiplight carrier id."""
    return SLUGS.get(carrier, carrier.replace("_", "-"))


def _checkpoint_time(scan: TrueScan, carrier: str) -> str:
    local = scan.local()
    if carrier in WALL_TIME_ONLY or scan.place is None:
        return local.strftime("%Y-%m-%dT%H:%M:%S")
    return local.isoformat(timespec="seconds")


def _place_fields(place: Place | None) -> dict[str, Any]:
    if place is None:
        return {
            "location": None,
            "city": None,
            "state": None,
            "postal_code": None,
            "country_region": None,
            "country_region_name": None,
        }
    alpha3 = _alpha3().get(place.country, place.country)
    return {
        "location": ", ".join(part for part in (place.city, place.region, alpha3) if part),
        "city": place.city,
        "state": place.region,
        "postal_code": place.postal_code,
        "country_region": alpha3,
        "country_region_name": None,
    }


def _z(instant: datetime) -> str:
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def checkpoint(parcel: Parcel, scan: TrueScan) -> dict[str, Any]:
    """One AfterShip checkpoint for a true scan."""
    carrier = parcel.legs[scan.leg].carrier
    tag, subtag, message = CODES[scan.kind]
    return {
        "created_at": _z(scan.at),
        "slug": slug(carrier),
        "checkpoint_time": _checkpoint_time(scan, carrier),
        **_place_fields(scan.place),
        "coordinate": {"latitude": None, "longitude": None},
        "message": scan.note or message,
        "tag": tag,
        "subtag": subtag,
        "subtag_message": message,
        "raw_tag": None,
        "events": [],
    }


def tracking(parcel: Parcel, scans: Sequence[TrueScan], *, now: datetime) -> dict[str, Any]:
    """The Tracking object (``msg``) AfterShip sends after the last of ``scans``."""
    ordered = sorted(scans, key=lambda scan: scan.at)
    latest = ordered[-1] if ordered else None
    tag, subtag, message = CODES[latest.kind] if latest else ("Pending", "Pending_001", "Pending")
    last_mile = parcel.last_mile
    number = parcel.first.tracking_number
    return {
        "id": parcel.reference or uuid.uuid5(uuid.NAMESPACE_URL, f"aftership:{number}").hex,
        "tracking_number": number,
        "slug": slug(parcel.first.carrier),
        "active": tag not in ("Delivered", "Expired"),
        "created_at": _z(ordered[0].at) if ordered else _z(now),
        "updated_at": _z(now),
        "tag": tag,
        "subtag": subtag,
        "subtag_message": message,
        "title": number,
        "shipment_type": parcel.service,
        "origin_country_region": _alpha3().get(parcel.origin.country),
        "destination_country_region": _alpha3().get(parcel.destination.country),
        "last_mile": (
            {
                "tracking_number": last_mile.tracking_number,
                "slug": slug(last_mile.carrier),
                "transit_time": None,
                "courier_tracking_link": None,
                "courier_redirect_link": None,
                "source": "carrier",
            }
            if last_mile
            else None
        ),
        "checkpoints": [checkpoint(parcel, scan) for scan in ordered],
    }


def webhook_body(parcel: Parcel, scans: Sequence[TrueScan], *, now: datetime) -> bytes:
    """The body AfterShip POSTs (``tracking_update``) after the last scan in ``scans``."""
    number = parcel.first.tracking_number
    body = {
        "event": "tracking_update",
        "event_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"aftership:{number}:{now.isoformat()}")),
        "is_tracking_first_tag": False,
        "msg": tracking(parcel, scans, now=now),
        "ts": int(now.timestamp()),
    }
    return json.dumps(body, separators=(",", ":")).encode("utf-8")
