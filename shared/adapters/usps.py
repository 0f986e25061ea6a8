"""USPS Tracking API v3: ``GET /tracking/v3/tracking/{number}?expand=DETAIL`` answers (polled).

USPS documents no verifiable webhook signature, so this source is polled only. Events come
newest-first and are mapped on ``eventCode`` alone (``mappings/usps.toml``); ``eventType`` is
free text that USPS rewords, kept (without its HTML) as the description.

Time: ``GMTTimestamp`` is UTC with seconds, ``eventTimestamp`` the local wall time truncated
to the minute, ``GMTOffset`` the offset between them (``-05:00``, or ``-7:00`` in the spec).
Real answers carry ``GMTTimestamp`` with the *local* date when the UTC date differs (local
23:28 CST on the 21st arrives as ``…21T05:28:33Z``, not the 22nd): the UTC field is read
together with the local time and offset, and moved by the whole day they prove it is off.
Some events (``GX``, ``MA``, ``80``) carry no GMT fields at all; they fall back to the local time
with the offset, then with the scan place's zone.

Places: domestic scans have ``eventCountry: null``; a scan in a US state or territory code is
in the US, so the country is set (which also lets the state resolve a time zone). ``eventCity``
may be a facility name with no state, and ``TL`` events have no location at all.

Not-found, summary-only and error answers are well-formed but carry no tracking: ``ignored``.
Docs: USPS "Package Tracking and Notification" OpenAPI 3.2.6 (developers.usps.com).
"""

from __future__ import annotations

import html
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.adapters.base import (
    CodeMapping,
    MappingTable,
    NormalizeResult,
    ResolvedTime,
    build_event,
    first_error,
    in_range,
    location,
    parse_iso,
    parse_offset,
    time_from_local,
    time_from_utc,
    time_with_offset,
    tracking_number,
)
from shared.errors import PayloadError
from shared.models.canonical import Location, Milestone

CARRIER = "usps"

Text = Annotated[str, Field(max_length=2000)]
Short = Annotated[str, Field(max_length=100)]

# USPS state codes (the API's own `state` pattern) that name a place in the United States:
# the states, DC and the territories. APO/FPO/DPO codes (AA, AE, AP) are abroad and the freely
# associated states (FM, MH, PW) are countries of their own, so they get no "US".
# fmt: off
US_STATES = frozenset({
    "AL", "AK", "AZ", "AR", "CA", "CO", "CT", "DE", "DC", "FL", "GA", "HI", "ID", "IL", "IN", "IA", "KS", "KY",
    "LA", "ME", "MD", "MA", "MI", "MN", "MS", "MO", "MT", "NE", "NV", "NH", "NJ", "NM", "NY", "NC", "ND", "OH",
    "OK", "OR", "PA", "RI", "SC", "SD", "TN", "TX", "UT", "VT", "VA", "WA", "WV", "WI", "WY",
    "PR", "VI", "GU", "AS", "MP",
})
# fmt: on
FREELY_ASSOCIATED = frozenset({"FM", "MH", "PW"})  # USPS state code = ISO country code

_DAY = timedelta(days=1)
_SECONDS_APART = timedelta(minutes=2)  # local is truncated to the minute, GMT has seconds


class _Input(BaseModel):
    model_config = ConfigDict(extra="ignore")


class TrackingEvent(_Input):
    eventType: Text | None = None
    eventTimestamp: Short | None = None
    GMTTimestamp: Short | None = None
    GMTOffset: Short | None = None
    eventCountry: Short | None = None
    eventCity: Short | None = None
    eventState: Short | None = None
    eventZIP: Short | None = None
    eventCode: Annotated[str, Field(min_length=1, max_length=10)]


class TrackingDetails(_Input):
    trackingNumber: Short
    trackingEvents: Annotated[list[TrackingEvent], Field(max_length=500)] | None = None
    eventSummaries: Annotated[list[Text], Field(max_length=500)] | None = None


def _table() -> MappingTable:
    return MappingTable.load("usps")


def map_carrier_code(code: str) -> CodeMapping | None:
    """The mapping of one USPS scan event code (``"03"``, ``"OF"``…) as aggregators relay it
    (EasyPost ``carrier_code``); ``None`` when USPS's table does not know it."""
    return _table().lookup("eventCode", code.strip().upper())


