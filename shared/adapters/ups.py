"""UPS: Track API responses (polled) and Track Alert webhook events (pushed).

Track API (``GET /api/track/v1/details/{inquiryNumber}``) answers
``{"trackResponse": {"shipment": [{"package": [{"activity": [...]}]}]}}``; activities are
documented newest-first, which is not trusted (order never matters here). Each activity
has its local ``date``/``time`` and, in live responses, ``gmtDate``/``gmtTime``
(``"74700"`` or ``"15:44:34"``) and ``gmtOffset`` (``"-05:00"``). "Not found" is an HTTP 200
whose shipment carries ``warnings[{code: "TW0001"}]`` and no package; errors are
``{"response": {"errors": [...]}}``. ``alternateTrackingNumber`` of type ``USPS_PIC`` names
the USPS number of a SurePost / Ground Saver / Mail Innovations parcel.

Track Alert posts one event per request: ``trackingNumber``, ``localActivityDate/Time``,
``gmtActivityDate/Time``, ``gmtOffset`` (``"-04.00"``, with a dot), ``activityLocation`` and
``activityStatus{type, code, description, descriptionCode}``.

Codes: ``mappings/ups.toml`` (type, activity code read in the table of its type, 3-digit
status code). Docs: UPS-API/api-documentation ``Tracking.yaml`` and ``UPSTrackAlert.yaml``.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.adapters.base import (
    CodeMapping,
    LegLink,
    MappingTable,
    NormalizeResult,
    ResolvedTime,
    build_event,
    clip,
    first_error,
    location,
    parse_compact,
    parse_offset,
    time_from_local,
    time_from_utc,
    time_with_offset,
    tracking_number,
)
from shared.errors import PayloadError
from shared.models.canonical import CanonicalEvent, Location, Milestone
from shared.models.shipment import TrackingKey

CARRIER = "ups"
Text = Annotated[str, Field(max_length=2000)]
Short = Annotated[str, Field(max_length=100)]
Code = Annotated[str | int, Field(union_mode="left_to_right")]


class _Input(BaseModel):
    model_config = ConfigDict(extra="ignore")


# ---------------------------------------------------------------------------- Track API


class Address(_Input):
    city: Text | None = None
    stateProvince: Text | None = None
    postalCode: Short | None = None
    country: Short | None = None
    countryCode: Short | None = None


class ActivityLocation(_Input):
    address: Address | None = None


class Status(_Input):
    type: Short | None = None
    code: Short | None = None
    description: Text | None = None
    statusCode: Code | None = None


class Activity(_Input):
    date: Short | None = None
    time: Short | None = None
    gmtDate: Short | None = None
    gmtTime: Short | None = None
    gmtOffset: Short | None = None
    location: ActivityLocation | None = None
    status: Status | None = None


class AlternateNumber(_Input):
    number: Short | None = None
    type: Short | None = None


class Package(_Input):
    trackingNumber: Short | None = None
    activity: Annotated[list[Activity], Field(max_length=1000)] = []
    alternateTrackingNumber: Annotated[list[AlternateNumber], Field(max_length=20)] = []


class ApiWarning(_Input):
    code: Short | None = None


class Shipment(_Input):
    inquiryNumber: Short | None = None
    package: Annotated[list[Package], Field(max_length=100)] = []
    warnings: Annotated[list[ApiWarning], Field(max_length=50)] = []


class TrackResponse(_Input):
    shipment: Annotated[list[Shipment], Field(max_length=100)] = []


class TrackApiResponse(_Input):
    trackResponse: TrackResponse


class ApiError(_Input):
    code: Short | None = None


class ErrorBody(_Input):
    errors: Annotated[list[ApiError], Field(max_length=50)] = []


class ErrorResponse(_Input):
    response: ErrorBody


# ---------------------------------------------------------------------------- Track Alert


class AlertLocation(_Input):
    city: Text | None = None
    stateProvince: Text | None = None
    postalCode: Short | None = None
    country: Short | None = None


class AlertStatus(_Input):
    type: Short | None = None
    code: Short | None = None
    description: Text | None = None
    descriptionCode: Code | None = None


class TrackAlertEvent(_Input):
    trackingNumber: Short
    localActivityDate: Short | None = None
    localActivityTime: Short | None = None
    gmtActivityDate: Short | None = None
    gmtActivityTime: Short | None = None
    gmtOffset: Short | None = None
    activityLocation: AlertLocation | None = None
    activityStatus: AlertStatus
    # A UPS number (1Z…/1R…) in the spec; a list of {number, type} is read like the Track API's.
    alternateTrackingNumber: Short | Annotated[list[AlternateNumber], Field(max_length=20)] | None = None


# ---------------------------------------------------------------------------- codes

# The table an activity code is read in, by activity type (the same code means different
# things under different types: I/OT is out for delivery, X/OT a clearance query).
_CODE_TABLE: dict[str, str] = {"I": "movement", "D": "delivery", "M": "manifest", "MV": "manifest", "U": "update"}
_FALLBACK_TABLE = "activity"  # UPS's general appendix: X codes, and I/D codes the first table lacks
_BARE_ORDER = ("movement", "delivery", "manifest", "update", "activity")
# What a delivery-type activity may say besides "delivered".
_DELIVERY_LIKE = frozenset({Milestone.DELIVERED, Milestone.AVAILABLE_FOR_PICKUP, Milestone.RETURN_DELIVERED})


def _table() -> MappingTable:
    return MappingTable.load("ups")


def _status_code(value: str | int | None) -> str | None:
    """``"003"`` (API), ``"3"`` (docs), ``3`` or ``011`` read by a YAML loader → ``"3"``."""
    if value is None:
        return None
    text = str(value).strip()
    if not text:
        return None
    if text.isdigit():
        return text.lstrip("0") or "0"
    return text.upper()


def _clean(value: str | None) -> str | None:
    text = value.strip().upper() if value else ""
    return text or None


def map_carrier_code(code: str) -> CodeMapping | None:
    """The mapping of a bare UPS activity code as aggregators relay it (EasyPost's
    ``carrier_code``), without its type: movement scans first (the everyday scans), then
    delivery, manifest and update codes, then UPS's exception appendix. ``None`` if unknown."""
    cleaned = _clean(code)
    if cleaned is None:
        return None
    table = _table()
    for field in _BARE_ORDER:
        found = table.lookup(field, cleaned)
        if found is not None:
            return found
    return None


