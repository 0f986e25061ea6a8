"""17TRACK (API v2.x): ``TRACKING_UPDATED`` pushes and ``gettrackinfo`` answers.

Push: ``{"event": "TRACKING_UPDATED", "data": {"number", "carrier", "track_info"}}``;
``TRACKING_STOPPED`` (tracking ended) carries no scan and is ignored. Pull: the v2
``gettrackinfo`` answer ``{"code": 0, "data": {"accepted": [...], "rejected": [...]}}``, the
same ``track_info`` per accepted number; a rejected number (not registered, no information
yet) is not an error, it is nothing to store.

Scans live in ``track_info.tracking.providers[].events`` (newest-first) and map on
``sub_status``, falling back to ``stage``; never on the description. The physical carrier of
an event is its provider (``provider.name``/``alias``), not the numeric ``carrier`` key,
which 17TRACK sometimes gets wrong. Several providers are legs of one parcel: the last-mile
provider (``misc_info.local_key``/``local_provider``, else the one that started last) scans
under ``misc_info.local_number`` when 17TRACK knows it, and its first movement scan is the
handover to it (17TRACK has no sub-status for that). Times: ``time_utc`` is the instant and
``time_iso`` its local twin with the offset; ``time_raw`` (``{date, time, timezone}``) is
the fallback; legacy answers without any zone are wall time at the event's place.
Docs: https://api.17track.net/en/doc?version=v2.4
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.adapters.base import (
    CodeMapping,
    LegLink,
    MappingTable,
    NormalizeResult,
    ResolvedTime,
    build_event,
    carrier_aliases,
    carrier_id,
    clip,
    first_error,
    location,
    parse_iso,
    parse_offset,
    time_from,
    time_from_utc,
    time_with_offset,
    tracking_number,
)
from shared.errors import PayloadError
from shared.models.canonical import Location, Milestone
from shared.models.geo import normalize_country
from shared.models.shipment import TrackingKey

Text = Annotated[str, Field(max_length=2000)]
Code = Annotated[str, Field(max_length=100)]
Stamp = Annotated[str, Field(max_length=64)]

# Movement scans: the last-mile provider's first one is the handover to it.
_MOVEMENT = frozenset({Milestone.PICKED_UP, Milestone.DEPARTED_ORIGIN, Milestone.IN_TRANSIT, Milestone.ARRIVED_HUB})


class _Input(BaseModel):
    model_config = ConfigDict(extra="ignore")


_Model = TypeVar("_Model", bound=_Input)


class Address(_Input):
    country: Text | None = None
    state: Text | None = None
    city: Text | None = None
    postal_code: Text | None = None


class TimeRaw(_Input):
    date: Stamp | None = None
    time: Stamp | None = None
    timezone: Stamp | None = None


class ProviderEvent(_Input):
    time_iso: Stamp | None = None
    time_utc: Stamp | None = None
    time_raw: TimeRaw | Stamp | None = None
    description: Text | None = None
    location: Text | None = None
    stage: Code | None = None
    sub_status: Code | None = None
    address: Address | None = None


class ProviderInfo(_Input):
    key: int | None = None
    name: Text | None = None
    alias: Text | None = None


class Provider(_Input):
    provider: ProviderInfo | None = None
    events: Annotated[list[ProviderEvent], Field(max_length=2000)] | None = None


class Tracking(_Input):
    providers: Annotated[list[Provider], Field(max_length=20)] | None = None


class MiscInfo(_Input):
    local_number: Annotated[str, Field(max_length=100)] | None = None
    local_provider: Text | None = None
    local_key: int | None = None


class LatestStatus(_Input):
    status: Code | None = None
    sub_status: Code | None = None


class TrackInfo(_Input):
    latest_status: LatestStatus | None = None
    misc_info: MiscInfo | None = None
    tracking: Tracking | None = None


class TrackData(_Input):
    number: Annotated[str, Field(max_length=100)]
    carrier: int | None = None
    track_info: TrackInfo | None = None


class Push(_Input):
    event: Code
    data: Any = None


class RejectionError(_Input):
    code: int | None = None
    message: Text | None = None


class Rejected(_Input):
    number: Annotated[str, Field(max_length=100)] | None = None
    error: RejectionError | None = None


class PullData(_Input):
    accepted: Annotated[list[TrackData], Field(max_length=200)] | None = None
    rejected: Annotated[list[Rejected], Field(max_length=200)] | None = None


class Pull(_Input):
    code: int
    data: PullData | None = None


@dataclass
class _Draft:
    """A provider event read, before it becomes an event (the handover is decided across them)."""

    provider: int
    key: TrackingKey
    mapping: CodeMapping | None
    when: ResolvedTime
    place: Location | None
    description: str | None
    raw_code: str


def _table() -> MappingTable:
    return MappingTable.load("seventeentrack")


def map_codes(sub_status: str | None, stage: str | None) -> tuple[CodeMapping | None, list[str]]:
    """One mapping from an event's ``sub_status`` and ``stage``; unknown codes are returned.

    The sub-status decides; a deferring one (``InTransit_Other``, ``Exception_Other``) or an
    unknown one gives way to the stage when there is one. Neither → no mapping.
    """
    table = _table()
    unmapped: list[str] = []
    by_sub_status = table.lookup("sub_status", sub_status)
    if sub_status and by_sub_status is None:
        unmapped.append(f"sub_status={sub_status}")
    by_stage = table.lookup("stage", stage)
    if stage and by_stage is None:
        unmapped.append(f"stage={stage}")
    if by_sub_status is not None and not by_sub_status.defer:
        return by_sub_status, unmapped
    return by_stage or by_sub_status, unmapped


def provider_carrier(info: ProviderInfo | None) -> str:
    """The Shiplight carrier id of a 17TRACK provider, by its name or alias."""
    if info is None:
        return "unknown"
    aliases = carrier_aliases()
    for name in (info.name, info.alias):
        if name and name.strip().upper() in aliases:
            return aliases[name.strip().upper()]
    return carrier_id(info.name or info.alias)


def _place(event: ProviderEvent) -> Location | None:
    """The structured address; else the ``location`` line read as ``city[, region], country``."""
    where = event.address
    place = (
        location(city=where.city, region=where.state, postal_code=where.postal_code, country=where.country)
        if where
        else None
    )
    if place is not None or not event.location:
        return place
    parts = [part.strip() for part in event.location.split(",") if part.strip()]
    if len(parts) >= 2 and normalize_country(parts[-1]):
        region = parts[-2] if len(parts) >= 3 else None
        city = ", ".join(parts[:-2] if len(parts) >= 3 else parts[:-1])
        return location(city=city, region=region, country=parts[-1])
    return location(city=event.location)


def _optional_number(value: str) -> str | None:
    """A second tracking number is extra: one no carrier could print is left out, not fatal."""
    try:
        return tracking_number(value)
    except PayloadError:
        return None


def _when(event: ProviderEvent, place: Location | None) -> ResolvedTime:
    local = parse_iso(event.time_iso) if event.time_iso else None
    if event.time_utc:
        utc = parse_iso(event.time_utc)
        return time_from_utc(utc if utc.tzinfo else utc.replace(tzinfo=UTC), local, place)
    if local is not None:
        return time_from(local, place)
    raw = event.time_raw
    if isinstance(raw, TimeRaw) and raw.date:
        wall = parse_iso(f"{raw.date.strip()}T{(raw.time or '00:00:00').strip()}")
        offset = parse_offset(raw.timezone)
        if wall.tzinfo is None and offset is not None:
            return time_with_offset(wall, offset, place)
        return time_from(wall, place)
    if isinstance(raw, str) and raw.strip():
        wall = parse_iso(raw)
        return time_from(wall, place)
    raise PayloadError("17TRACK event has no time_utc, time_iso or time_raw")


def _last_mile(providers: list[Provider], drafts: list[_Draft], misc: MiscInfo | None) -> int | None:
    """The index of the provider that took the parcel over, when there are several."""
    if len(providers) < 2:
        return None
    if misc is not None and misc.local_key:
        for index, provider in enumerate(providers):
            if provider.provider is not None and provider.provider.key == misc.local_key:
                return index
    if misc is not None and misc.local_provider and misc.local_provider.strip():
        wanted = misc.local_provider.strip().upper()
        for index, provider in enumerate(providers):
            info = provider.provider
            if info is not None and wanted in {(info.name or "").strip().upper(), (info.alias or "").strip().upper()}:
                return index
    starts: dict[int, datetime] = {}
    for draft in drafts:
        current = starts.get(draft.provider)
        if current is None or draft.when.occurred_at < current:
            starts[draft.provider] = draft.when.occurred_at
    if len(starts) < 2:
        return None
    return max(starts, key=lambda index: starts[index])


def _mark_handover(drafts: list[_Draft], provider: int) -> None:
    """The last-mile provider's first movement scan reads ``handed_to_last_mile``."""
    for draft in sorted((d for d in drafts if d.provider == provider), key=lambda d: d.when.occurred_at):
        milestone = draft.mapping.milestone if draft.mapping else None
        if milestone is None or milestone is Milestone.LABEL_CREATED:
            continue  # a pre-advice or a notice is not the parcel changing hands
        if milestone in _MOVEMENT:
            exception = draft.mapping.exception if draft.mapping else None
            draft.mapping = CodeMapping(milestone=Milestone.HANDED_TO_LAST_MILE, exception=exception)
        return


