"""Shippo: ``track_updated`` webhooks, each carrying the whole Track.

Body: ``{"event": "track_updated", "test": <bool>, "data": <Track>}``; other events
(``transaction_created``, ``batch_purchased``…) are not about tracking and are ignored.
``tracking_history`` is oldest-first and maps on ``status`` + ``substatus.code`` (the
substatus decides). ``status_date`` is UTC (``…Z``) in production; test mode (carrier
``shippo``, numbers ``SHIPPO_TRANSIT``…) writes times with no zone at all, read as wall time
at the event's place. The Track's ``carrier`` token is the physical carrier.
Docs: https://docs.goshippo.com/docs/tracking/tracking, https://docs.goshippo.com/docs/tracking/webhooks
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.adapters.base import (
    CodeMapping,
    MappingTable,
    NormalizeResult,
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

Text = Annotated[str, Field(max_length=2000)]
Code = Annotated[str, Field(max_length=100)]

# Shippo's test carrier: its numbers (SHIPPO_TRANSIT…) hold an underscore, which no real
# carrier uses and the canonical model does not allow; it becomes a hyphen.
TEST_CARRIER = "shippo"


class _Input(BaseModel):
    model_config = ConfigDict(extra="ignore")


class ShippoLocation(_Input):
    city: Text | None = None
    state: Text | None = None
    zip: Text | None = None
    country: Text | None = None


class Substatus(_Input):
    code: Code | None = None
    text: Text | None = None
    action_required: bool | None = None


class TrackingEvent(_Input):
    status: Code | None = None
    status_details: Text | None = None
    status_date: Annotated[str, Field(max_length=64)] | None = None
    substatus: Substatus | None = None
    location: ShippoLocation | None = None


class Track(_Input):
    carrier: Code
    tracking_number: Annotated[str, Field(max_length=100)]
    tracking_status: TrackingEvent | None = None
    tracking_history: Annotated[list[TrackingEvent], Field(max_length=2000)] | None = None


class Webhook(_Input):
    event: Code
    test: bool | None = None
    data: Any = None


def _table() -> MappingTable:
    return MappingTable.load("shippo")


def map_codes(status: str | None, substatus: str | None) -> tuple[CodeMapping | None, list[str]]:
    """One mapping from an event's ``status`` and ``substatus.code``; unknown codes are returned.

    The substatus decides (``TRANSIT`` + ``out_for_delivery`` is out for delivery,
    ``FAILURE`` + ``package_lost`` a loss, not a failed attempt); a missing, unknown or
    deferring substatus falls back to the status. A decisive status (``DELIVERED``,
    ``RETURNED``) is never weakened; a substatus that is only a problem (``delayed``) under a
    status that is not decisive is a notice without a milestone.
    """
    return _table().refined("status", status, "substatus", substatus)


def _track_of(data: Any) -> Track | str:
    """The Track in a webhook body, or the reason it carries none."""
    if not isinstance(data, dict):
        raise PayloadError("Shippo payload is not a JSON object")
    try:
        webhook = Webhook.model_validate(data)
    except ValidationError as error:
        raise PayloadError(f"Shippo webhook: {first_error(error)}") from None
    if webhook.event != "track_updated":
        return f"Shippo event {clip(webhook.event, 40)!r} carries no tracking"
    if not isinstance(webhook.data, dict):
        raise PayloadError("Shippo track_updated has no data object")
    try:
        return Track.model_validate(webhook.data)
    except ValidationError as error:
        raise PayloadError(f"Shippo track: {first_error(error)}") from None


def _history(track: Track) -> list[TrackingEvent]:
    """The events to read: the history, or the lone current status when the history is
    empty (a label just created); nothing when the carrier does not know the number yet."""
    if track.tracking_history:
        return track.tracking_history
    current = track.tracking_status
    if current is None or current.status_date is None or current.status in (None, "UNKNOWN"):
        return []
    return [current]


def normalize(body: bytes, *, received_at: datetime) -> NormalizeResult:
    """Canonical events of one Shippo webhook."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise PayloadError("Shippo payload is not JSON") from None
    track = _track_of(data)
    if isinstance(track, str):
        return NormalizeResult(ignored=track)
    history = _history(track)
    if not history:
        return NormalizeResult(ignored="Shippo has no tracking events for this number yet")
    carrier = carrier_id(track.carrier)
    raw_number = track.tracking_number
    if carrier == TEST_CARRIER:
        raw_number = raw_number.replace("_", "-")
    number = tracking_number(raw_number)
    result = NormalizeResult()
    for index, event in enumerate(history):
        if not event.status_date:
            raise PayloadError(f"Shippo tracking_history.{index}.status_date is missing")
        code = event.substatus.code if event.substatus else None
        mapping, unmapped = map_codes(event.status, code)
        result.unmapped.extend(unmapped)
        where = event.location
        place = (
            location(city=where.city, region=where.state, postal_code=where.zip, country=where.country)
            if where
            else None
        )
        instant = parse_iso(event.status_date)
        when = time_from(instant, place)
        result.events.append(
            build_event(
                carrier=carrier,
                tracking_number=number,
                mapping=mapping,
                when=when,
                place=place,
                description=event.status_details or (event.substatus.text if event.substatus else None),
                raw_code=f"{event.status or '-'}/{code or '-'}",
                received_at=received_at,
            )
        )
    return result
