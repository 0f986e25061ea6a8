"""AfterShip: Tracking webhooks (``tracking_update``), each carrying the whole Tracking.

Body: ``{"event", "event_id", "is_tracking_first_tag", "msg": <Tracking>, "ts"}``. Only
``tracking_update`` is read: ``edd_revise`` (a new delivery estimate) and
``tracking_pending_time`` (AfterShip still waiting for the carrier) report no scan of their
own, and the checkpoints they may repeat arrive with the next ``tracking_update`` anyway.

Checkpoints are oldest-first and map on ``tag`` + ``subtag`` (the subtag decides).
``checkpoint_time`` is the wall time of the checkpoint's place, with an offset, without one,
or a bare date (AfterShip passes on what the carrier gives); the place is ``city``/``state``/
``zip``/``country_iso3`` or, in newer API versions, ``postal_code``/``country_region``.

The physical carrier of a checkpoint is its ``slug`` (else the Tracking's). A Tracking that
names a last-mile carrier (``last_mile.tracking_number`` + ``slug``) links both numbers; the
last-mile carrier's checkpoints belong to its own number, and its first movement scan is the
handover (AfterShip has no sub-status for it).
Docs: https://www.aftership.com/docs/tracking/webhook/webhook-specifications,
https://www.aftership.com/docs/tracking/2026-07/enum/delivery-sub-statuses
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.adapters.base import (
    CodeMapping,
    LegLink,
    MappingTable,
    NormalizeResult,
    ResolvedTime,
    build_event,
    carrier_id,
    clip,
    first_error,
    location,
    parse_iso,
    time_from,
    tracking_number,
)
from shared.errors import PayloadError
from shared.models.canonical import Location, Milestone
from shared.models.shipment import TrackingKey

Text = Annotated[str, Field(max_length=2000)]
Code = Annotated[str, Field(max_length=100)]
Number = Annotated[str, Field(max_length=100)]

# Movement scans: the last-mile carrier's first one is the handover to it.
_MOVEMENT = frozenset({Milestone.PICKED_UP, Milestone.DEPARTED_ORIGIN, Milestone.IN_TRANSIT, Milestone.ARRIVED_HUB})


class _Input(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Checkpoint(_Input):
    checkpoint_time: Annotated[str, Field(max_length=64)]
    slug: Code | None = None
    tag: Code | None = None
    subtag: Code | None = None
    message: Text | None = None
    city: Text | None = None
    state: Text | None = None
    zip: Text | None = None
    postal_code: Text | None = None
    country_iso3: Text | None = None
    country_region: Text | None = None
    country_name: Text | None = None
    country_region_name: Text | None = None


class LastMile(_Input):
    tracking_number: Number | None = None
    slug: Code | None = None


class Tracking(_Input):
    tracking_number: Number
    slug: Code | None = None
    checkpoints: Annotated[list[Checkpoint], Field(max_length=2000)] | None = None
    last_mile: LastMile | None = None


class Webhook(_Input):
    event: Code
    event_id: Code | None = None
    msg: Any = None


@dataclass
class _Draft:
    """A checkpoint read, before it becomes an event (the handover is decided across them)."""

    key: TrackingKey
    mapping: CodeMapping | None
    when: ResolvedTime
    place: Location | None
    description: str | None
    raw_code: str


def _table() -> MappingTable:
    return MappingTable.load("aftership")


def map_codes(tag: str | None, subtag: str | None) -> tuple[CodeMapping | None, list[str]]:
    """One mapping from a checkpoint's ``tag`` and ``subtag``; unknown codes are returned.

    The subtag decides (``InTransit`` + ``InTransit_002`` is a pickup, ``Exception`` +
    ``Exception_011`` a completed return); an unknown or deferring subtag falls back to the
    tag. A decisive tag (``Delivered``) is never weakened; a subtag that is only a problem
    (``Exception_005``) under a tag that is not decisive is a notice without a milestone.
    """
    return _table().refined("tag", tag, "subtag", subtag)


def _place(checkpoint: Checkpoint) -> Location | None:
    return location(
        city=checkpoint.city,
        region=checkpoint.state,
        postal_code=checkpoint.postal_code or checkpoint.zip,
        country=checkpoint.country_region
        or checkpoint.country_iso3
        or checkpoint.country_region_name
        or checkpoint.country_name,
    )


def _optional_number(value: str) -> str | None:
    """A second tracking number is extra: one no carrier could print is left out, not fatal."""
    try:
        return tracking_number(value)
    except PayloadError:
        return None


def _when(value: str, place: Location | None) -> ResolvedTime:
    """``checkpoint_time``: with an offset it is an instant; without one (or a bare date,
    read as local midnight) it is wall time at the checkpoint's place."""
    parsed = parse_iso(value)
    return time_from(parsed, place)


def _raw_code(checkpoint: Checkpoint) -> str:
    return f"{checkpoint.tag or '-'}/{checkpoint.subtag or '-'}"


