"""FedEx: Track API answers (polled) and Advanced Integrated Visibility webhooks (pushed).

Both carry ``{"output": {"completeTrackResults": [{"trackingNumber", "trackResults": [...]}]}}``;
each track result lists its ``scanEvents`` newest first. Docs: developer.fedex.com Track API
(``POST /track/v1/trackingnumbers``) and the AIV webhook guide ("the payload matches the Track
API response"); research/carrier_formats.md §3.

Codes (``mappings/fedex.toml``): a scan maps on its ``eventType``, refined by its
``exceptionCode`` where that names a reason (``DE/03`` an address problem, ``DE/A47`` a
redirect to a FedEx location), and by its ``locationType`` only where the code alone cannot
place it: ``EA`` is "Enroute to Airport" but "Export Approved" at a customs broker or port of
entry; ``DP`` at the origin facility is the departure from origin; ``AR``/``AF`` at the
destination facility is the arrival at the delivering station. ``derivedStatusCode`` is read
only for an unknown ``eventType`` (which is still reported). A ``DL`` after an ``RS`` on the
same parcel is the return reaching the shipper (``return_delivered``).

Times: ``date`` normally carries an offset, which may change inside one shipment. Some scans
come without one (``"2024-08-15T00:00:00"``): local wall time, resolved with the scan
location's zone. A date-only scan (midnight without an offset) says "that day": read as
midnight it would sort before the day's earlier scans (a pickup before the label). Its
instant is therefore the earliest one the record allows: midnight, or, when a scan of an
earlier milestone has a real time later that same local day, that scan's instant (the
timeline then orders the two by milestone). The date FedEx gave is never changed.

Reused numbers: FedEx recycles tracking numbers, and one number may return several
``trackResults`` told apart by ``trackingNumberInfo.trackingNumberUniqueId``. Only the
current parcel is read: the result whose latest scan is the most recent (results without
scans compare by their ``dateAndTimes`` SHIP / ACTUAL_TENDER date). The others are skipped,
and named in ``ignored`` only when nothing was emitted at all.

Answers without tracking: a per-number ``trackResults[].error``
(``TRACKING.TRACKINGNUMBER.NOTFOUND`` with HTTP 200) and a top-level ``errors`` list are
ignored, with the reason. Events come out oldest first.

Last mile: a FedEx SmartPost / Ground Economy parcel (``carrierCode`` ``FXSP``) is delivered
by USPS; a ``PARTNER_CARRIER_NUMBER`` package identifier on such a parcel is the USPS number
(``result.legs``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time
from functools import cache
from typing import Annotated

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
    time_from,
    tracking_number,
)
from shared.errors import PayloadError
from shared.models.canonical import Location, Milestone
from shared.models.shipment import TrackingKey

CARRIER = "fedex"

Text = Annotated[str, Field(max_length=2000)]
Code = Annotated[str, Field(max_length=60)]
Stamp = Annotated[str, Field(max_length=64)]
Number = Annotated[str, Field(max_length=100)]


class _Input(BaseModel):
    model_config = ConfigDict(extra="ignore")


class ScanLocation(_Input):
    city: Text | None = None
    stateOrProvinceCode: Text | None = None
    postalCode: Text | None = None
    countryCode: Text | None = None
    countryName: Text | None = None


class ScanEvent(_Input):
    date: Stamp
    eventType: Annotated[str, Field(min_length=1, max_length=60)]
    eventDescription: Text | None = None
    exceptionCode: Code | None = None
    exceptionDescription: Text | None = None
    scanLocation: ScanLocation | None = None
    locationType: Code | None = None
    derivedStatusCode: Code | None = None


class TrackingNumberInfo(_Input):
    trackingNumber: Number | None = None
    trackingNumberUniqueId: Text | None = None
    carrierCode: Code | None = None


class ApiError(_Input):
    code: Text | None = None
    message: Text | None = None


class DateAndTime(_Input):
    type: Code | None = None
    dateTime: Stamp | None = None


class PackageIdentifier(_Input):
    type: Code | None = None
    values: Annotated[list[Number], Field(max_length=50)] | None = None
    # The OpenAPI spells it ``value`` (a list, and a string in its own example).
    value: Annotated[list[Number], Field(max_length=50)] | Number | None = None
    carrierCode: Code | None = None


class AdditionalTrackingInfo(_Input):
    packageIdentifiers: Annotated[list[PackageIdentifier], Field(max_length=100)] | None = None


class TrackResult(_Input):
    trackingNumberInfo: TrackingNumberInfo | None = None
    additionalTrackingInfo: AdditionalTrackingInfo | None = None
    error: ApiError | None = None
    scanEvents: Annotated[list[ScanEvent], Field(max_length=2000)] | None = None
    dateAndTimes: Annotated[list[DateAndTime], Field(max_length=100)] | None = None


class CompleteTrackResult(_Input):
    trackingNumber: Number | None = None
    trackResults: Annotated[list[TrackResult], Field(max_length=100)] | None = None


class Output(_Input):
    completeTrackResults: Annotated[list[CompleteTrackResult], Field(max_length=100)] | None = None


class TrackResponse(_Input):
    output: Output | None = None
    errors: Annotated[list[ApiError], Field(max_length=100)] | None = None


# ---------------------------------------------------------------------------- codes

# Problem scans whose exceptionCode is the reason: an unknown reason there is reported.
# On other scans (DL "left at front door", AF "tendered at FedEx Office") it is detail.
_REASONED = frozenset({"DE", "SE", "DY", "DD", "PD", "CD"})


def _table() -> MappingTable:
    return MappingTable.load("fedex")


@cache
def _event_types_by_upper() -> dict[str, str]:
    return {code.upper(): code for code in _table().codes("eventType")}


def _event_type(code: str) -> tuple[str, CodeMapping] | None:
    """The table's spelling of an eventType and its mapping (``Ow`` is mixed case in FedEx's
    table; an upper-cased ``OW`` is the same code)."""
    table = _table()
    found = table.lookup("eventType", code)
    if found is not None:
        return code, found
    spelled = _event_types_by_upper().get(code.upper())
    if spelled is None:
        return None
    mapping = table.lookup("eventType", spelled)
    return (spelled, mapping) if mapping is not None else None


def map_carrier_code(code: str) -> CodeMapping | None:
    """The mapping of a bare FedEx ``eventType`` as aggregators relay it (EasyPost's
    ``carrier_code``): the code's own reading, without the exception code or location type
    only FedEx's own payload carries (``EA`` reads as "Enroute to Airport"). ``None`` for a
    code FedEx's table does not have."""
    found = _event_type(code.strip()) if code and code.strip() else None
    return found[1] if found else None


