"""Output views: what routes return. Public views carry no personal data by construction:
they are built field by field from the public token index, never from a shipment record."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from shared.models.canonical import IncidentType, LocalTime, Milestone, UtcInstant

STATUS_LABELS: dict[Milestone | None, str] = {
    None: "Waiting for the first update",
    Milestone.LABEL_CREATED: "Label created",
    Milestone.PICKED_UP: "Picked up",
    Milestone.DEPARTED_ORIGIN: "Left the origin facility",
    Milestone.IN_TRANSIT: "In transit",
    Milestone.ARRIVED_HUB: "At a sorting facility",
    Milestone.CUSTOMS_STARTED: "In customs",
    Milestone.CUSTOMS_CLEARED: "Cleared customs",
    Milestone.HANDED_TO_LAST_MILE: "With the local delivery carrier",
    Milestone.OUT_FOR_DELIVERY: "Out for delivery",
    Milestone.AVAILABLE_FOR_PICKUP: "Ready for pickup",
    Milestone.DELIVERY_FAILED: "Delivery attempt failed",
    Milestone.RETURN_STARTED: "Returning to sender",
    Milestone.DELIVERED: "Delivered",
    Milestone.RETURN_DELIVERED: "Returned to sender",
}


class PublicPlace(BaseModel):
    model_config = ConfigDict(frozen=True)

    city: str | None
    region: str | None
    country: str | None


class PublicLeg(BaseModel):
    """A tracking number of the parcel: the shipper carrier's, then a last-mile carrier's."""

    model_config = ConfigDict(frozen=True)

    carrier: str
    tracking_number: str


class PublicEvent(BaseModel):
    model_config = ConfigDict(frozen=True)

    milestone: Milestone | None
    exception: IncidentType | None
    occurred_at: UtcInstant
    occurred_at_local: LocalTime | None
    location: PublicPlace | None
    description: str | None


class TrackingView(BaseModel):
    """``GET /v1/track/{token}``: the tracking page's data, newest event first."""

    model_config = ConfigDict(frozen=True)

    carrier: str
    tracking_number: str
    tracking_numbers: list[PublicLeg]
    status: Milestone | None
    status_label: str
    status_since: UtcInstant | None
    last_event_at: UtcInstant | None
    updated_at: UtcInstant
    events: Annotated[list[PublicEvent], Field(max_length=1000)]
