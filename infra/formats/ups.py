"""UPS payloads: Track API answers (polled) and Track Alert events (pushed).

Track API: activities newest-first, local ``date``/``time`` (``YYYYMMDD``/``HHMMSS``) plus
``gmtDate``/``gmtTime`` (live responses write ``"15:44:34"``) and ``gmtOffset``
(``"-05:00"``); ``statusCode`` is zero-padded (``"005"``); "not found" is an HTTP 200 with a
``TW0001`` warning. A SurePost / Ground Saver parcel handed to USPS carries
``alternateTrackingNumber[{number, type: "USPS_PIC"}]``.

Track Alert: one event per POST (the latest scan), ``gmtOffset`` written ``"-04.00"``,
``descriptionCode`` for the status code, ``postalCode`` only once the parcel is delivered.

Only scans of the UPS leg are rendered: the last-mile carrier reports its own.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from infra.formats.scan import CANONICAL, Parcel, Place, Reading, TrueScan

# kind → (activity type, activity code, 3-digit status code, description), from UPS's own
# tables (shared/adapters/mappings/ups.toml cites them).
CODES: dict[str, tuple[str, str, str, str]] = {
    "label_created": ("M", "MP", "003", "Shipper created a label, UPS has not received the package yet."),
    "picked_up": ("I", "OR", "160", "Origin Scan"),
    "departed_origin": ("I", "EP", "005", "Export Scan"),
    "in_transit": ("I", "DP", "005", "Departed from Facility"),
    "arrived_hub": ("I", "AR", "005", "Arrived at Facility"),
    "customs_started": ("I", "IP", "012", "Import Scan"),
    "customs_hold": ("X", "5", "126", "Awaiting release by a government agency."),
    "customs_cleared": ("X", "DA", "014", "Released by the clearing agency. Now in transit."),
    "handed_to_last_mile": ("I", "DS", "005", "Destination Scan"),
    "out_for_delivery": ("I", "OT", "021", "Out For Delivery Today"),
    "delivery_failed": ("X", "48", "022", "Receiver not available. A second attempt will be made."),
    "address_issue": ("X", "AG", "050", "The address is incomplete. UPS is updating it."),
    "delayed": ("X", "7W", "052", "Severe weather has delayed delivery."),
    "held": ("X", "5T", "083", "Package held. UPS will contact the customer."),
    "damaged": ("X", "HR", "059", "The package was damaged in transit."),
    "lost": ("X", "S9", "068", "Sent to UPS lost and found."),
    "available_for_pickup": ("X", "ZP", "161", "At the UPS Access Point, awaiting customer pickup."),
    "delivered": ("D", "FS", "011", "DELIVERED"),
    "return_started": ("X", "DL", "035", "The package will be returned to the sender."),
    "return_delivered": ("X", "UA", "034", "UPS has returned the package to the sender."),
}
# A parcel UPS hands to USPS (SurePost, Ground Saver) reaches the post office instead.
POST_OFFICE = ("I", "XA", "074", "At Local Post Office")

# UPS can say every kind in its own codes: each reads back as the canonical reading.
RENDERS: dict[str, set[Reading]] = {kind: {reading} for kind, reading in CANONICAL.items()}


def _ups_leg(parcel: Parcel) -> int:
    return next((index for index, leg in enumerate(parcel.legs) if leg.carrier == "ups"), 0)


def _hands_to_usps(parcel: Parcel) -> bool:
    last = parcel.last_mile
    return last is not None and last.carrier == "usps" and _ups_leg(parcel) == 0


def _codes(parcel: Parcel, scan: TrueScan) -> tuple[str, str, str, str]:
    if scan.kind == "handed_to_last_mile" and _hands_to_usps(parcel):
        return POST_OFFICE
    return CODES[scan.kind]


def _offset(local: datetime, separator: str) -> str:
    delta = local.utcoffset() or timedelta(0)
    sign = "-" if delta < timedelta(0) else "+"
    minutes = abs(int(delta.total_seconds())) // 60
    return f"{sign}{minutes // 60:02d}{separator}{minutes % 60:02d}"


def _slic(place: Place) -> str:
    return f"{zlib.crc32((place.city or place.country).encode()) % 10000:04d}"


def _address(place: Place | None, country: str) -> dict[str, Any]:
    if place is None:  # UPS still names a country on label-only activities
        return {"address": {"countryCode": country, "country": country}}
    address = {
        key: value
        for key, value in (
            ("city", place.city),
            ("stateProvince", place.region),
            ("postalCode", place.postal_code),
            ("countryCode", place.country),
            ("country", place.country),
        )
        if value
    }
    return {"address": address, "slic": _slic(place)}


def _activity(parcel: Parcel, scan: TrueScan) -> dict[str, Any]:
    kind, code, status_code, description = _codes(parcel, scan)
    local = scan.local()
    gmt = scan.at.astimezone(UTC)
    return {
        "location": _address(scan.place, parcel.origin.country),
        "status": {"type": kind, "description": description, "code": code, "statusCode": status_code},
        "date": local.strftime("%Y%m%d"),
        "time": local.strftime("%H%M%S"),
        "gmtDate": gmt.strftime("%Y%m%d"),
        "gmtOffset": _offset(local, ":"),
        "gmtTime": gmt.strftime("%H:%M:%S"),
        "logicalScan": False,
    }


def _package_address(kind: str, place: Place) -> dict[str, Any]:
    return {"type": kind, "address": _address(place, place.country)["address"]}


def _ups_scans(parcel: Parcel, scans: Sequence[TrueScan]) -> list[TrueScan]:
    leg = _ups_leg(parcel)
    return [scan for scan in scans if scan.leg == leg]


def poll_response(parcel: Parcel, scans: Sequence[TrueScan], *, now: datetime) -> bytes:
    """The Track API's JSON answer (HTTP 200) for the UPS leg of ``parcel`` after ``scans``."""
    number = parcel.legs[_ups_leg(parcel)].tracking_number
    ours = sorted(_ups_scans(parcel, scans), key=lambda scan: scan.at, reverse=True)  # newest first
    activities = [_activity(parcel, scan) for scan in ours]
    package: dict[str, Any] = {"trackingNumber": number, "deliveryDate": [], "deliveryTime": {"type": "EOD"}}
    package["activity"] = activities
    if ours:
        _, _, status_code, description = _codes(parcel, ours[0])
        package["currentStatus"] = {"description": description, "code": status_code}
        delivered = next((scan for scan in ours if scan.kind == "delivered"), None)
        if delivered is not None:
            package["deliveryDate"] = [{"type": "DEL", "date": delivered.local().strftime("%Y%m%d")}]
            package["deliveryTime"] = {"type": "DEL", "endTime": delivered.local().strftime("%H%M%S")}
    if _hands_to_usps(parcel) and parcel.last_mile is not None:
        package["alternateTrackingNumber"] = [{"number": parcel.last_mile.tracking_number, "type": "USPS_PIC"}]
    package["packageAddress"] = [
        _package_address("ORIGIN", parcel.origin),
        _package_address("DESTINATION", parcel.destination),
    ]
    package["weight"] = {"unitOfMeasurement": "LBS", "weight": "2.40"}
    package["service"] = {"code": "003", "levelCode": "003", "description": f"UPS {parcel.service}"}
    package["packageCount"] = 1
    shipment = {
        "inquiryNumber": number,
        "shipmentType": "S",
        "pickupDate": (ours[-1].local().strftime("%Y%m%d") if ours else now.strftime("%Y%m%d")),
        "package": [package],
    }
    return json.dumps({"trackResponse": {"shipment": [shipment]}}, separators=(",", ":")).encode("utf-8")


