"""Silence rules and the silence checker: ``no_first_scan`` and ``stalled`` (docs/incidents.md).

**Deadlines.** Each commit computes, from the timeline, which silence rule runs on the
shipment and its deadline (:func:`plan_silence`): no carrier scan yet → ``no_first_scan``,
counted from the label; scanned → ``stalled``, counted from the last event, with the
domestic, cross-border or customs threshold. Thresholds are business hours of the country
where the parcel is (``shared.calendar``), counted from the carrier's scan instant,
plus one poll cycle of grace (``shared/config/silence.toml`` documents every default). The
deadline is stored on the record (``silence_due_at``); no rule runs on a delivered or
returned parcel, while a silence exception is already open, or while an exception whose
playbook pauses silences (lost, returning) is open.

**The timer.** The record's ``timer_due_at`` is its entry in the sparse, sharded, keys-only
``ByTimer`` index: when the checker must look at it next. It is lazy — a commit moves it only
when the deadline comes *earlier* than the timer (or the timer is missing), never later, so
the scans of a moving parcel do not rewrite the index; when an early timer fires, the checker
re-reads the record and re-arms it at the real deadline. An open exception's SLA is a timer in
the same index (its escalation).

**The checker** that reads the timers lives in ``shared.logic.timers.checker`` (the processor never
imports it).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from enum import StrEnum
from functools import cache
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared import calendar
from shared.config import OVERRIDES_VARIABLE, PolicyError, policy
from shared.logic.incidents.episodes import is_scan
from shared.logic.incidents.playbooks import Playbooks, playbooks
from shared.logic.polling.cadence import DEFAULT_POLICY, PollPolicy, poll_interval
from shared.models.canonical import TERMINAL, CanonicalEvent, IncidentType, Milestone, sortable_text
from shared.models.geo import zone_for
from shared.models.incidents import SILENCE_TYPES, Incident
from shared.models.shipment import Shipment

# ------------------------------------------------------------------------------ configuration

Hours = Annotated[float, Field(gt=0, le=24 * 60)]


class _FirstScan(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)
    hours: Hours


class _Stalled(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)
    domestic_hours: Hours
    cross_border_hours: Hours
    customs_hours: Hours


class _Grace(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)
    push_grace_minutes: Annotated[float, Field(ge=0, le=24 * 60)]


class SilenceConfig(BaseModel):
    """``shared/config/silence.toml``, validated."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    no_first_scan: _FirstScan
    stalled: _Stalled
    grace: _Grace


@cache
def _config(_overrides: str) -> SilenceConfig:
    try:
        return SilenceConfig.model_validate(policy("silence"))
    except ValidationError as error:
        first = error.errors()[0]
        raise PolicyError(f"silence: {'.'.join(map(str, first['loc']))}: {first['msg']}") from None


def silence_config() -> SilenceConfig:
    """This deployment's silence rules (defaults merged with ``SHIPLIGHT_POLICY``)."""
    return _config(os.environ.get(OVERRIDES_VARIABLE, ""))


class Rule(StrEnum):
    """Which threshold a silence counts to (the refund rules' ``Lane`` uses the same values)."""

    LABEL = "label"
    DOMESTIC = "domestic"
    CROSS_BORDER = "cross_border"
    CUSTOMS = "customs"


def threshold_hours(rule: Rule | str, config: SilenceConfig) -> float:
    value = Rule(rule)
    if value is Rule.LABEL:
        return config.no_first_scan.hours
    return {
        Rule.DOMESTIC: config.stalled.domestic_hours,
        Rule.CROSS_BORDER: config.stalled.cross_border_hours,
        Rule.CUSTOMS: config.stalled.customs_hours,
    }[value]


def local_zone(event: CanonicalEvent | None, country: str | None, at: datetime) -> tzinfo:
    """The time zone business days are counted in: the scan's own offset, else its place's
    zone, else the country's single zone, else UTC."""
    if event is not None and event.occurred_at_local is not None and event.occurred_at_local.tzinfo is not None:
        return event.occurred_at_local.tzinfo
    place = event.location if event is not None else None
    if place is not None and place.country:
        found = zone_for(place.country, place.region, place.postal_code, at)
        if found is not None:
            return found
    if country:
        found = zone_for(country, None, None, at)
        if found is not None:
            return found
    return UTC


def silence_deadline(
    anchor: datetime,
    rule: Rule | str,
    *,
    country: str | None,
    tz: tzinfo | None = None,
    grace: timedelta = timedelta(0),
    config: SilenceConfig | None = None,
) -> datetime:
    """When a silence that began at ``anchor`` becomes an exception: the rule's threshold in
    business hours of ``country`` (days in ``tz``), plus ``grace``."""
    hours = threshold_hours(rule, config or silence_config())
    return calendar.add_business_hours(anchor, hours, country, tz) + grace


def grace_for(
    shipment: Shipment, now: datetime, config: SilenceConfig, poll_policy: PollPolicy = DEFAULT_POLICY
) -> timedelta:
    """One poll cycle for a shipment Shiplight polls (a scan made before the deadline may
    reach us only at the next poll); ``push_grace_minutes`` when webhooks are flowing or the
    shipment is not polled."""
    push = timedelta(minutes=config.grace.push_grace_minutes)
    pushing = shipment.last_push_at is not None and now - shipment.last_push_at <= poll_policy.push_flowing_window
    if pushing or shipment.poll_source is None:
        return push
    interval = poll_interval(shipment.status, poll_policy)
    return max(push, interval * (1 + poll_policy.jitter)) if interval else push


