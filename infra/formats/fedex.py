"""FedEx Track API answers and Advanced Integrated Visibility webhook bodies from true scans.

Both are the Track API's ``output.completeTrackResults[].trackResults[]`` shape (the AIV guide:
the payload "matches the Track API response"), with the whole history. As FedEx writes them:
``scanEvents`` newest first, each ``date`` the wall time of the scan's place with that place's
offset (so offsets change along the journey), codes from FedEx's status-code table with the
exception code where FedEx gives a reason, numbers as strings (``deliveryAttempts: "0"``),
an empty ``scanLocation`` (``{"streetLines": [""], "residential": false}``) for a scan without
a place, date-only ``dateAndTimes`` at midnight ``-06:00``, and a per-number ``error`` with
HTTP 200 for a number FedEx does not know.

FedEx answers for its own number only: the scans rendered are those of the parcel's FedEx
leg. A SmartPost / Ground Economy parcel (FedEx first, USPS last mile) names the USPS number
as a ``PARTNER_CARRIER_NUMBER`` package identifier.
"""

from __future__ import annotations

import json
import uuid
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from infra.formats.scan import CANONICAL, Parcel, Place, Reading, TrueScan
from shared.models.canonical import IncidentType, Milestone

M, X = Milestone, IncidentType


@dataclass(frozen=True)
class Code:
    """How FedEx writes one kind of scan."""

    event_type: str
    description: str
    location_type: str
    derived: str  # derivedStatusCode: FedEx's coarse status beside the eventType
    derived_text: str
    exception_code: str = ""
    exception_text: str = ""


# kind → FedEx scan, codes from FedEx's "Tracking Status Codes" (see mappings/fedex.toml).
CODES: dict[str, Code] = {
    "label_created": Code("OC", "Shipment information sent to FedEx", "CUSTOMER", "IN", "Initiated"),
    "picked_up": Code("PU", "Picked up", "PICKUP_LOCATION", "PU", "Picked up"),
    "departed_origin": Code("DP", "Left FedEx origin facility", "ORIGIN_FEDEX_FACILITY", "IT", "In transit"),
    "in_transit": Code("IT", "In transit", "VEHICLE", "IT", "In transit"),
    "arrived_hub": Code("AR", "Arrived at FedEx hub", "FEDEX_FACILITY", "IT", "In transit"),
    "customs_started": Code("CP", "Clearance in progress", "PORT_OF_ENTRY", "IT", "In transit"),
    "customs_hold": Code("CD", "Clearance delay", "PORT_OF_ENTRY", "DY", "Delay"),
    "customs_cleared": Code("CC", "Cleared customs", "PORT_OF_ENTRY", "IT", "In transit"),
    "handed_to_last_mile": Code("AR", "At local FedEx facility", "DESTINATION_FEDEX_FACILITY", "IT", "In transit"),
    "out_for_delivery": Code("OD", "On FedEx vehicle for delivery", "VEHICLE", "IT", "In transit"),
    "delivery_failed": Code(
        "DE",
        "Delivery exception",
        "DELIVERY_LOCATION",
        "DE",
        "Delivery exception",
        "08",
        "Recipient not available at delivery",
    ),
    "address_issue": Code(
        "DE", "Delivery exception", "DELIVERY_LOCATION", "DE", "Delivery exception", "03", "Incorrect address"
    ),
    "delayed": Code("DY", "Delay", "FEDEX_FACILITY", "DY", "Delay", "A52", "Package delayed"),
    "held": Code("SE", "Shipment exception", "FEDEX_FACILITY", "SE", "Shipment exception"),
    "damaged": Code("SE", "Shipment exception", "FEDEX_FACILITY", "SE", "Shipment exception", "", "Package damaged"),
    "lost": Code("SE", "Shipment exception", "FEDEX_FACILITY", "SE", "Shipment exception", "", "Package not located"),
    "available_for_pickup": Code(
        "HP",
        "Ready for recipient pickup",
        "DESTINATION_FEDEX_FACILITY",
        "IT",
        "In transit",
        "015A",
        "Package waiting at a FedEx location",
    ),
    "delivered": Code("DL", "Delivered", "DELIVERY_LOCATION", "DL", "Delivered"),
    # FedEx's sandbox gives RS scans the derived status DL: kept, the eventType decides.
    "return_started": Code("RS", "Returning package to shipper", "DESTINATION_FEDEX_FACILITY", "DL", "Delivered"),
    # No "returned" code: the return's delivery is a DL after the RS on the same number.
    "return_delivered": Code("DL", "Delivered", "DELIVERY_LOCATION", "DL", "Delivered"),
}
# Ground writes three-character reasons ("007" customer not available), Express two ("08").
GROUND_NOT_AVAILABLE = "007"
# The last-mile partner's own facility scan, when FedEx hands over to it.
HANDOVER: dict[str, Code] = {
    "usps": Code("AX", "At USPS facility", "NON_FEDEX_FACILITY", "IT", "In transit"),
    "canada_post": Code("AC", "At Canada Post facility", "NON_FEDEX_FACILITY", "IT", "In transit"),
}

