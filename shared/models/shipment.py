"""A shipment: its identity, its derived state, and the changes it owes the bus."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, NamedTuple

from pydantic import BaseModel, ConfigDict, Field

from shared import ids
from shared.models.canonical import CanonicalEvent, IncidentType, Milestone, SortableInstant, UtcInstant
from shared.models.incidents import Incident, ScanSummary
from shared.models.parties import Address, CustomerContact


class TrackingKey(NamedTuple):
    """How carriers name a parcel: (carrier id, tracking number)."""

    carrier: str
    tracking_number: str

    def __str__(self) -> str:
        return f"{self.carrier}:{self.tracking_number}"


def new_shipment_id() -> str:
    return "shp_" + ids.token_hex(12)


def new_public_token() -> str:
    """The tracking page's address: 144 random bits, URL-safe (DESIGN §4.1 asks for ≥ 128)."""
    return ids.token_urlsafe(18)


# What a registration sets on a shipment record (carried over when it is merged into another).
REGISTRATION_FIELDS = (
    "order_id",
    "registered_at",
    "label_created_at",
    "promised_delivery_date",
    "origin",
    "destination",
    "customer",
    "locale",
    "time_zone",
)


class Shipment(BaseModel):
    """The shipment record. ``status`` and the fields after it are derived from the timeline."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    shipment_id: str
    carrier: str
    tracking_number: str
    public_token: str
    created_at: UtcInstant
    updated_at: UtcInstant
    first_source: str
    order_id: str | None = None
    status: Milestone | None = None
    status_since: UtcInstant | None = None
    status_event_id: str | None = None
    last_event_at: UtcInstant | None = None
    event_count: int = 0
    sequence: int = 0  # of the last change published for this shipment
    version: int = 0  # optimistic-concurrency counter of the stored record
    # Every tracking number of the parcel, "carrier:number": the shipper carrier's first,
    # then a last-mile carrier's (DESIGN §3).
    tracking_keys: list[str] = []
    last_push_at: UtcInstant | None = None  # the last event a webhook brought
    # Polling (a sparse index: present only while the shipment should be polled).
    poll_source: str | None = None  # the source whose API the poller calls
    poll_number: str | None = None
    poll_due_at: SortableInstant | None = None
    poll_shard: str | None = None
    last_polled_at: UtcInstant | None = None
    # Digest of the last answer the poller enqueued: an identical answer carries no news and
    # is not ingested again (carriers re-send the whole history on every poll).
    poll_digest: str | None = None
    # Set when this record was found to be another leg of an existing shipment.
    merged_into: str | None = None
    merged_into_token: str | None = None
    # Registration (POST /v1/shipments): the merchant's side of the parcel, absent until
    # registered. ``customer`` is private: the ByToken index does not project it
    # (template.yaml), and no log line or bus event carries it.
    registered_at: UtcInstant | None = None
    label_created_at: UtcInstant | None = None
    promised_delivery_date: date | None = None
    origin: Address | None = None
    destination: Address | None = None
    customer: CustomerContact | None = None
    locale: str | None = None  # BCP 47
    time_zone: str | None = None  # IANA, the customer's
    # Exceptions (shared.logic.incidents.playbooks, shared.logic.incidents.silence): the types open now, the last
    # scan (derived from the timeline, not stored: ``last_scan_of``), the silence rule running
    # (its anchor: the scan or label it counts from; its deadline in business time, grace
    # included), and the checker's timer — the ByTimer index keys, present only while the
    # checker must look at this shipment.
    open_exceptions: list[str] = []
    last_scan: ScanSummary | None = None
    silence_type: IncidentType | None = None
    silence_anchor: UtcInstant | None = None
    silence_due_at: UtcInstant | None = None
    timer_due_at: SortableInstant | None = None
    outbox_pending_since: UtcInstant | None = None  # written beside the processor; the checker drains it
    # Persistence, never stored or dumped: whether the registration was read from its own item
    # (shared.dal.items). A record written before the registration moved there still holds it,
    # and the store moves it on the record's next write.
    registration_apart: bool = Field(default=False, exclude=True)

    @property
    def key(self) -> TrackingKey:
        return TrackingKey(self.carrier, self.tracking_number)

    @property
    def lane(self) -> tuple[str, str] | None:
        """(origin country, destination country), once registered."""
        if self.origin is None or self.destination is None:
            return None
        return self.origin.country, self.destination.country

    @property
    def cross_border(self) -> bool | None:
        """Whether the lane crosses a border (``None`` while the lane is unknown)."""
        lane = self.lane
        return None if lane is None else lane[0] != lane[1]

    @property
    def keys(self) -> list[TrackingKey]:
        found = [parse_key(text) for text in self.tracking_keys] or [self.key]
        return found if self.key in found else [self.key, *found]


def last_scan_of(events: Iterable[StoredEvent]) -> ScanSummary | None:
    """The last scan of a timeline, in scan order (``CanonicalEvent.sort_key``): what the
    record's ``last_scan`` says. Not stored on the record; derived from the partition."""
    last = max((stored.event for stored in events), key=lambda event: event.sort_key, default=None)
    return ScanSummary.of(last) if last is not None else None


def parse_key(text: str) -> TrackingKey:
    carrier, _, number = text.partition(":")
    return TrackingKey(carrier, number)


class OutboxEntry(BaseModel):
    """A change committed with the shipment and not yet confirmed published to the bus."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    shipment_id: str
    sequence: int
    detail_type: str
    detail: dict[str, Any]
    created_at: UtcInstant


@dataclass(frozen=True)
class StoredEvent:
    """A canonical event as stored: with the source that first reported it."""

    event: CanonicalEvent
    source: str


@dataclass
class Partition:
    """Everything stored under one shipment, read in one Query."""

    shipment: Shipment
    events: list[StoredEvent] = field(default_factory=list)
    outbox: list[OutboxEntry] = field(default_factory=list)
    incidents: list[Incident] = field(default_factory=list)


@dataclass(frozen=True)
class QuarantineRecord:
    """A verified payload that no adapter could turn into events, kept with its reason."""

    source: str
    received_at: datetime
    delivery_id: str
    content_sha256: str
    archive_bucket: str
    archive_key: str
    reason: str