def _tracking_of(data: Any) -> Tracking | str:
    """The Tracking in a webhook body, or the reason it carries none to store."""
    if not isinstance(data, dict):
        raise PayloadError("AfterShip payload is not a JSON object")
    try:
        webhook = Webhook.model_validate(data)
    except ValidationError as error:
        raise PayloadError(f"AfterShip webhook: {first_error(error)}") from None
    if webhook.event != "tracking_update":
        return f"AfterShip event {clip(webhook.event, 40)!r} reports no checkpoint of its own"
    if not isinstance(webhook.msg, dict):
        raise PayloadError("AfterShip tracking_update has no msg object")
    try:
        return Tracking.model_validate(webhook.msg)
    except ValidationError as error:
        raise PayloadError(f"AfterShip tracking: {first_error(error)}") from None


def _last_mile_carrier(drafts: list[_Draft], first: str, named: str | None) -> str | None:
    """The carrier that took the parcel over: the one the Tracking names, else the carrier
    of the latest checkpoint when it is not the carrier of the earliest."""
    if named is not None:
        return named if named != first else None
    if not drafts:
        return None
    ordered = sorted(drafts, key=lambda draft: draft.when.occurred_at)
    earliest, latest = ordered[0].key.carrier, ordered[-1].key.carrier
    return latest if latest != earliest else None


def _mark_handover(drafts: list[_Draft], carrier: str) -> None:
    """The last-mile carrier's first movement scan reads ``handed_to_last_mile``."""
    for draft in sorted((d for d in drafts if d.key.carrier == carrier), key=lambda d: d.when.occurred_at):
        milestone = draft.mapping.milestone if draft.mapping else None
        if milestone is None or milestone is Milestone.LABEL_CREATED:
            continue  # a pre-advice or a notice is not the parcel changing hands
        if milestone in _MOVEMENT:
            exception = draft.mapping.exception if draft.mapping else None
            draft.mapping = CodeMapping(milestone=Milestone.HANDED_TO_LAST_MILE, exception=exception)
        return


_DEPARTURE = "InTransit/InTransit_007"


def _mark_origin_departure(drafts: list[_Draft], carrier: str) -> None:
    """AfterShip's departure sub-status (``InTransit_007``) is a departure from any facility;
    the first scan after the acceptance, before the parcel arrived anywhere, is a departure
    from where it was accepted: ``departed_origin``. Needs the acceptance in the same history
    (a webhook carries them all), so a lone departure scan stays ``in_transit``."""
    accepted = False
    for draft in sorted((d for d in drafts if d.key.carrier == carrier), key=lambda d: d.when.occurred_at):
        milestone = draft.mapping.milestone if draft.mapping else None
        if milestone is None or milestone is Milestone.LABEL_CREATED:
            continue
        if milestone is Milestone.PICKED_UP:
            accepted = True
            continue
        if accepted and draft.raw_code == _DEPARTURE and draft.mapping is not None:
            draft.mapping = CodeMapping(milestone=Milestone.DEPARTED_ORIGIN, exception=draft.mapping.exception)
        return


def normalize(body: bytes, *, received_at: datetime) -> NormalizeResult:
    """Canonical events of one AfterShip webhook."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise PayloadError("AfterShip payload is not JSON") from None
    tracking = _tracking_of(data)
    if isinstance(tracking, str):
        return NormalizeResult(ignored=tracking)
    checkpoints = tracking.checkpoints or []
    if not checkpoints:
        return NormalizeResult(ignored="AfterShip tracking has no checkpoints yet")
    number = tracking_number(tracking.tracking_number)
    first = TrackingKey(carrier_id(tracking.slug or checkpoints[0].slug), number)
    named_last_mile: TrackingKey | None = None
    declared = tracking.last_mile
    if declared is not None and declared.slug and declared.tracking_number:
        declared_number = _optional_number(declared.tracking_number)
        if declared_number is not None:
            named_last_mile = TrackingKey(carrier_id(declared.slug), declared_number)
    result = NormalizeResult()
    drafts: list[_Draft] = []
    for checkpoint in checkpoints:
        mapping, unmapped = map_codes(checkpoint.tag, checkpoint.subtag)
        result.unmapped.extend(unmapped)
        carrier = carrier_id(checkpoint.slug) if checkpoint.slug else first.carrier
        key = TrackingKey(carrier, number)
        if named_last_mile is not None and carrier == named_last_mile.carrier != first.carrier:
            key = named_last_mile
        place = _place(checkpoint)
        drafts.append(
            _Draft(
                key=key,
                mapping=mapping,
                when=_when(checkpoint.checkpoint_time, place),
                place=place,
                description=checkpoint.message,
                raw_code=_raw_code(checkpoint),
            )
        )
    _mark_origin_departure(drafts, first.carrier)
    last_mile = _last_mile_carrier(drafts, first.carrier, named_last_mile.carrier if named_last_mile else None)
    if last_mile is not None:
        _mark_handover(drafts, last_mile)
    # Every other key of this parcel is linked to the one it started under, so that both
    # carriers' numbers resolve to one shipment.
    origin = first if named_last_mile is not None else min(drafts, key=lambda d: d.when.occurred_at).key
    keys = {first, *(draft.key for draft in drafts)}
    if named_last_mile is not None:
        keys.add(named_last_mile)
    result.legs = [LegLink(first=origin, last_mile=key) for key in sorted(keys - {origin})]
    result.events = [
        build_event(
            carrier=draft.key.carrier,
            tracking_number=draft.key.tracking_number,
            mapping=draft.mapping,
            when=draft.when,
            place=draft.place,
            description=draft.description,
            raw_code=draft.raw_code,
            received_at=received_at,
        )
        for draft in drafts
    ]
    return result
