"""Exceptions on a shipment (docs/incidents.md): what went wrong, who acts, by when.

An exception is one *episode* of one type on one shipment: a customs hold that began with a
carrier's hold scan and ended when the parcel moved on; a silence that began after the last
scan and was raised when its deadline passed. At most one exception exists per (shipment,
type, episode) — the store's key is built from those three — and it is ``open`` until the
condition ends (``resolved_by = auto``) or an operator closes it (``resolved_by =
operator``). Each carries its playbook's owner, next action, customer message key and SLA,
copied when it was raised, so the ops queue answers in one read.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from shared.models.canonical import (
    CanonicalEvent,
    IncidentType,
    LocalTime,
    Location,
    Milestone,
    SortableInstant,
    UtcInstant,
)


class Owner(StrEnum):
    """Who acts on an exception (a playbook's ``owner``)."""

    SUPPORT = "support"
    OPS = "ops"
    CARRIER_DESK = "carrier_desk"
    WAREHOUSE = "warehouse"


class IncidentStatus(StrEnum):
    OPEN = "open"
    RESOLVED = "resolved"


class ResolvedBy(StrEnum):
    AUTO = "auto"  # the condition ended: movement, delivery, the return completed
    OPERATOR = "operator"  # someone closed it, with a note


SILENCE_TYPES: frozenset[IncidentType] = frozenset({IncidentType.NO_FIRST_SCAN, IncidentType.STALLED})
CLAIM_TYPES: frozenset[IncidentType] = frozenset({IncidentType.DELIVERED_NOT_RECEIVED})
# Raised by a carrier event's ``exception`` field (every other type).
CARRIER_TYPES: frozenset[IncidentType] = frozenset(IncidentType) - SILENCE_TYPES - CLAIM_TYPES

EXCEPTION_ID_PATTERN = r"^exc_[0-9a-f]{24}$"
NoteText = Annotated[str, Field(max_length=1000)]


def incident_id_for(shipment_id: str, type_: IncidentType, episode: str) -> str:
    """The exception's public id: opaque, and the same for the same episode (a retried
    raise names the same exception)."""
    digest = hashlib.sha256(f"{shipment_id}|{type_.value}|{episode}".encode()).hexdigest()
    return f"exc_{digest[:24]}"


class ScanSummary(BaseModel):
    """The last scan, as a support agent needs it next to an exception."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: str
    carrier: str
    occurred_at: UtcInstant
    occurred_at_local: LocalTime | None = None
    milestone: Milestone | None = None
    exception: IncidentType | None = None
    description: Annotated[str, Field(max_length=500)] | None = None
    location: Location | None = None

    @classmethod
    def of(cls, event: CanonicalEvent) -> ScanSummary:
        return cls(
            event_id=event.event_id,
            carrier=event.carrier,
            occurred_at=event.occurred_at,
            occurred_at_local=event.occurred_at_local,
            milestone=event.milestone,
            exception=event.exception,
            description=event.description,
            location=event.location,
        )


class Incident(BaseModel):
    """One exception episode on one shipment (domain model; ``shared.dal.incidents`` stores it)."""

    # Built on first use: most processor invocations meet no exception (cold start).
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    exception_id: str
    shipment_id: str
    type: IncidentType
    # What tells this episode from another of the same type: the first scan of a carrier
    # episode (its event id), the silence's anchor instant, a claim's reference.
    episode: Annotated[str, Field(min_length=1, max_length=100)]
    status: IncidentStatus
    raised_at: UtcInstant  # when Shiplight raised it (the clock's now)
    # What caused it: the carrier's scan instant, or the silence's deadline, or the claim time.
    cause_at: UtcInstant
    cause_event_id: str | None = None
    # When that scan reached Shiplight (carrier exceptions): raised_at minus this is our own
    # delay; cause_at to it is the carrier's.
    cause_received_at: UtcInstant | None = None
    updated_at: UtcInstant
    resolved_at: UtcInstant | None = None
    resolved_by: ResolvedBy | None = None
    resolution_note: NoteText | None = None
    resolving_event_id: str | None = None  # the scan that ended it (auto)
    # The playbook, as it stood when the exception was raised.
    owner: Owner
    next_action: Annotated[str, Field(max_length=500)]
    customer_message: Annotated[str, Field(max_length=100)]  # a message key, not text
    sla_due_at: SortableInstant
    escalated_at: UtcInstant | None = None
    escalated_from: Owner | None = None  # the owner before the escalation moved it
    # The shipment's header and last scan, refreshed while the exception is open.
    carrier: str
    tracking_number: str
    tracking_numbers: list[str] = []  # every leg, "carrier:number" (the shipment's tracking_keys)
    order_id: str | None = None
    last_scan: ScanSummary | None = None
    details: dict[str, Any] = {}  # type-specific facts (a claim's details)

    @property
    def is_open(self) -> bool:
        return self.status is IncidentStatus.OPEN

    def sla_left(self, now: datetime) -> timedelta:
        """Time left to act (negative once the SLA has passed)."""
        return self.sla_due_at - now

    def to_json_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")