def _by_code(kind: str | None, code: str | None, unmapped: list[str]) -> CodeMapping | None:
    if code is None:
        return None
    table = _table()
    if kind is None:  # a status without its type (legacy shapes): read like a relayed code
        found = map_carrier_code(code)
        if found is None:
            unmapped.append(f"code={code}")
        return found
    first = _CODE_TABLE.get(kind, _FALLBACK_TABLE if kind == "X" else None)
    if first is None:  # freight and other types have no code table of their own
        return None
    found = table.lookup(first, code)
    if found is None and first in ("movement", "delivery"):
        found = table.lookup(_FALLBACK_TABLE, code)
    if found is None:
        unmapped.append(f"{first}={code}")
    return found


def map_codes(
    kind: str | None, code: str | None, status_code: str | int | None
) -> tuple[CodeMapping | None, list[str]]:
    """One mapping from an activity's type, code and status code; unknown codes are returned.

    The code (read in the table of its type) decides, else the 3-digit status code, else
    the type. A delivery type stays a delivery (or an Access Point / return delivery);
    an update type (``U``) is information whatever its codes say.
    """
    table = _table()
    unmapped: list[str] = []
    kind = _clean(kind)
    code = _clean(code)
    number = _status_code(status_code)
    by_type = table.lookup("type", kind)
    if kind is not None and by_type is None:
        unmapped.append(f"type={kind}")
    by_code = _by_code(kind, code, unmapped)
    by_status = table.lookup("status_code", number)
    if number is not None and by_status is None:
        unmapped.append(f"status_code={number}")
    finer = next((m for m in (by_code, by_status) if m is not None and not m.defer), None)
    if by_type is not None and by_type.decisive:
        if by_type.milestone is None:
            return CodeMapping(), unmapped
        if finer is not None and finer.milestone in _DELIVERY_LIKE:
            return finer, unmapped
        return CodeMapping(milestone=by_type.milestone, exception=finer.exception if finer else None), unmapped
    if finer is not None:
        return finer, unmapped
    if by_type is not None and not by_type.defer:
        return by_type, unmapped
    return None, unmapped


def _raw_code(kind: str | None, code: str | None, status_code: str | int | None) -> str:
    parts = [str(part).strip() for part in (kind, code, status_code) if part is not None and str(part).strip()]
    return "/".join(parts) or "-"


# ---------------------------------------------------------------------------- time


def _present(value: str | None) -> str | None:
    return value if value and value.strip() else None


def _compact(date: str | None, time: str | None, field: str) -> datetime:
    try:
        return parse_compact(date, time)
    except PayloadError:
        raise PayloadError(f"{field}: not a YYYYMMDD date with an HHMMSS time") from None


def _resolve_time(
    *,
    local_date: str | None,
    local_time: str | None,
    gmt_date: str | None,
    gmt_time: str | None,
    offset: str | None,
    place: Location | None,
    field: str,
) -> ResolvedTime:
    """UTC fields first (with the local twin), then local time + offset, then local time at the place."""
    local = _compact(local_date, local_time, field) if _present(local_date) else None
    if _present(gmt_date) and _present(gmt_time):
        return time_from_utc(_compact(gmt_date, gmt_time, f"{field} (GMT)"), local, place)
    if local is None:
        raise PayloadError(f"{field} is missing")
    delta = parse_offset(offset)
    if delta is not None:
        return time_with_offset(local, delta, place)
    return time_from_local(local, place)


# ---------------------------------------------------------------------------- shapes