def _read_track(track: TrackData, result: NormalizeResult, received_at: datetime) -> int:
    """Add one number's events and legs to ``result``; returns how many events it had."""
    info = track.track_info
    if info is None or info.tracking is None:
        return 0
    providers = info.tracking.providers or []
    if not any(provider.events for provider in providers):
        return 0
    number = tracking_number(track.number)
    misc = info.misc_info
    local_number = _optional_number(misc.local_number) if misc and misc.local_number else None
    carriers = [provider_carrier(provider.provider) for provider in providers]
    drafts: list[_Draft] = []
    for index, provider in enumerate(providers):
        for event in provider.events or []:
            mapping, unmapped = map_codes(event.sub_status, event.stage)
            result.unmapped.extend(unmapped)
            place = _place(event)
            drafts.append(
                _Draft(
                    provider=index,
                    key=TrackingKey(carriers[index], number),
                    mapping=mapping,
                    when=_when(event, place),
                    place=place,
                    description=event.description,
                    raw_code=f"{event.sub_status or '-'}/{event.stage or '-'}",
                )
            )
    last = _last_mile(providers, drafts, misc)
    # The first leg: the provider (other than the last mile) that scanned first, else any other.
    earliest = min((d for d in drafts if d.provider != last), key=lambda d: d.when.occurred_at, default=None)
    others = [index for index in range(len(providers)) if index != last]
    first = TrackingKey(carriers[earliest.provider if earliest else (others or [0])[0]], number)
    keys = {first}
    if last is not None:
        _mark_handover(drafts, last)
        last_key = TrackingKey(carriers[last], local_number or number)
        keys.add(last_key)
        for draft in drafts:
            if draft.provider == last:
                draft.key = last_key
    elif local_number is not None and misc is not None and misc.local_provider:
        keys.add(TrackingKey(carrier_id(misc.local_provider), local_number))  # its scans are not in yet
    keys.update(draft.key for draft in drafts)
    result.legs.extend(LegLink(first=first, last_mile=key) for key in sorted(keys - {first}))
    result.events.extend(
        build_event(
            carrier=draft.key.carrier,
            tracking_number=draft.key.tracking_number,
            mapping=draft.mapping,
            when=draft.when,
            place=draft.place,
            description=draft.description,
            raw_code=draft.raw_code,
            received_at=received_at,
        )
        for draft in drafts
    )
    return len(drafts)


