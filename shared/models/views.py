"""Output views: what routes return. Public views carry no personal data by construction:
they are built field by field from the public token index, never from a shipment record.

``TrackingView`` is the documented contract of ``GET /v1/track/{token}`` (the OpenAPI
document is to be generated from it), but the public route does not import it: its cold start
is what a customer waits for, so ``shared.logic.views.tracking`` builds the same JSON with
the standard library, and a test keeps the two byte for byte equal."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from shared.labels import STATUS_LABELS as STATUS_LABELS  # one definition, importable without pydantic
from shared.models.canonical import IncidentType, LocalTime, Milestone, UtcInstant


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