def map_scan(
    event_type: str,
    exception_code: str | None = None,
    location_type: str | None = None,
    derived: str | None = None,
) -> tuple[CodeMapping | None, list[str]]:
    """One scan's mapping, and the codes no table knew (``"<field>=<code>"``)."""
    table = _table()
    unmapped: list[str] = []
    found = _event_type(event_type)
    if found is None:
        unmapped.append(f"eventType={event_type}")
        by_derived = table.lookup("derivedStatusCode", derived)
        if derived and by_derived is None:
            unmapped.append(f"derivedStatusCode={derived}")
        return by_derived, unmapped
    code, by_type = found
    if exception_code:
        reason = f"{code}/{exception_code}"
        by_reason = table.lookup("exception", reason)
        if by_reason is not None and not by_reason.defer:
            return by_reason, unmapped
        if by_reason is None and code in _REASONED:
            unmapped.append(f"exceptionCode={reason}")
    if location_type:
        by_place = table.lookup("eventType_at_location", f"{code}@{location_type}")
        if by_place is not None:
            return by_place, unmapped
    return by_type, unmapped


def _reason(scan: ScanEvent) -> str | None:
    return scan.exceptionCode.strip() or None if scan.exceptionCode else None


def _raw_code(scan: ScanEvent) -> str:
    reason = _reason(scan)
    return f"{scan.eventType}/{reason}" if reason else scan.eventType