def _validated(model: type[_Model], data: Any, what: str) -> _Model:
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise PayloadError(f"17TRACK {what}: {first_error(error)}") from None


def normalize(body: bytes, *, received_at: datetime) -> NormalizeResult:
    """Canonical events of one 17TRACK push or ``gettrackinfo`` answer."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise PayloadError("17TRACK payload is not JSON") from None
    if not isinstance(data, dict):
        raise PayloadError("17TRACK payload is not a JSON object")
    result = NormalizeResult()
    if "event" in data:
        push = _validated(Push, data, "push")
        if push.event != "TRACKING_UPDATED":
            return NormalizeResult(ignored=f"17TRACK event {clip(push.event, 40)!r} carries no scan")
        track = _validated(TrackData, push.data, "push data")
        if not _read_track(track, result, received_at):
            result.ignored = "17TRACK has no events for this number yet"
        return result
    if "code" not in data:
        raise PayloadError("17TRACK payload is neither a push (event) nor an API answer (code)")
    pull = _validated(Pull, data, "gettrackinfo answer")
    if pull.code != 0:
        return NormalizeResult(ignored=f"17TRACK answered with error code {pull.code}")
    answer = pull.data or PullData()
    found = sum(_read_track(track, result, received_at) for track in answer.accepted or [])
    if not found:
        rejected = answer.rejected or []
        codes = sorted({str(item.error.code) for item in rejected if item.error and item.error.code})
        result.ignored = (
            f"17TRACK rejected the number(s): error {', '.join(codes)}"
            if codes
            else "17TRACK has no events for the number(s) yet"
        )
    return result
