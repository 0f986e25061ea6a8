"""The ops queue, claims and operator resolutions (``/v1/exceptions…``, ``/v1/shipments/{id}/claims``).

Input payloads are strict (unknown fields refused, every string bounded); output views are
what a support agent needs in one answer, built field by field from the stored exception.
"""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, Strict

from shared.models.canonical import IncidentType, LocalTime, Milestone, UtcInstant
from shared.models.incidents import IncidentStatus, Owner, ResolvedBy
from shared.text import checked_text


def _text(value: str) -> str:
    """Notes and claims may span lines; no other control characters."""
    return checked_text(value, multiline=True)


def _min_words(minimum: int) -> Any:
    def check(value: str) -> str:
        if len(value) < minimum:
            raise ValueError(f"at least {minimum} characters: say what the customer reported")
        return value

    return check


class ContactChannel(StrEnum):
    """How the customer reported the missing parcel."""

    EMAIL = "email"
    PHONE = "phone"
    SMS = "sms"
    CHAT = "chat"
    WEB_FORM = "web_form"
    SOCIAL = "social"
    IN_PERSON = "in_person"


ClaimDescription = Annotated[str, Field(max_length=2000), AfterValidator(_text), AfterValidator(_min_words(10))]
Reference = Annotated[str, Field(min_length=1, max_length=100), AfterValidator(_text)]
Note = Annotated[str, Field(max_length=1000), AfterValidator(_text)]


class ClaimRequest(BaseModel):
    """The body of ``POST /v1/shipments/{id}/claims`` (a delivered-not-received claim)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    description: ClaimDescription  # what the customer reported, in their or the agent's words
    claimed_at: Annotated[AwareDatetime, Strict()]  # when the customer reported it (RFC 3339, with an offset)
    contact_channel: ContactChannel
    reference: Reference | None = None  # the merchant's own ticket or case id


class ResolveRequest(BaseModel):
    """The body of ``POST /v1/exceptions/{id}/resolve``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    note: Note  # what the operator did or found (required: the queue's audit trail)


class QueuePlace(BaseModel):
    model_config = ConfigDict(frozen=True)

    city: str | None
    region: str | None
    postal_code: str | None
    country: str | None


class LastScan(BaseModel):
    """The shipment's last event when the exception was last refreshed."""

    model_config = ConfigDict(frozen=True)

    milestone: Milestone | None
    exception: IncidentType | None
    description: str | None
    place: QueuePlace | None
    occurred_at: UtcInstant
    occurred_at_local: LocalTime | None
    carrier: str


class TrackingLeg(BaseModel):
    model_config = ConfigDict(frozen=True)

    carrier: str
    tracking_number: str


class QueueRow(BaseModel):
    """One exception as the ops queue shows it: what happened, where the parcel was last
    seen, who acts, what to do next and how long is left."""

    model_config = ConfigDict(frozen=True)

    exception_id: str
    shipment_id: str
    order_id: str | None
    carrier: str
    tracking_number: str
    tracking_numbers: list[TrackingLeg]
    type: IncidentType
    status: IncidentStatus
    owner: Owner
    escalated: bool
    escalated_at: UtcInstant | None
    escalated_from: Owner | None
    next_action: str
    customer_message_key: str
    raised_at: UtcInstant
    cause_at: UtcInstant
    sla_due_at: UtcInstant
    sla_left_seconds: int  # negative once overdue
    sla_left: str  # the same, for people: "5h 20m", "overdue 1d 3h"
    overdue: bool
    last_scan: LastScan | None
    details: dict[str, Any]  # type-specific facts: a claim's description, channel, reference
    resolved_at: UtcInstant | None
    resolved_by: ResolvedBy | None
    resolution_note: str | None


class QueuePage(BaseModel):
    """``GET /v1/exceptions``: oldest SLA first; pass ``next_cursor`` back as ``cursor``."""

    model_config = ConfigDict(frozen=True)

    as_of: UtcInstant  # the instant ``sla_left`` is counted from
    filters: dict[str, str | None]
    items: list[QueueRow]
    next_cursor: str | None


def human_duration(delta: timedelta) -> str:
    """``5h 20m``, ``2d 3h``, ``overdue 45m``: the two largest units, minutes at least."""
    seconds = int(delta.total_seconds())
    overdue = seconds < 0
    seconds = abs(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    parts = [f"{value}{unit}" for value, unit in ((days, "d"), (hours, "h"), (minutes, "m")) if value][:2]
    text = " ".join(parts) or "0m"
    return f"overdue {text}" if overdue else text
