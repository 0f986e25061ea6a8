"""What every adapter shares: mapping tables, time resolution, places, event building."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from functools import cache
from pathlib import Path
from typing import Any, ParamSpec

from pydantic import ValidationError

from shared.errors import PayloadError
from shared.models.canonical import (
    CanonicalEvent,
    IncidentType,
    Location,
    Milestone,
    TimeSource,
    compute_event_id,
)
from shared.models.geo import normalize_country, zone_for
from shared.models.shipment import TrackingKey
from shared.text import without_control_characters

MAPPINGS = Path(__file__).parent / "mappings"
P = ParamSpec("P")


@dataclass(frozen=True)
class LegLink:
    """Two tracking numbers of one parcel: the shipper carrier's and the last-mile carrier's
    (17TRACK ``providers``, UPS ``alternateTrackingNumber``, AfterShip ``last_mile``…).
    Both resolve to the same shipment and feed one timeline."""

    first: TrackingKey
    last_mile: TrackingKey


@dataclass
class NormalizeResult:
    """What one payload says: its canonical events, the codes no table knew, the legs it
    links, and, for a well-formed payload that carries no tracking (an EasyPost
    ``batch.created``, a carrier's "not found" answer), why it was ignored."""

    events: list[CanonicalEvent] = field(default_factory=list)
    unmapped: list[str] = field(default_factory=list)
    ignored: str | None = None
    legs: list[LegLink] = field(default_factory=list)


# ---------------------------------------------------------------------------- mappings


@dataclass(frozen=True)
class CodeMapping:
    milestone: Milestone | None = None
    exception: IncidentType | None = None
    # "This code says nothing finer than the coarser field beside it": the caller falls back.
    defer: bool = False
    # A coarse code that a finer one must not weaken (EasyPost's "delivered" status).
    decisive: bool = False


class MappingTable:
    """A source's codes, per field, as data (``mappings/<name>.toml``).

    ``lookup`` returns ``None`` for a code the table does not know: the adapter keeps the
    raw code, maps it to nothing and reports it, so new carrier codes surface instead of
    being silently misread.
    """

    def __init__(self, name: str, fields: Mapping[str, Any]) -> None:
        self.name = name
        self._fields: dict[str, dict[str, CodeMapping]] = {}
        for field_name, codes in fields.items():
            if not isinstance(codes, Mapping):
                continue  # a scalar setting beside the tables
            table: dict[str, CodeMapping] = {}
            for code, spec in codes.items():
                unknown = set(spec) - {"milestone", "exception", "defer", "decisive", "note"}
                if unknown:
                    raise ValueError(f"{name}.{field_name}.{code}: unknown keys {sorted(unknown)}")
                table[code] = CodeMapping(
                    milestone=Milestone(spec["milestone"]) if spec.get("milestone") else None,
                    exception=IncidentType(spec["exception"]) if spec.get("exception") else None,
                    defer=bool(spec.get("defer", False)),
                    decisive=bool(spec.get("decisive", False)),
                )
            self._fields[field_name] = table

    @classmethod
    @cache
    def load(cls, name: str) -> MappingTable:
        import tomllib  # on first use: tables load once per process

        with open(MAPPINGS / f"{name}.toml", "rb") as handle:
            return cls(name, tomllib.load(handle))

    def lookup(self, field_name: str, code: str | None) -> CodeMapping | None:
        if code is None:
            return None
        return self._fields.get(field_name, {}).get(code)

    def refined(
        self, coarse_field: str, coarse: str | None, fine_field: str, fine: str | None
    ) -> tuple[CodeMapping | None, list[str]]:
        """One mapping from a coarse code and the finer one beside it (EasyPost's status and
        status_detail, AfterShip's tag and subtag, Shippo's status and substatus), and the
        codes the table does not know (``field=code``).

        The fine code decides, except where the coarse one is decisive and further along; a
        missing, unknown or deferring fine code gives way to the coarse one, and a deferring
        coarse code says nothing. A fine code that is only a problem under a coarse one that
        is not decisive is a notice without a milestone.
        """
        unmapped: list[str] = []
        by_coarse = self.lookup(coarse_field, coarse)
        if coarse and by_coarse is None:
            unmapped.append(f"{coarse_field}={coarse}")
        by_fine = self.lookup(fine_field, fine)
        if fine and by_fine is None:
            unmapped.append(f"{fine_field}={fine}")
        if by_coarse is not None and by_coarse.defer:
            by_coarse = None
        if by_fine is None or by_fine.defer:
            return by_coarse, unmapped
        decisive = by_coarse.milestone if by_coarse is not None and by_coarse.decisive else None
        milestone = by_fine.milestone
        if decisive is not None and (milestone is None or decisive.rank > milestone.rank):
            milestone = decisive
        exception = by_fine.exception or (by_coarse.exception if by_coarse else None)
        return CodeMapping(milestone=milestone, exception=exception), unmapped

    def codes(self, field_name: str) -> dict[str, CodeMapping]:
        return dict(self._fields.get(field_name, {}))


@cache
def carrier_aliases() -> dict[str, str]:
    """Aggregators' carrier names (``FedEx``, ``DHLExpress``…) → Shiplight carrier ids."""
    import tomllib

    with open(MAPPINGS / "carriers.toml", "rb") as handle:
        data = tomllib.load(handle)
    return {alias.upper(): carrier for carrier, aliases in data["carriers"].items() for alias in aliases}


_NON_ID = re.compile(r"[^a-z0-9]+")


def carrier_id(name: str | None) -> str:
    """A Shiplight carrier id for an aggregator's carrier name (unknown names are slugged)."""
    if not name:
        return "unknown"
    known = carrier_aliases().get(name.strip().upper())
    if known:
        return known
    slug = _NON_ID.sub("_", name.strip().lower()).strip("_")[:32]
    return slug if len(slug) >= 2 else "unknown"


def tracking_number(value: str | None) -> str:
    """Tracking numbers as carriers print them, without spaces, upper-cased."""
    if not value:
        raise PayloadError("tracking number is missing")
    cleaned = re.sub(r"\s+", "", value).upper()
    if not re.fullmatch(r"[A-Z0-9-]{1,64}", cleaned):
        raise PayloadError("tracking number has characters or a length no carrier uses")
    return cleaned


# ---------------------------------------------------------------------------- text, places


def clip(value: object, limit: int) -> str | None:
    """Untrusted carrier text: stripped of control characters, capped at ``limit``; empty → None."""
    if value is None:
        return None
    text = without_control_characters(str(value)).strip()
    if not text:
        return None
    return text[:limit]


def location(
    *,
    city: object = None,
    region: object = None,
    postal_code: object = None,
    country: object = None,
) -> Location | None:
    """A canonical location; ``None`` when every part is missing."""
    country_code = normalize_country(clip(country, 100))
    built = Location(
        city=clip(city, 100),
        region=clip(region, 100),
        postal_code=clip(postal_code, 20),
        country=country_code,
    )
    return None if built.is_empty() else built


# ---------------------------------------------------------------------------- time


@dataclass(frozen=True)
class ResolvedTime:
    occurred_at: datetime
    occurred_at_local: datetime | None
    time_source: TimeSource


def _local_zone(place: Location | None, at: datetime):  # type: ignore[no-untyped-def]
    if place is None:
        return None
    return zone_for(place.country, place.region, place.postal_code, at)


def in_range(resolve: Callable[P, ResolvedTime]) -> Callable[P, ResolvedTime]:
    """Report a time at the edge of the calendar (``0001-01-01…+05:00``, ``9999-12-31…``,
    which some APIs send for "no date") as a payload problem, not a crash."""

    @functools.wraps(resolve)
    def resolving(*args: P.args, **kwargs: P.kwargs) -> ResolvedTime:
        try:
            return resolve(*args, **kwargs)
        except OverflowError:
            raise PayloadError("time is outside the calendar (a placeholder date?)") from None

    return resolving


@in_range
def time_from_aware(value: datetime, place: Location | None = None) -> ResolvedTime:
    """The carrier gave an offset (or ``Z``): the instant is known.

    A bare ``Z`` from an aggregator is an instant, not a local time; the local time is then
    derived from the scan location when it determines a zone.
    """
    if value.tzinfo is None:
        raise ValueError("time_from_aware needs an aware datetime")
    instant = value.astimezone(UTC)
    local: datetime | None = value
    if value.utcoffset() == timedelta(0):
        tz = _local_zone(place, instant)
        local = instant.astimezone(tz) if tz else None
    return ResolvedTime(instant, local, TimeSource.CARRIER_OFFSET)


@in_range
def time_from_local(value: datetime, place: Location | None) -> ResolvedTime:
    """Local wall time without an offset, resolved with the scan location's time zone.

    Ambiguous wall times (the repeated hour when DST ends) take the earlier instant;
    times that do not exist (the skipped hour when DST starts) are read with the offset
    in force before the jump, which lands them just after it, as a clock set forward would.
    """
    naive = value.replace(tzinfo=None)
    tz = _local_zone(place, naive.replace(tzinfo=UTC))
    if tz is None:
        instant = naive.replace(tzinfo=UTC)
        return ResolvedTime(instant, None, TimeSource.ASSUMED_UTC)
    local = naive.replace(tzinfo=tz, fold=0)
    instant = local.astimezone(UTC)
    return ResolvedTime(instant, instant.astimezone(tz), TimeSource.LOCATION_TZ)


def time_from(value: datetime, place: Location | None) -> ResolvedTime:
    """A carrier's time as written: with an offset, the instant it names; without one, a
    wall time at the scan location."""
    return time_from_aware(value, place) if value.tzinfo else time_from_local(value, place)


_OFFSET = re.compile(r"^(?:GMT|UTC)?\s*([+-])(\d{1,2})(?:[:.]?(\d{2}))?$")


def parse_offset(value: object) -> timedelta | None:
    """A UTC offset as carriers write it: ``-05:00``, ``-7:00`` (USPS), ``-04.00`` (UPS Track
    Alert), ``+0200`` (GLS), ``+8`` (Yanwen), ``GMT-04:00``, ``Z``; ``None`` if unreadable."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    if text in ("Z", "z", "UTC", "GMT"):
        return timedelta(0)
    found = _OFFSET.match(text)
    if not found:
        return None
    sign, hours, minutes = found.groups()
    delta = timedelta(hours=int(hours), minutes=int(minutes or 0))
    if delta > timedelta(hours=14):
        return None
    return -delta if sign == "-" else delta


@in_range
def time_with_offset(local: datetime, offset: timedelta, place: Location | None = None) -> ResolvedTime:
    """Local wall time plus the offset the carrier gave separately (USPS ``GMTOffset``…)."""
    aware = local.replace(tzinfo=timezone(offset))
    return time_from_aware(aware, place)


@in_range
def time_from_utc(utc: datetime, local: datetime | None, place: Location | None) -> ResolvedTime:
    """A carrier's UTC field (UPS ``gmtDate/gmtTime``, USPS ``GMTTimestamp``, 17TRACK
    ``time_utc``), with its local twin when given: the instant comes from UTC; the local
    time keeps the carrier's wall clock, with the offset the two imply."""
    instant = (utc if utc.tzinfo else utc.replace(tzinfo=UTC)).astimezone(UTC)
    if local is not None and local.tzinfo is not None:
        return ResolvedTime(instant, local, TimeSource.CARRIER_OFFSET)
    if local is not None:
        # Local and UTC fields can disagree by seconds (USPS truncates one to the minute):
        # the implied offset is rounded to the quarter hour every real offset is a multiple of.
        implied = local - instant.replace(tzinfo=None)
        offset = timedelta(minutes=round(implied.total_seconds() / 900) * 15)
        if abs(offset) <= timedelta(hours=14):
            return ResolvedTime(instant, instant.astimezone(timezone(offset)), TimeSource.CARRIER_OFFSET)
    return time_from_aware(instant, place)


