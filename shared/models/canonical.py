"""The canonical model every source is normalised into (docs/sources.md)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, PlainSerializer

from shared.clock import isoformat_z


class Milestone(StrEnum):
    """Where the parcel is in its journey (an event's ``milestone``, a shipment's ``status``)."""

    LABEL_CREATED = "label_created"
    PICKED_UP = "picked_up"
    DEPARTED_ORIGIN = "departed_origin"
    IN_TRANSIT = "in_transit"
    ARRIVED_HUB = "arrived_hub"
    CUSTOMS_STARTED = "customs_started"
    CUSTOMS_CLEARED = "customs_cleared"
    HANDED_TO_LAST_MILE = "handed_to_last_mile"
    OUT_FOR_DELIVERY = "out_for_delivery"
    AVAILABLE_FOR_PICKUP = "available_for_pickup"
    DELIVERY_FAILED = "delivery_failed"
    RETURN_STARTED = "return_started"
    DELIVERED = "delivered"
    RETURN_DELIVERED = "return_delivered"

    @property
    def rank(self) -> int:
        return RANK[self]


RANK: dict[Milestone, int] = {
    Milestone.LABEL_CREATED: 10,
    Milestone.PICKED_UP: 20,
    Milestone.DEPARTED_ORIGIN: 30,
    Milestone.IN_TRANSIT: 40,
    Milestone.ARRIVED_HUB: 40,
    Milestone.CUSTOMS_STARTED: 50,
    Milestone.CUSTOMS_CLEARED: 60,
    Milestone.HANDED_TO_LAST_MILE: 70,
    Milestone.OUT_FOR_DELIVERY: 80,
    Milestone.AVAILABLE_FOR_PICKUP: 85,
    Milestone.DELIVERY_FAILED: 85,
    Milestone.RETURN_STARTED: 90,
    Milestone.DELIVERED: 100,
    Milestone.RETURN_DELIVERED: 110,
}

# The only moves to a lower rank (docs/sources.md, "Canonical model"): a return after delivery, a re-attempt.
REOPEN_TRANSITIONS: frozenset[tuple[Milestone, Milestone]] = frozenset(
    {
        (Milestone.DELIVERED, Milestone.RETURN_STARTED),
        (Milestone.DELIVERY_FAILED, Milestone.OUT_FOR_DELIVERY),
    }
)

TERMINAL: frozenset[Milestone] = frozenset({Milestone.DELIVERED, Milestone.RETURN_DELIVERED})


class IncidentType(StrEnum):
    """Something went wrong (docs/incidents.md)."""

    NO_FIRST_SCAN = "no_first_scan"
    STALLED = "stalled"
    CUSTOMS_HOLD = "customs_hold"
    ADDRESS_ISSUE = "address_issue"
    DELIVERY_FAILED = "delivery_failed"
    HELD = "held"
    DELAYED = "delayed"
    DAMAGED = "damaged"
    LOST = "lost"
    RETURN_TO_SENDER = "return_to_sender"
    DELIVERED_NOT_RECEIVED = "delivered_not_received"


class TimeSource(StrEnum):
    """How an event's instant was known."""

    CARRIER_OFFSET = "carrier_offset"  # the carrier gave an offset or a UTC field
    LOCATION_TZ = "location_tz"  # local wall time resolved with the scan location's time zone
    ASSUMED_UTC = "assumed_utc"  # nothing better was known


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


UtcInstant = Annotated[
    AwareDatetime,
    AfterValidator(_utc),
    PlainSerializer(isoformat_z, return_type=str, when_used="json"),
]


def sortable_text(value: datetime) -> str:
    """Fixed-width UTC text (microseconds always present), so text order is time order."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# An instant used as a DynamoDB sort key (due-index times): compared as text.
SortableInstant = Annotated[
    AwareDatetime,
    AfterValidator(_utc),
    PlainSerializer(sortable_text, return_type=str, when_used="json"),
]
LocalTime = Annotated[
    AwareDatetime,
    PlainSerializer(lambda value: value.isoformat(), return_type=str, when_used="json"),
]

CarrierId = Annotated[str, Field(pattern=r"^[a-z0-9_]{2,32}$")]
TrackingNumber = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Z0-9-]+$")]


class Location(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    city: Annotated[str, Field(max_length=100)] | None = None
    region: Annotated[str, Field(max_length=100)] | None = None
    postal_code: Annotated[str, Field(max_length=20)] | None = None
    country: Annotated[str, Field(pattern=r"^[A-Z]{2}$")] | None = None

    def is_empty(self) -> bool:
        return not (self.city or self.region or self.postal_code or self.country)


class CanonicalEvent(BaseModel):
    """One carrier scan in Shiplight's own terms (docs/sources.md)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]
    carrier: CarrierId
    tracking_number: TrackingNumber
    milestone: Milestone | None
    exception: IncidentType | None
    occurred_at: UtcInstant
    occurred_at_local: LocalTime | None
    time_source: TimeSource
    location: Location | None
    description: Annotated[str, Field(max_length=500)] | None
    raw_code: Annotated[str, Field(min_length=1, max_length=100)]
    received_at: UtcInstant

    def to_json_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    @property
    def sort_key(self) -> tuple[datetime, int, str]:
        """Timeline order: by instant, then by rank (a same-minute delivery follows its
        out-for-delivery scan), then by id so any arrival order sorts the same."""
        return (self.occurred_at, self.milestone.rank if self.milestone else 0, self.event_id)


