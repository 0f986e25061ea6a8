"""Shiplight's own JSON for warehouses, 3PLs and merchant systems (schema in the README).

Every event names the carrier and tracking number it belongs to, a ``code`` from
``mappings/generic.toml`` and an instant with an offset; problems go in ``exception``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from shared.adapters.base import (
    CodeMapping,
    MappingTable,
    NormalizeResult,
    build_event,
    first_error,
    location,
    time_from_aware,
    tracking_number,
)
from shared.errors import PayloadError
from shared.models.canonical import CarrierId, IncidentType


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GenericLocation(_Input):
    city: Annotated[str, Field(max_length=100)] | None = None
    region: Annotated[str, Field(max_length=100)] | None = None
    postal_code: Annotated[str, Field(max_length=20)] | None = None
    country: Annotated[str, Field(max_length=60)] | None = None


class GenericEvent(_Input):
    carrier: CarrierId
    tracking_number: Annotated[str, Field(min_length=1, max_length=64)]
    code: Annotated[str, Field(pattern=r"^[a-z0-9_]{1,40}$")]
    exception: IncidentType | None = None
    occurred_at: AwareDatetime
    location: GenericLocation | None = None
    description: Annotated[str, Field(max_length=500)] | None = None
    reference: Annotated[str, Field(max_length=100)] | None = None


class GenericPayload(_Input):
    schema_: Annotated[str, Field(alias="schema", pattern=r"^shiplight\.generic\.v1$")] = "shiplight.generic.v1"
    sender: Annotated[str, Field(max_length=100)] | None = None
    events: Annotated[list[GenericEvent], Field(min_length=1, max_length=500)]


def normalize(body: bytes, *, received_at: datetime) -> NormalizeResult:
    """Canonical events of one generic payload; a payload off the schema is a ``PayloadError``."""
    try:
        payload = GenericPayload.model_validate_json(body)
    except ValidationError as error:
        raise PayloadError(f"generic payload: {first_error(error)}") from None
    table = MappingTable.load("generic")
    result = NormalizeResult()
    for event in payload.events:
        mapping = table.lookup("code", event.code)
        if mapping is None:
            result.unmapped.append(f"code={event.code}")
        if event.exception is not None:
            mapping = CodeMapping(milestone=mapping.milestone if mapping else None, exception=event.exception)
        where = event.location
        place = (
            location(city=where.city, region=where.region, postal_code=where.postal_code, country=where.country)
            if where
            else None
        )
        result.events.append(
            build_event(
                carrier=event.carrier,
                tracking_number=tracking_number(event.tracking_number),
                mapping=mapping,
                when=time_from_aware(event.occurred_at, place),
                place=place,
                description=event.description,
                raw_code=event.code if event.exception is None else f"{event.code}/{event.exception.value}",
                received_at=received_at,
            )
        )
    return result