RENDERS: dict[str, set[Reading]] = {kind: {reading} for kind, reading in CANONICAL.items()}
# FedEx reports an address problem as a failed delivery attempt (DE) whose reason is the address.
RENDERS["address_issue"] = {(M.DELIVERY_FAILED, X.ADDRESS_ISSUE)}
# FedEx publishes no damage or loss code: the scan it sends is SE "Shipment exception", a hold.
RENDERS["damaged"] = {(None, X.HELD)}
RENDERS["lost"] = {(None, X.HELD)}

_COUNTRY_NAMES = {"US": "United States", "CA": "Canada", "MX": "Mexico", "GB": "United Kingdom", "DE": "Germany"}
_NOT_FOUND = "Tracking number cannot be found; check the number and try again."


def _fedex_leg(parcel: Parcel) -> int:
    return next((i for i, leg in enumerate(parcel.legs) if leg.carrier == "fedex"), 0)


def _code(parcel: Parcel, scan: TrueScan) -> Code:
    code = CODES[scan.kind]
    if scan.kind == "handed_to_last_mile" and parcel.last_mile is not None:
        code = HANDOVER.get(parcel.last_mile.carrier, code)
    if scan.kind == "delivery_failed" and _ground(parcel):
        code = replace(code, exception_code=GROUND_NOT_AVAILABLE)
    return code


def _ground(parcel: Parcel) -> bool:
    return "ground" in parcel.service.lower() or "home" in parcel.service.lower()


def _opco(parcel: Parcel) -> str:
    if parcel.last_mile is not None and parcel.last_mile.carrier == "usps" and _fedex_leg(parcel) == 0:
        return "FXSP"
    return "FDXG" if _ground(parcel) else "FDXE"


def _address(place: Place | None, *, postal_only: bool = False) -> dict[str, Any]:
    if place is None:
        return {"streetLines": [""], "residential": False}
    address: dict[str, Any] = {"streetLines": [""]}
    if place.city and not postal_only:
        address["city"] = place.city
    if place.region and not postal_only:
        address["stateOrProvinceCode"] = place.region
    if place.postal_code:
        address["postalCode"] = place.postal_code
    address["countryCode"] = place.country
    address["residential"] = False
    address["countryName"] = _COUNTRY_NAMES.get(place.country, place.country)
    return address


def _date(scan: TrueScan) -> str:
    return scan.local().isoformat(timespec="seconds")


def _day(scan: TrueScan) -> str:
    # FedEx writes shipment dates as midnight with a fixed -06:00, whatever the place.
    return f"{scan.local().date().isoformat()}T00:00:00-06:00"


def _scan_event(parcel: Parcel, scan: TrueScan) -> dict[str, Any]:
    code = _code(parcel, scan)
    event: dict[str, Any] = {
        "date": _date(scan),
        "eventType": code.event_type,
        "eventDescription": code.description,
        "exceptionCode": code.exception_code,
        "exceptionDescription": scan.note or code.exception_text,
        # FedEx gives label-data scans the shipper's postal code only.
        "scanLocation": _address(scan.place, postal_only=scan.kind == "label_created"),
    }
    if scan.place is not None and code.location_type not in ("CUSTOMER", "VEHICLE"):
        station = zlib.crc32((scan.place.city or scan.place.country).encode("utf-8")) % 10000
        event["locationId"] = f"{station:04d}"
    event["locationType"] = code.location_type
    event["derivedStatusCode"] = code.derived
    event["derivedStatus"] = code.derived_text
    return event


def _dates(parcel: Parcel, scans: Sequence[TrueScan]) -> list[dict[str, str]]:
    moments: list[dict[str, str]] = []
    delivered = [s for s in scans if s.kind in ("delivered", "return_delivered")]
    if delivered:
        moments.append({"type": "ACTUAL_DELIVERY", "dateTime": _date(delivered[-1])})
    physical = [s for s in scans if s.kind != "label_created"]
    if physical:
        day = _day(physical[0])
        moments += [
            {"type": "ACTUAL_PICKUP", "dateTime": day},
            {"type": "SHIP", "dateTime": day},
            {"type": "ACTUAL_TENDER", "dateTime": day},
        ]
    return moments