# ------------------------------------------------------------------------------ the plan


@dataclass(frozen=True)
class SilencePlan:
    """The silence rule running on a shipment."""

    type: IncidentType
    rule: Rule
    anchor: datetime  # the instant it counts from (a scan's, or the label's)
    country: str | None
    due_at: datetime  # threshold in business time + grace

    @property
    def episode(self) -> str:
        return sortable_text(self.anchor)


def _country(event: CanonicalEvent | None) -> str | None:
    return event.location.country if event is not None and event.location is not None else None


def _cross_border(shipment: Shipment, ordered: Sequence[CanonicalEvent]) -> bool:
    registered = shipment.cross_border
    if registered is not None:
        return registered
    countries = {c for c in (_country(e) for e in ordered) if c}
    customs = any(e.milestone in (Milestone.CUSTOMS_STARTED, Milestone.CUSTOMS_CLEARED) for e in ordered)
    return len(countries) > 1 or customs


def plan_silence(
    shipment: Shipment,
    ordered: Sequence[CanonicalEvent],
    exceptions: Sequence[Incident],
    *,
    now: datetime,
    config: SilenceConfig,
    rules: Playbooks,
) -> SilencePlan | None:
    """The silence rule that runs on ``shipment`` after this commit, or ``None``.

    ``ordered`` is the timeline in scan order, ``exceptions`` every stored exception (open
    ones after this commit's changes).
    """
    if shipment.merged_into or (shipment.status is not None and shipment.status in TERMINAL):
        return None
    open_types = {e.type for e in exceptions if e.is_open}
    if open_types & SILENCE_TYPES or any(rules[t].pauses_silence for t in open_types):
        return None
    registered_origin = shipment.origin.country if shipment.origin else None
    registered_destination = shipment.destination.country if shipment.destination else None
    if not any(is_scan(e) for e in ordered):
        label = next((e for e in ordered if e.milestone is Milestone.LABEL_CREATED), None)
        anchor = shipment.label_created_at or (label.occurred_at if label else shipment.created_at)
        country = registered_origin or _country(label) or next((c for c in map(_country, ordered) if c), None)
        plan_type, rule, anchor_event = IncidentType.NO_FIRST_SCAN, Rule.LABEL, label
    else:
        last = ordered[-1]
        anchor = last.occurred_at
        country = _country(last) or next((c for c in map(_country, reversed(ordered)) if c), None)
        country = country or registered_destination or registered_origin
        if shipment.status is Milestone.CUSTOMS_STARTED:
            rule = Rule.CUSTOMS
        elif _cross_border(shipment, ordered):
            rule = Rule.CROSS_BORDER
        else:
            rule = Rule.DOMESTIC
        plan_type, anchor_event = IncidentType.STALLED, last
    episode = sortable_text(anchor)
    if any(e.type is plan_type and e.episode == episode for e in exceptions):
        return None  # this silence was raised already (and closed by an operator): once per episode
    due = silence_deadline(
        anchor,
        rule,
        country=country,
        tz=local_zone(anchor_event, country, anchor),
        grace=grace_for(shipment, now, config),
        config=config,
    )
    return SilencePlan(plan_type, rule, anchor, country, due)


def next_timer(shipment: Shipment, silence_due: datetime | None, now: datetime) -> datetime | None:
    """The record's timer after a commit: lazy — kept when it is not later than the new
    deadline (the checker re-arms it when it fires), moved only earlier, dropped when nothing
    is left to watch."""
    current = shipment.timer_due_at
    wanted: list[datetime] = []
    if silence_due is not None:
        wanted.append(current if current is not None and current <= silence_due else silence_due)
    if shipment.outbox_pending_since is not None:
        wanted.append(current or now)
    return min(wanted) if wanted else None


def silence_fields(
    shipment: Shipment,
    ordered: Sequence[CanonicalEvent],
    exceptions: Sequence[Incident],
    *,
    now: datetime,
) -> dict[str, Any]:
    """The record's silence and timer fields after a commit (``model_copy(update=...)``)."""
    plan = plan_silence(shipment, ordered, exceptions, now=now, config=silence_config(), rules=playbooks())
    return {
        "silence_type": plan.type if plan else None,
        "silence_anchor": plan.anchor if plan else None,
        "silence_due_at": plan.due_at if plan else None,
        "timer_due_at": next_timer(shipment, plan.due_at if plan else None, now),
    }


class BusinessThresholds:
    """The silence thresholds as the refund rules ask for them (``shared.logic.refunds.rules``'s
    ``SilenceThresholds``): no grace, business time of ``country``."""

    def __init__(self, config: SilenceConfig | None = None) -> None:
        self.config = config or silence_config()

    def movement_due(self, anchor: CanonicalEvent, lane: str, country: str | None) -> datetime:
        # Days counted in the anchor scan's own time zone, as plan_silence counts them.
        tz = local_zone(anchor, country, anchor.occurred_at)
        return silence_deadline(anchor.occurred_at, Rule(str(lane)), country=country, tz=tz, config=self.config)

    def first_scan_due(self, label_created_at: datetime, label: CanonicalEvent | None, country: str | None) -> datetime:
        tz = local_zone(label, country, label_created_at)
        return silence_deadline(label_created_at, Rule.LABEL, country=country, tz=tz, config=self.config)

    def add_business_days(self, start: datetime, days: int, country: str | None) -> datetime:
        return calendar.add_business_hours(start, 24 * days, country, local_zone(None, country, start))