def _legs(ups_number: str, alternates: list[AlternateNumber]) -> list[LegLink]:
    legs: list[LegLink] = []
    for alternate in alternates:
        if (alternate.type or "").strip().upper() != "USPS_PIC" or not _present(alternate.number):
            continue  # untyped alternates are other UPS numbers, not a last-mile carrier
        legs.append(
            LegLink(
                first=TrackingKey(CARRIER, ups_number),
                last_mile=TrackingKey("usps", tracking_number(alternate.number)),
            )
        )
    return legs


def _event(
    *,
    number: str,
    status_type: str | None,
    code: str | None,
    status_code: str | int | None,
    description: str | None,
    when: ResolvedTime,
    place: Location | None,
    received_at: datetime,
    result: NormalizeResult,
) -> CanonicalEvent:
    mapping, unmapped = map_codes(status_type, code, status_code)
    result.unmapped.extend(unmapped)
    return build_event(
        carrier=CARRIER,
        tracking_number=number,
        mapping=mapping,
        when=when,
        place=place,
        description=description,
        raw_code=_raw_code(status_type, code, status_code),
        received_at=received_at,
    )


def _track_api(response: TrackApiResponse, received_at: datetime) -> NormalizeResult:
    result = NormalizeResult()
    warnings: list[str] = []
    for shipment in response.trackResponse.shipment:
        warnings.extend(clip(w.code, 20) or "-" for w in shipment.warnings if w.code)
        for package in shipment.package:
            number = tracking_number(package.trackingNumber or shipment.inquiryNumber)
            result.legs.extend(_legs(number, package.alternateTrackingNumber))
            for activity in package.activity:
                where = activity.location.address if activity.location else None
                place = (
                    location(
                        city=where.city,
                        region=where.stateProvince,
                        postal_code=where.postalCode,
                        country=where.country or where.countryCode,
                    )
                    if where
                    else None
                )
                status = activity.status or Status()
                result.events.append(
                    _event(
                        number=number,
                        status_type=status.type,
                        code=status.code,
                        status_code=status.statusCode,
                        description=status.description,
                        when=_resolve_time(
                            local_date=activity.date,
                            local_time=activity.time,
                            gmt_date=activity.gmtDate,
                            gmt_time=activity.gmtTime,
                            offset=activity.gmtOffset,
                            place=place,
                            field="activity.date",
                        ),
                        place=place,
                        received_at=received_at,
                        result=result,
                    )
                )
    if not result.events:
        if warnings:
            result.ignored = f"UPS Track API warning {', '.join(warnings[:3])}: no tracking information"
        else:
            result.ignored = "UPS Track API response has no activity"
    return result


def _track_alert(event: TrackAlertEvent, received_at: datetime) -> NormalizeResult:
    result = NormalizeResult()
    number = tracking_number(event.trackingNumber)
    if isinstance(event.alternateTrackingNumber, list):
        result.legs.extend(_legs(number, event.alternateTrackingNumber))
    where = event.activityLocation
    place = (
        location(city=where.city, region=where.stateProvince, postal_code=where.postalCode, country=where.country)
        if where
        else None
    )
    status = event.activityStatus
    result.events.append(
        _event(
            number=number,
            status_type=status.type,
            code=status.code,
            status_code=status.descriptionCode,
            description=status.description,
            when=_resolve_time(
                local_date=event.localActivityDate,
                local_time=event.localActivityTime,
                gmt_date=event.gmtActivityDate,
                gmt_time=event.gmtActivityTime,
                offset=event.gmtOffset,
                place=place,
                field="localActivityDate",
            ),
            place=place,
            received_at=received_at,
            result=result,
        )
    )
    return result


def _parse(data: Any) -> TrackApiResponse | ErrorResponse | TrackAlertEvent:
    """The payload's shape, told by its keys."""
    if not isinstance(data, dict):
        raise PayloadError("UPS payload is not a JSON object")
    model: type[TrackApiResponse] | type[ErrorResponse] | type[TrackAlertEvent]
    if "trackResponse" in data:
        model, name = TrackApiResponse, "UPS Track API response"
    elif isinstance(data.get("response"), dict) and "errors" in data["response"]:
        model, name = ErrorResponse, "UPS error response"
    elif "activityStatus" in data or "trackingNumber" in data:
        model, name = TrackAlertEvent, "UPS Track Alert event"
    else:
        raise PayloadError("UPS payload is neither a Track API response nor a Track Alert event")
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise PayloadError(f"{name}: {first_error(error)}") from None


def normalize(body: bytes, *, received_at: datetime) -> NormalizeResult:
    """Canonical events of one UPS Track API response or Track Alert event."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise PayloadError("UPS payload is not JSON") from None
    parsed = _parse(data)
    if isinstance(parsed, ErrorResponse):
        codes = ", ".join(clip(e.code, 20) or "-" for e in parsed.response.errors[:3]) or "-"
        return NormalizeResult(ignored=f"UPS error response {codes}: no tracking information")
    if isinstance(parsed, TrackApiResponse):
        return _track_api(parsed, received_at)
    return _track_alert(parsed, received_at)