def parse_compact(date: object, time: object = None) -> datetime:
    """``YYYYMMDD`` with ``HHMMSS`` / ``HMMSS`` (UPS drops the leading zero) / ``HH:MM:SS``."""
    if not isinstance(date, str) or not re.fullmatch(r"\d{8}", date.strip()):
        raise PayloadError("date is not YYYYMMDD")
    clock = re.sub(r"\D", "", time) if isinstance(time, str) else ""
    clock = clock.zfill(6)[:6] if clock else "000000"
    try:
        return datetime.strptime(date.strip() + clock, "%Y%m%d%H%M%S")
    except ValueError:
        raise PayloadError("date and time do not form a valid instant") from None


def parse_iso(value: object) -> datetime:
    """An ISO 8601 timestamp (with or without offset, ``Z`` accepted)."""
    if not isinstance(value, str) or not value:
        raise PayloadError("timestamp is missing")
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise PayloadError("timestamp is not ISO 8601") from None


# ---------------------------------------------------------------------------- events


def build_event(
    *,
    carrier: str,
    tracking_number: str,
    mapping: CodeMapping | None,
    when: ResolvedTime,
    place: Location | None,
    description: object,
    raw_code: str,
    received_at: datetime,
) -> CanonicalEvent:
    milestone = mapping.milestone if mapping else None
    exception = mapping.exception if mapping else None
    raw = clip(raw_code, 100) or "-"
    try:
        return CanonicalEvent(
            event_id=compute_event_id(
                carrier=carrier,
                tracking_number=tracking_number,
                occurred_at=when.occurred_at,
                milestone=milestone,
                exception=exception,
                raw_code=raw,
            ),
            carrier=carrier,
            tracking_number=tracking_number,
            milestone=milestone,
            exception=exception,
            occurred_at=when.occurred_at,
            occurred_at_local=when.occurred_at_local,
            time_source=when.time_source,
            location=place,
            description=clip(description, 500),
            raw_code=raw,
            received_at=received_at,
        )
    except ValidationError as error:
        raise PayloadError(f"event does not fit the canonical model: {first_error(error)}") from None


def first_error(error: ValidationError) -> str:
    """A short, safe description of a pydantic error: where, and what (never the input)."""
    detail = error.errors(include_url=False, include_input=False)[0]
    where = ".".join(str(part) for part in detail["loc"]) or "body"
    return f"{where}: {detail['msg']}"