def not_found(tracking_number: str) -> tuple[int, bytes]:
    """What UPS answers for a number it does not know: HTTP 200 with a ``TW0001`` warning."""
    body = {
        "trackResponse": {"shipment": [{"warnings": [{"code": "TW0001", "message": "Tracking Information Not Found"}]}]}
    }
    return 200, json.dumps(body, separators=(",", ":")).encode("utf-8")


def webhook_body(parcel: Parcel, scans: Sequence[TrueScan], *, now: datetime) -> bytes:
    """The Track Alert event UPS posts after the latest UPS scan in ``scans`` (one event per POST)."""
    ours = _ups_scans(parcel, scans)
    if not ours:
        raise ValueError("Track Alert only reports scans of the UPS leg")
    scan = max(ours, key=lambda candidate: candidate.at)
    kind, code, status_code, description = _codes(parcel, scan)
    local = scan.local()
    gmt = scan.at.astimezone(UTC)
    event: dict[str, Any] = {
        "trackingNumber": parcel.legs[_ups_leg(parcel)].tracking_number,
        "localActivityDate": local.strftime("%Y%m%d"),
        "localActivityTime": local.strftime("%H%M%S"),
    }
    if scan.place is not None:
        where = {"city": scan.place.city, "stateProvince": scan.place.region, "country": scan.place.country}
        if scan.kind == "delivered" and scan.place.postal_code:  # blank until the delivery event
            where["postalCode"] = scan.place.postal_code
        event["activityLocation"] = {key: value for key, value in where.items() if value}
    event["activityStatus"] = {"type": kind, "code": code, "description": description, "descriptionCode": status_code}
    event["scheduledDeliveryDate"] = (now + timedelta(days=2)).strftime("%Y%m%d")
    event["gmtActivityDate"] = gmt.strftime("%Y%m%d")
    event["gmtActivityTime"] = gmt.strftime("%H%M%S")
    event["gmtOffset"] = _offset(local, ".")
    if scan.kind == "delivered":
        event["actualDeliveryDate"] = local.strftime("%Y%m%d")
        event["actualDeliveryTime"] = local.strftime("%H%M%S")
    return json.dumps(event, separators=(",", ":")).encode("utf-8")