def track_result(parcel: Parcel, scans: Sequence[TrueScan]) -> dict[str, Any]:
    """One ``trackResults[]`` entry: the FedEx leg's scans, newest first."""
    leg_index = _fedex_leg(parcel)
    leg = parcel.legs[leg_index]
    own = sorted((s for s in scans if s.leg == leg_index), key=lambda s: s.at)
    newest_first = list(reversed(own))
    opco = _opco(parcel)
    first_day = own[0].local().strftime("%y%j") if own else "00000"
    identifiers: list[dict[str, Any]] = []
    if opco == "FXSP" and parcel.last_mile is not None:
        identifiers.append(
            {
                "type": "PARTNER_CARRIER_NUMBER",
                "values": [parcel.last_mile.tracking_number],
                "trackingNumberUniqueId": "",
                "carrierCode": "",
            }
        )
    if parcel.reference:
        identifiers.append(
            {
                "type": "CUSTOMER_REFERENCE",
                "values": [parcel.reference],
                "trackingNumberUniqueId": "",
                "carrierCode": "",
            }
        )
    result: dict[str, Any] = {
        "trackingNumberInfo": {
            "trackingNumber": leg.tracking_number,
            "trackingNumberUniqueId": f"{first_day}~{leg.tracking_number}~{'FDEG' if opco == 'FDXG' else 'FX'}",
            "carrierCode": opco,
        },
        "additionalTrackingInfo": {"nickname": "", "packageIdentifiers": identifiers, "hasAssociatedShipments": False},
        "shipperInformation": {"contact": {}, "address": _address(parcel.origin)},
        "recipientInformation": {"contact": {}, "address": _address(parcel.destination)},
    }
    if newest_first:
        latest = newest_first[0]
        code = _code(parcel, latest)
        where = _address(latest.place)
        where.pop("streetLines", None)
        where.pop("postalCode", None)
        result["latestStatusDetail"] = {
            "code": code.event_type,
            "derivedCode": code.derived,
            "statusByLocale": code.derived_text,
            "description": code.description,
            "scanLocation": where,
        }
    result["dateAndTimes"] = _dates(parcel, own)
    result["packageDetails"] = {
        "physicalPackagingType": "PACKAGE",
        "sequenceNumber": "1",
        "count": "1",
        "weightAndDimensions": {"weight": [{"value": "3.4", "unit": "LB"}, {"value": "1.54", "unit": "KG"}]},
    }
    result["scanEvents"] = [_scan_event(parcel, scan) for scan in newest_first]
    result["deliveryDetails"] = {"deliveryAttempts": "0"}  # FedEx leaves it at "0" after failed attempts
    result["serviceDetail"] = {"type": _service_type(parcel, opco), "description": parcel.service}
    return result


def _service_type(parcel: Parcel, opco: str) -> str:
    if opco == "FXSP":
        return "SMART_POST"
    if opco == "FDXG":
        return "GROUND_HOME_DELIVERY" if "home" in parcel.service.lower() else "FEDEX_GROUND"
    return (
        "FEDEX_INTERNATIONAL_PRIORITY" if parcel.origin.country != parcel.destination.country else "PRIORITY_OVERNIGHT"
    )


def _answer(number: str, results: list[dict[str, Any]], now: datetime) -> bytes:
    body = {
        "transactionId": str(uuid.uuid5(uuid.NAMESPACE_URL, f"fedex:{number}:{now.isoformat()}")),
        "output": {"completeTrackResults": [{"trackingNumber": number, "trackResults": results}]},
    }
    return json.dumps(body, separators=(",", ":")).encode("utf-8")


def poll_response(parcel: Parcel, scans: Sequence[TrueScan], *, now: datetime) -> bytes:
    """The Track API's HTTP 200 answer for the parcel's FedEx number, as of ``now``."""
    number = parcel.legs[_fedex_leg(parcel)].tracking_number
    return _answer(number, [track_result(parcel, scans)], now)


def webhook_body(parcel: Parcel, scans: Sequence[TrueScan], *, now: datetime) -> bytes:
    """The AIV push after the last of ``scans``: the Track API shape, whole history."""
    return poll_response(parcel, scans, now=now)


def not_found(tracking_number: str) -> tuple[int, bytes]:
    """FedEx's answer for a number it does not know: HTTP 200, the error inside the result."""
    result = {
        "trackingNumberInfo": {"trackingNumber": tracking_number, "trackingNumberUniqueId": "", "carrierCode": ""},
        "error": {"code": "TRACKING.TRACKINGNUMBER.NOTFOUND", "message": _NOT_FOUND},
    }
    body = {
        "transactionId": str(uuid.uuid5(uuid.NAMESPACE_URL, f"fedex:not-found:{tracking_number}")),
        "output": {"completeTrackResults": [{"trackingNumber": tracking_number, "trackResults": [result]}]},
    }
    return 200, json.dumps(body, separators=(",", ":")).encode("utf-8")
