"""EasyPost: webhook ``Event`` bodies (a ``Tracker`` in ``result``) and bare Trackers.

``tracking_details`` are oldest-first; ``datetime`` is an instant (EasyPost writes ``Z``),
except when it arrives without an offset, which is then local time at the scan location.
The physical carrier (``Tracker.carrier``) identifies the scan, not EasyPost.
Docs: https://docs.easypost.com/docs/trackers, https://docs.easypost.com/docs/events
"""

from __future__ import annotations

import json
from datetime import datetime
from importlib import import_module
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.adapters.base import (
    CodeMapping,
    MappingTable,
    NormalizeResult,
    build_event,
    carrier_id,
    first_error,
    location,
    parse_iso,
    time_from,
    tracking_number,
)
from shared.errors import PayloadError
from shared.models.canonical import FAMILY, Milestone

Text = Annotated[str, Field(max_length=2000)]


class _Input(BaseModel):
    model_config = ConfigDict(extra="ignore")


class TrackingLocation(_Input):
    city: Text | None = None
    state: Text | None = None
    country: Text | None = None
    zip: Text | None = None


class TrackingDetail(_Input):
    message: Text | None = None
    description: Text | None = None
    status: Text | None = None
    status_detail: Text | None = None
    datetime: Text
    carrier_code: Text | None = None
    tracking_location: TrackingLocation | None = None


class Tracker(_Input):
    object: str = "Tracker"
    tracking_code: Annotated[str, Field(max_length=100)]
    carrier: Text | None = None
    status: Text | None = None
    status_detail: Text | None = None
    tracking_details: Annotated[list[TrackingDetail], Field(max_length=2000)] = []


def _table() -> MappingTable:
    return MappingTable.load("easypost")


def map_codes(status: str | None, detail: str | None) -> tuple[CodeMapping | None, list[str]]:
    """One mapping from a detail's ``status`` and ``status_detail``; unknown codes are returned.

    The detail refines the status (``in_transit`` + ``received_at_origin_facility`` is a
    pickup), except where the status is decisive and further along: ``delivered`` with
    the detail ``arrived_at_destination`` is a delivery. A detail that is only a problem
    (a weather delay) on a status that is not decisive is a notice, not a movement.
    """
    return _table().refined("status", status, "status_detail", detail)


# EasyPost relays these carriers' own activity codes in ``carrier_code``; their tables read
# a scan the way the carrier's own API does, so the same scan gets one identity whichever
# source reports it. EasyPost's detail still wins where it knows the place's role (leaving
# the origin, reaching the last-mile carrier, customs), which a bare code cannot say.
_CARRIERS_WITH_TABLES = frozenset({"ups", "fedex", "usps", "dhl"})
_PLACE_AWARE = frozenset(
    {Milestone.DEPARTED_ORIGIN, Milestone.HANDED_TO_LAST_MILE, Milestone.CUSTOMS_STARTED, Milestone.CUSTOMS_CLEARED}
)


def _with_carrier_code(carrier: str, code: str | None, easypost: CodeMapping | None) -> CodeMapping | None:
    if carrier not in _CARRIERS_WITH_TABLES or not code:
        return easypost
    own = import_module(f"shared.adapters.{carrier}").map_carrier_code(code.strip())
    if own is None:
        return easypost
    if (
        easypost is not None
        and easypost.milestone in _PLACE_AWARE
        and own.milestone is not None
        and FAMILY[own.milestone] == FAMILY[easypost.milestone]
    ):
        return CodeMapping(milestone=easypost.milestone, exception=own.exception or easypost.exception)
    return CodeMapping(milestone=own.milestone, exception=own.exception)


def _raw_code(detail: TrackingDetail) -> str:
    code = f"{detail.status or '-'}/{detail.status_detail or '-'}"
    return f"{code}/{detail.carrier_code}" if detail.carrier_code else code


def _tracker_of(data: Any) -> Tracker | str | None:
    """The Tracker in a payload, or a reason it carries none."""
    if not isinstance(data, dict):
        raise PayloadError("EasyPost payload is not a JSON object")
    kind = data.get("object")
    if kind == "Event":
        description = str(data.get("description") or "")
        if not description.startswith("tracker."):
            return f"EasyPost event {description[:60]!r} carries no tracking"
        data = data.get("result")
        if not isinstance(data, dict):
            raise PayloadError("EasyPost tracker event has no result object")
    elif kind != "Tracker":
        raise PayloadError("EasyPost payload is neither an Event nor a Tracker")
    try:
        return Tracker.model_validate(data)
    except ValidationError as error:
        raise PayloadError(f"EasyPost tracker: {first_error(error)}") from None


def normalize(body: bytes, *, received_at: datetime) -> NormalizeResult:
    """Canonical events of one EasyPost webhook or tracker."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise PayloadError("EasyPost payload is not JSON") from None
    tracker = _tracker_of(data)
    if isinstance(tracker, str) or tracker is None:
        return NormalizeResult(ignored=tracker)
    carrier = carrier_id(tracker.carrier)
    number = tracking_number(tracker.tracking_code)
    result = NormalizeResult()
    for detail in tracker.tracking_details:
        mapping, unmapped = map_codes(detail.status, detail.status_detail)
        mapping = _with_carrier_code(carrier, detail.carrier_code, mapping)
        result.unmapped.extend(unmapped)
        where = detail.tracking_location
        place = (
            location(city=where.city, region=where.state, postal_code=where.zip, country=where.country)
            if where
            else None
        )
        instant = parse_iso(detail.datetime)
        when = time_from(instant, place)
        result.events.append(
            build_event(
                carrier=carrier,
                tracking_number=number,
                mapping=mapping,
                when=when,
                place=place,
                description=detail.message or detail.description,
                raw_code=_raw_code(detail),
                received_at=received_at,
            )
        )
    return result