_SUPERSCRIPT = re.compile(r"<sup>.*?</sup>", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<[^<>]{0,100}>")


def plain_text(value: str | None) -> str | None:
    """USPS text without its HTML: superscript marks (``<SUP>&#153;</SUP>``) dropped, other tags
    removed, entities decoded."""
    if value is None:
        return None
    return html.unescape(_TAG.sub("", _SUPERSCRIPT.sub("", value)))


def _blank(value: str | None) -> str | None:
    return value.strip() if value and value.strip() else None


def _place(event: TrackingEvent) -> Location | None:
    country = _blank(event.eventCountry)
    state = _blank(event.eventState)
    if country is None and state is not None:
        code = state.upper()
        # Domestic scans say no country: a USPS scan in a US state is in the US.
        if code in US_STATES:
            country = "US"
        elif code in FREELY_ASSOCIATED:
            country = code
    return location(city=event.eventCity, region=state, postal_code=event.eventZIP, country=country)


def _parse(value: str | None, field: str) -> datetime | None:
    if not _blank(value):
        return None
    try:
        return parse_iso(value)
    except PayloadError:
        raise PayloadError(f"USPS trackingEvents.{field} is not an ISO 8601 timestamp") from None


def _local_wall_time(event: TrackingEvent, *, required: bool) -> datetime | None:
    """``eventTimestamp`` as the wall clock it is (some answers append a ``Z`` to it)."""
    try:
        value = _parse(event.eventTimestamp, "eventTimestamp")
    except PayloadError:
        if required:
            raise
        return None  # the GMT field alone still gives the instant
    return value.replace(tzinfo=None) if value else None


@in_range
def resolve_time(event: TrackingEvent, place: Location | None) -> ResolvedTime:
    """The instant of one USPS scan from its GMT, local and offset fields (see module doc)."""
    gmt = _parse(event.GMTTimestamp, "GMTTimestamp")
    local = _local_wall_time(event, required=gmt is None)
    offset = parse_offset(event.GMTOffset)
    if gmt is not None:
        gmt = gmt.replace(tzinfo=UTC) if gmt.tzinfo is None else gmt.astimezone(UTC)
        if local is None:
            return time_from_utc(gmt, None, place)
        if offset is not None:
            expected = (local - offset).replace(tzinfo=UTC)
            for days in (0, 1, -1):
                candidate = gmt + days * _DAY
                if abs(candidate - expected) < _SECONDS_APART:
                    return time_from_utc(candidate, local, place)
            # The GMT field contradicts the local time and offset beyond a date slip: trust the pair.
            return time_with_offset(local, offset, place)
        for days in (0, 1, -1):
            candidate = gmt + days * _DAY
            if abs(local - candidate.replace(tzinfo=None)) <= timedelta(hours=14):
                return time_from_utc(candidate, local, place)
        return time_from_utc(gmt, None, place)
    if local is None:
        raise PayloadError("USPS trackingEvents item has neither eventTimestamp nor GMTTimestamp")
    if offset is not None:
        return time_with_offset(local, offset, place)
    return time_from_local(local, place)


def _answer_of(data: Any) -> TrackingDetails | str:
    """The tracking details in an answer, or the reason it carries none."""
    if not isinstance(data, dict):
        raise PayloadError("USPS answer is not a JSON object")
    problem = data.get("error")
    if problem is not None and "trackingNumber" not in data:
        code = problem.get("code") if isinstance(problem, dict) else problem
        safe = re.sub(r"[^A-Za-z0-9_]", "", str(code))[:40] if code is not None else ""
        return f"USPS error answer {safe or '(no code)'}: no tracking"
    try:
        details = TrackingDetails.model_validate(data)
    except ValidationError as error:
        raise PayloadError(f"USPS tracking answer: {first_error(error)}") from None
    if details.trackingEvents is None and details.eventSummaries is not None:
        return "USPS summary answer has no event fields (poll with expand=DETAIL)"
    if not details.trackingEvents:
        return "USPS answer carries no tracking events"
    return details


def normalize(body: bytes, *, received_at: datetime) -> NormalizeResult:
    """Canonical events of one USPS Tracking v3 answer (newest-first events, any order works)."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise PayloadError("USPS answer is not JSON") from None
    answer = _answer_of(data)
    if isinstance(answer, str):
        return NormalizeResult(ignored=answer)
    number = tracking_number(answer.trackingNumber)
    table = _table()
    result = NormalizeResult()
    scans: list[tuple[TrackingEvent, Location | None, ResolvedTime, CodeMapping | None, str]] = []
    for event in answer.trackingEvents or ():
        code = event.eventCode.strip()
        mapping = table.lookup("eventCode", code.upper())
        if mapping is None:
            result.unmapped.append(f"eventCode={code}")
        place = _place(event)
        scans.append((event, place, resolve_time(event, place), mapping, code))
    # A delivery after the return started (same number, same history) is the return's delivery.
    returned_at = min(
        (
            when.occurred_at
            for *_, when, mapping, _ in scans
            if mapping and mapping.milestone is Milestone.RETURN_STARTED
        ),
        default=None,
    )
    for event, place, when, mapping, code in scans:
        if (
            returned_at is not None
            and mapping is not None
            and mapping.milestone is Milestone.DELIVERED
            and when.occurred_at > returned_at
        ):
            mapping = CodeMapping(milestone=Milestone.RETURN_DELIVERED)
        result.events.append(
            build_event(
                carrier=CARRIER,
                tracking_number=number,
                mapping=mapping,
                when=when,
                place=place,
                description=plain_text(event.eventType),
                raw_code=code,
                received_at=received_at,
            )
        )
    return result
