"""Incidents: playbooks, and how an incident is built, resolved and announced.

An *incident* is what the API and the bus call an exception (docs/incidents.md): one episode of one
problem on one shipment — a customs hold, a silence, a claim. In code it is an incident, so
the word exception keeps its Python meaning (``shared.errors``).

Each type has a playbook (``shared/config/playbooks.toml``, merchant configuration): who owns
it, the next action, the customer message key, the SLA, who it escalates to, what ends it.
Every change to an incident is announced on the bus through the shipment's outbox, in the
shipment's one ``sequence``: ``Shipment Exception Raised``, ``Shipment Exception Resolved`` and,
when the playbook's SLA passes, ``Shipment Exception Escalated`` (docs/events.md documents the
details). Carrier incidents follow the timeline (``shared.logic.incidents.episodes``); silences
are planned by ``shared.logic.incidents.silence`` and raised by the silence checker; claims are
opened by the merchant API.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from functools import cache
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from shared.config import OVERRIDES_VARIABLE, PolicyError, policy
from shared.models.canonical import CanonicalEvent, IncidentType
from shared.models.detail import detail_header, detail_state
from shared.models.incidents import (
    CLAIM_TYPES,
    Incident,
    IncidentStatus,
    Owner,
    ResolvedBy,
    incident_id_for,
)
from shared.models.shipment import Shipment

EXCEPTION_RAISED = "Shipment Exception Raised"
EXCEPTION_RESOLVED = "Shipment Exception Resolved"
EXCEPTION_ESCALATED = "Shipment Exception Escalated"

# ------------------------------------------------------------------------------ playbooks


class ClearsOn(StrEnum):
    MOVEMENT = "movement"
    DELIVERY = "delivery"
    RETURN = "return"
    NEVER = "never"


class Playbook(BaseModel):
    """What to do about one exception type (``shared/config/playbooks.toml``)."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    owner: Owner
    next_action: Annotated[str, Field(min_length=1, max_length=500)]
    customer_message: Annotated[str, Field(pattern=r"^[a-z0-9_.]{1,100}$")]
    sla_hours: Annotated[float, Field(gt=0, le=24 * 90)]
    escalate_to: Owner
    clears_on: ClearsOn
    pauses_silence: bool = False


class Playbooks(BaseModel):
    model_config = ConfigDict(frozen=True, defer_build=True)

    by_type: dict[IncidentType, Playbook]

    @model_validator(mode="after")
    def _every_type(self) -> Playbooks:
        missing = sorted(t.value for t in IncidentType if t not in self.by_type)
        if missing:
            raise ValueError(f"no playbook for {', '.join(missing)}")
        return self

    def __getitem__(self, type_: IncidentType) -> Playbook:
        return self.by_type[type_]


@cache
def _playbooks(_overrides: str) -> Playbooks:
    document = policy("playbooks")
    try:
        return Playbooks.model_validate({"by_type": document})
    except ValidationError as error:
        raise PolicyError(f"playbooks: {error.errors()[0]['loc']}: {error.errors()[0]['msg']}") from None


def playbooks() -> Playbooks:
    """This deployment's playbooks (defaults merged with ``SHIPLIGHT_POLICY``), validated."""
    return _playbooks(os.environ.get(OVERRIDES_VARIABLE, ""))


# ------------------------------------------------------------------------------ building


def new_incident(
    shipment: Shipment,
    type_: IncidentType,
    episode: str,
    *,
    now: datetime,
    cause_at: datetime,
    rules: Playbooks,
    cause_event_id: str | None = None,
    cause_received_at: datetime | None = None,
    details: dict[str, Any] | None = None,
) -> Incident:
    """An open exception with its playbook, as raised ``now``."""
    book = rules[type_]
    return Incident(
        exception_id=incident_id_for(shipment.shipment_id, type_, episode),
        shipment_id=shipment.shipment_id,
        type=type_,
        episode=episode,
        status=IncidentStatus.OPEN,
        raised_at=now,
        cause_at=cause_at,
        cause_event_id=cause_event_id,
        cause_received_at=cause_received_at,
        updated_at=now,
        owner=book.owner,
        next_action=book.next_action,
        customer_message=book.customer_message,
        sla_due_at=now + timedelta(hours=book.sla_hours),
        carrier=shipment.carrier,
        tracking_number=shipment.tracking_number,
        tracking_numbers=list(shipment.tracking_keys),
        order_id=shipment.order_id,
        last_scan=shipment.last_scan,
        details=details or {},
    )


def resolved(
    exception: Incident,
    *,
    now: datetime,
    by: ResolvedBy,
    note: str | None = None,
    event: CanonicalEvent | None = None,
) -> Incident:
    return exception.model_copy(
        update={
            "status": IncidentStatus.RESOLVED,
            "resolved_at": now,
            "resolved_by": by,
            "resolution_note": note,
            "resolving_event_id": event.event_id if event else None,
            "updated_at": now,
        }
    )


def refreshed(exception: Incident, shipment: Shipment, now: datetime) -> Incident:
    """An open exception with the shipment's current header and last scan."""
    header = {
        "carrier": shipment.carrier,
        "tracking_number": shipment.tracking_number,
        "tracking_numbers": list(shipment.tracking_keys),
        "order_id": shipment.order_id,
        "last_scan": shipment.last_scan,
    }
    if all(getattr(exception, name) == value for name, value in header.items()):
        return exception
    return exception.model_copy(update={**header, "updated_at": now})


# ------------------------------------------------------------------------------ bus events


def incident_detail(shipment: Shipment, exception: Incident, sequence: int) -> dict[str, Any]:
    """The detail of ``Shipment Exception Raised | Resolved | Escalated`` (docs/events.md)."""
    body = exception.to_json_dict()
    if exception.type in CLAIM_TYPES:
        body.pop("details", None)  # a claim's details are the customer's words: not on the bus
    return {
        **detail_header(shipment, sequence),
        "exception_id": exception.exception_id,
        "type": exception.type.value,
        "exception": body,
        "state": detail_state(shipment, open_exceptions=shipment.open_exceptions),
    }


@dataclass(frozen=True)
class Announcement:
    """An exception change to publish, ordered among the commit's other news by ``at``."""

    detail_type: str
    exception: Incident
    at: tuple[Any, ...]  # sort key: the scan that caused it (see ``order_key``)


def order_key(event: CanonicalEvent | None, now: datetime, step: int) -> tuple[Any, ...]:
    """Where a change sits among a commit's announcements: after the milestone of the scan
    that caused it (``step`` 1 and 2), changes without a scan last."""
    if event is None:
        return (now, 1000, "", step)
    return (*event.sort_key, step)
