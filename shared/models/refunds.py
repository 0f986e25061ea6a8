"""Refund and claim decisions (``GET /v1/shipments/{id}/refund-decision``) and the tracking
page's "when to contact support" advice: the output models of ``shared.logic.refunds.rules``."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from shared.models.canonical import IncidentType, Milestone, UtcInstant


class Decision(StrEnum):
    ALLOW = "allow"
    DENY = "deny"
    WAIT = "wait"


class Reason(StrEnum):
    """Why: stable machine codes (merchants' systems branch on them; never rename one)."""

    RETURN_RECEIVED = "return_received"
    CARRIER_CONFIRMED_LOST = "carrier_confirmed_lost"
    CARRIER_REPORTED_DAMAGE = "carrier_reported_damage"
    RETURN_IN_TRANSIT = "return_in_transit"
    CLAIM_WINDOW_PASSED = "claim_window_passed"
    CLAIM_TOO_EARLY = "claim_too_early"
    DELIVERED = "delivered"
    CARRIER_CONFIRMED_CANCELLED = "carrier_confirmed_cancelled"
    NO_FIRST_SCAN = "no_first_scan"
    STALLED = "stalled_past_threshold"
    LATE = "late_past_promised_date"
    MOVING = "in_transit"


class EvidenceEvent(BaseModel):
    """A timeline event a decision rests on."""

    model_config = ConfigDict(frozen=True)

    event_id: str
    milestone: Milestone | None
    exception: IncidentType | None
    occurred_at: str
    description: str | None
    place: str | None
    raw_code: str
    source: str


class RefundDecision(BaseModel):
    """``GET /v1/shipments/{id}/refund-decision``."""

    model_config = ConfigDict(frozen=True)

    decision: Decision
    reason: Reason
    message: str
    earliest_at: str | None
    evidence: list[EvidenceEvent]


class SupportAdvice(BaseModel):
    """When the customer should contact support (the tracking page's line). The page renders
    ``message_key`` (``support.<reason>``) in the customer's language and time zone."""

    model_config = ConfigDict(frozen=True)

    contact_after: str | None  # None: nothing to contact support about (a return under way)
    now: bool  # the moment has come: "contact us" rather than "if … by <date>, contact us"
    reason: Reason
    message_key: str


class RefundDecisionView(RefundDecision):
    """What the route answers: the decision, for which shipment, as of when."""

    shipment_id: str
    status: Milestone | None
    as_of: UtcInstant