# What a scan is, coarsely enough that every source agrees: sources read the same physical
# scan as different milestones of one family (an aggregator calls the last-mile carrier's
# first scan a handover, the carrier an arrival), so the family, not the milestone, joins
# a scan's identity.
FAMILY: dict[Milestone, str] = {
    Milestone.LABEL_CREATED: "label",
    Milestone.PICKED_UP: "movement",
    Milestone.DEPARTED_ORIGIN: "movement",
    Milestone.IN_TRANSIT: "movement",
    Milestone.ARRIVED_HUB: "movement",
    Milestone.CUSTOMS_STARTED: "movement",
    Milestone.CUSTOMS_CLEARED: "movement",
    Milestone.HANDED_TO_LAST_MILE: "movement",
    Milestone.OUT_FOR_DELIVERY: "out_for_delivery",
    Milestone.AVAILABLE_FOR_PICKUP: "attempt",
    Milestone.DELIVERY_FAILED: "attempt",
    Milestone.DELIVERED: "delivered",
    Milestone.RETURN_STARTED: "return",
    Milestone.RETURN_DELIVERED: "return",
}


def compute_event_id(
    *,
    carrier: str,
    tracking_number: str,
    occurred_at: datetime,
    milestone: Milestone | None,
    exception: IncidentType | None,
    raw_code: str,
) -> str:
    """The deterministic identity of a scan: the same scan gives the same id whichever
    envelope, delivery or source carried it.

    It is built from what every source reports alike — the physical carrier, its
    tracking number, the instant to the minute, and the family of what happened
    (``FAMILY``; a problem notice by its exception) — never from the envelope, the
    description text or a source's own vocabulary. Sources differ in sub-minute
    precision, so the instant is floored to the minute. The raw code joins the key only
    for scans that map to nothing, so two different unmapped scans in the same minute
    stay apart. When two sources read one scan differently, ``reading_strength`` decides which
    reading the timeline keeps, whatever the order they arrive in.
    """
    minute = occurred_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M")
    if milestone is not None:
        what = FAMILY[milestone]
    elif exception is not None:
        what = f"notice:{exception.value}"
    else:
        what = f"raw:{raw_code}"
    key = f"v2|{carrier}|{tracking_number}|{minute}|{what}"
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]


_TIME_QUALITY = {TimeSource.CARRIER_OFFSET: 2, TimeSource.LOCATION_TZ: 1, TimeSource.ASSUMED_UTC: 0}


def reading_strength(event: CanonicalEvent, source: str) -> tuple[object, ...]:
    """How good one reading of a scan is, as a total order over readings of one ``event_id``.

    A handover wins first: only a source that sees both legs (an aggregator) can know that
    the last-mile carrier's first scan is the handover. Otherwise the physical carrier's own
    reading of its scan wins over an aggregator's retelling; then the further milestone,
    a reading that names a problem, the better-known time, a time to the second over one
    to the minute, the fuller place, the longer description; the source name, the raw
    code and finally the instant break any remaining tie, so the kept reading never
    depends on arrival order.
    """
    place = event.location
    filled = sum(1 for part in (place.city, place.region, place.postal_code, place.country) if part) if place else 0
    return (
        event.milestone is Milestone.HANDED_TO_LAST_MILE,
        source == event.carrier,
        event.milestone.rank if event.milestone else -1,
        event.exception is not None,
        event.exception.value if event.exception else "",
        _TIME_QUALITY[event.time_source],
        bool(event.occurred_at.second or event.occurred_at.microsecond),
        filled,
        len(event.description or ""),
        source,
        event.raw_code,
        event.occurred_at,
    )