# ---------------------------------------------------------------------------- time, places


def _parse_date(value: str | None, field: str) -> datetime:
    text = (value or "").strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise PayloadError(f"FedEx {field} is not an ISO 8601 date") from None


def _place(where: ScanLocation | None) -> Location | None:
    if where is None:
        return None
    return location(
        city=where.city,
        region=where.stateOrProvinceCode,
        postal_code=where.postalCode,
        country=where.countryCode or where.countryName,
    )


def _resolve(parsed: datetime, place: Location | None) -> ResolvedTime:
    return time_from(parsed, place)


def _date_only(parsed: datetime) -> bool:
    return parsed.tzinfo is None and parsed.time() == time(0)


@dataclass
class _Scan:
    source: ScanEvent
    place: Location | None
    when: ResolvedTime
    date_only: bool
    mapping: CodeMapping | None = None


def _read_times(result: TrackResult) -> list[_Scan]:
    scans: list[_Scan] = []
    for scan in result.scanEvents or ():
        place = _place(scan.scanLocation)
        parsed = _parse_date(scan.date, "scanEvents[].date")
        scans.append(_Scan(scan, place, _resolve(parsed, place), _date_only(parsed)))
    return scans


def _settle_date_only(scans: list[_Scan]) -> None:
    """A date-only scan never sorts before a same-day scan of an earlier milestone that has a
    real time: it moves to the latest such instant (the earliest moment the record allows)."""
    for scan in scans:
        rank = scan.mapping.milestone.rank if scan.mapping and scan.mapping.milestone else 0
        if not scan.date_only or rank == 0:
            continue
        zone = scan.when.occurred_at_local.tzinfo if scan.when.occurred_at_local else UTC
        day = (scan.when.occurred_at_local or scan.when.occurred_at).date()
        floor = scan.when.occurred_at
        for other in scans:
            milestone = other.mapping.milestone if other.mapping else None
            if other.date_only or milestone is None or milestone.rank >= rank:
                continue
            instant = other.when.occurred_at
            if instant > floor and instant.astimezone(zone).date() == day:
                floor = instant
        if floor != scan.when.occurred_at:
            local = floor.astimezone(zone) if scan.when.occurred_at_local else None
            scan.when = ResolvedTime(floor, local, scan.when.time_source)


def _mark_return_delivered(scans: list[_Scan]) -> None:
    """FedEx has no "returned" code: a delivery after an RS is the return reaching the shipper."""
    returning = False
    for scan in scans:
        milestone = scan.mapping.milestone if scan.mapping else None
        if milestone is Milestone.RETURN_STARTED:
            returning = True
        elif milestone is Milestone.DELIVERED and returning and scan.mapping is not None:
            scan.mapping = CodeMapping(milestone=Milestone.RETURN_DELIVERED, exception=scan.mapping.exception)


# ---------------------------------------------------------------------------- results


def _recency(result: TrackResult) -> datetime | None:
    """How recent a track result is: its latest scan, else its ship / tender date."""
    instants = [
        _resolve(_parse_date(scan.date, "scanEvents[].date"), _place(scan.scanLocation)).occurred_at
        for scan in result.scanEvents or ()
    ]
    if not instants:
        for moment in result.dateAndTimes or ():
            if moment.type in ("SHIP", "ACTUAL_TENDER") and moment.dateTime:
                parsed = _parse_date(moment.dateTime, "dateAndTimes[].dateTime")
                instants.append(parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC))
    return max(instants) if instants else None


def _current(results: list[TrackResult]) -> TrackResult:
    if len(results) == 1:
        return results[0]
    floor = datetime.min.replace(tzinfo=UTC)
    return max(results, key=lambda result: _recency(result) or floor)


