"""Shiplight generic payloads (schema ``shiplight.generic.v1``, documented in the README)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any


def generic_event(
    *,
    carrier: str,
    tracking_number: str,
    code: str,
    occurred_at: datetime,
    city: str | None = None,
    region: str | None = None,
    postal_code: str | None = None,
    country: str | None = None,
    description: str | None = None,
    exception: str | None = None,
    reference: str | None = None,
) -> dict[str, Any]:
    event: dict[str, Any] = {
        "carrier": carrier,
        "tracking_number": tracking_number,
        "code": code,
        "occurred_at": occurred_at.isoformat(),
    }
    place = {
        k: v for k, v in (("city", city), ("region", region), ("postal_code", postal_code), ("country", country)) if v
    }
    if place:
        event["location"] = place
    for key, value in (("description", description), ("exception", exception), ("reference", reference)):
        if value is not None:
            event[key] = value
    return event


def generic_body(events: list[dict[str, Any]], sender: str | None = None) -> bytes:
    payload: dict[str, Any] = {"schema": "shiplight.generic.v1", "events": events}
    if sender:
        payload["sender"] = sender
    return json.dumps(payload, separators=(",", ":")).encode("utf-8")
