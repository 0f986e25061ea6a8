"""Output views of the merchant API (``GET /v1/shipments…``): everything Shiplight knows about
a shipment, for the merchant who registered it. Unlike the public views, these carry the
registration (the customer's contact included) and each event's carrier code and source."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from shared.models.canonical import IncidentType, LocalTime, Location, Milestone, TimeSource, UtcInstant
from shared.models.ops import QueueRow
from shared.models.parties import Address, CustomerContact
from shared.models.views import PublicLeg


class MerchantEvent(BaseModel):
    model_config = ConfigDict(frozen=True)

    event_id: str
    carrier: str
    tracking_number: str
    milestone: Milestone | None
    exception: IncidentType | None
    occurred_at: UtcInstant
    occurred_at_local: LocalTime | None
    time_source: TimeSource
    location: Location | None
    description: str | None
    raw_code: str
    source: str  # who reported it first: a carrier, an aggregator, a partner
    received_at: UtcInstant


class Registration(BaseModel):
    """What the merchant registered (``null`` on a shipment only carriers have spoken of)."""

    model_config = ConfigDict(frozen=True)

    registered_at: UtcInstant
    order_id: str | None
    origin: Address | None
    destination: Address | None
    customer: CustomerContact | None
    locale: str | None
    time_zone: str | None
    promised_delivery_date: date | None
    label_created_at: UtcInstant | None


class MerchantShipmentView(BaseModel):
    """``GET /v1/shipments/{id}``: the shipment, its registration and its whole timeline
    (newest event first). ``exceptions`` lists the open exceptions with their playbook;
    ``eta`` is the estimated delivery (``null`` until estimated). Exceptions are the ops
    queue's rows (owner, next action, customer message, SLA left), soonest SLA first."""

    model_config = ConfigDict(frozen=True)

    shipment_id: str
    order_id: str | None
    carrier: str
    tracking_number: str
    tracking_numbers: list[PublicLeg]
    status: Milestone | None
    status_label: str
    status_since: UtcInstant | None
    last_event_at: UtcInstant | None
    event_count: int
    created_at: UtcInstant
    updated_at: UtcInstant
    tracking_token: str
    tracking_url: str
    registration: Registration | None
    exceptions: list[QueueRow] = Field(default_factory=list)
    eta: dict[str, Any] | None = None
    events: Annotated[list[MerchantEvent], Field(max_length=1000)]


class ShipmentPage(BaseModel):
    """``GET /v1/shipments?order_id=``: the order's shipments, oldest first, and the cursor
    of the next page (``null`` on the last)."""

    model_config = ConfigDict(frozen=True)

    order_id: str
    shipments: list[MerchantShipmentView]
    next_cursor: str | None