def _legs(result: TrackResult, number: str) -> list[LegLink]:
    info = result.trackingNumberInfo
    if info is None or info.carrierCode != "FXSP" or result.additionalTrackingInfo is None:
        return []
    legs: list[LegLink] = []
    for identifier in result.additionalTrackingInfo.packageIdentifiers or ():
        if identifier.type != "PARTNER_CARRIER_NUMBER":
            continue
        given = identifier.values or identifier.value or []
        for value in [given] if isinstance(given, str) else given[:1]:
            try:
                partner = tracking_number(value)
            except PayloadError:
                continue  # an unreadable partner number costs the link, not the scans
            if partner != number:
                legs.append(LegLink(TrackingKey(CARRIER, number), TrackingKey("usps", partner)))
    return legs


def _error_reason(number: str | None, results: list[TrackResult]) -> str:
    codes = sorted({clip(r.error.code, 60) or "error" for r in results if r.error is not None})
    label = clip(number, 40) or "a tracking number"
    return f"FedEx {label}: {', '.join(codes) if codes else 'no track results'}"


def _read_number(entry: CompleteTrackResult, into: NormalizeResult, received_at: datetime) -> str | None:
    """The current parcel's events for one tracking number, or why there are none."""
    results = entry.trackResults or []
    candidates = [r for r in results if r.error is None or r.scanEvents]
    if not candidates:
        return _error_reason(entry.trackingNumber, results)
    current = _current(candidates)
    info = current.trackingNumberInfo
    number = tracking_number((info.trackingNumber if info else None) or entry.trackingNumber)
    scans = _read_times(current)
    if not scans:
        skipped = len(candidates) - 1
        also = f"; {skipped} older result(s) for the reused number skipped" if skipped else ""
        return f"FedEx {number}: the current parcel has no scan events{also}"
    for scan in scans:
        source = scan.source
        scan.mapping, unmapped = map_scan(
            source.eventType.strip(), _reason(source), source.locationType, source.derivedStatusCode
        )
        into.unmapped.extend(unmapped)
    _settle_date_only(scans)
    scans.sort(key=lambda s: (s.when.occurred_at, s.mapping.milestone.rank if s.mapping and s.mapping.milestone else 0))
    _mark_return_delivered(scans)
    for scan in scans:
        into.events.append(
            build_event(
                carrier=CARRIER,
                tracking_number=number,
                mapping=scan.mapping,
                when=scan.when,
                place=scan.place,
                description=scan.source.eventDescription or scan.source.exceptionDescription,
                raw_code=_raw_code(scan.source),
                received_at=received_at,
            )
        )
    into.legs.extend(_legs(current, number))
    return None


def _parse(body: bytes) -> TrackResponse:
    try:
        return TrackResponse.model_validate_json(body)
    except ValidationError as error:
        if error.errors(include_url=False, include_input=False)[0]["type"] == "json_invalid":
            raise PayloadError("FedEx payload is not JSON") from None
        raise PayloadError(f"FedEx track response: {first_error(error)}") from None


def normalize(body: bytes, *, received_at: datetime) -> NormalizeResult:
    """Canonical events of one FedEx Track API answer or AIV webhook."""
    response = _parse(body)
    entries = response.output.completeTrackResults if response.output else None
    if entries is None:
        if response.errors:
            codes = sorted({clip(error.code, 60) or "error" for error in response.errors})
            return NormalizeResult(ignored=f"FedEx answered with errors: {', '.join(codes)}")
        if response.output is None:
            raise PayloadError("FedEx track response has neither output nor errors")
        return NormalizeResult(ignored="FedEx answer carries no completeTrackResults (not a tracking answer)")
    result = NormalizeResult()
    reasons = [reason for entry in entries if (reason := _read_number(entry, result, received_at))]
    if not result.events:
        result.ignored = "; ".join(reasons) or "FedEx answer lists no tracking numbers"
    return result
