"""The public tracking view, addressed only by an unguessable token (docs/merchant-api.md).

Standard library and botocore only (docs/architecture.md): the public route's cold start is what a
customer waits for. The answer is the JSON of ``shared.models.views.TrackingView``, the
documented contract, built here without pydantic from the ``ByToken`` index items: the
same field names and order, instants as ``isoformat_z`` (``UtcInstant``), local times as
``isoformat()`` (``LocalTime``), codes as their values. ``tests/unit/test_tracking_view.py``
keeps the two byte for byte equal.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from typing import Any, Protocol

from shared.clock import isoformat_z, parse_instant
from shared.dal.token_index import TokenIndex
from shared.errors import NotFound
from shared.labels import STATUS_LABELS
from shared.settings import PublicApiSettings, load

_TOKEN = re.compile(r"^[A-Za-z0-9_-]{22,64}$")
NOT_FOUND = "no shipment is tracked under this link"
MAX_PUBLIC_EVENTS = 1000  # TrackingView.events' max_length: a longer timeline shows its newest


class PublicReader(Protocol):
    def public_items(self, token: str) -> list[dict[str, Any]]: ...


def public_reader() -> PublicReader:
    """The token index of the table named by the environment."""
    return TokenIndex(load(PublicApiSettings).shipments_table)


def token_reference(token: str) -> str:
    """What a log line may say of a token: a short hash. The token itself is a bearer
    secret (whoever holds it sees the parcel), so it is never logged."""
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()[:12]


def tracking_link_target(token: str) -> str:
    """Where the customer's tracking link ``/t/{token}`` leads for now: the tracking view of the
    same token (the link stays the same when the tracking page arrives). ``NotFound`` for a
    token no link could hold, without reading the table."""
    if not _TOKEN.fullmatch(token):
        raise NotFound(NOT_FOUND)
    return f"/v1/track/{token}"


def tracking_view(token: str, reader: PublicReader) -> dict[str, Any]:
    """The JSON object of ``TrackingView`` for the shipment behind ``token``, newest event
    first; ``NotFound`` (the same answer for any unknown or malformed token)."""
    if not _TOKEN.fullmatch(token):
        raise NotFound(NOT_FOUND)
    items = reader.public_items(token)
    meta = next((item for item in items if item.get("entity") == "shipment"), None)
    if meta is not None and meta.get("merged_into_token"):
        # This number turned out to be another leg of a shipment tracked already: a link
        # sent out before the merge keeps working (one more Query, on this rare path).
        items = reader.public_items(str(meta["merged_into_token"]))
        meta = next((item for item in items if item.get("entity") == "shipment"), None)
    if meta is None:
        raise NotFound(NOT_FOUND)
    events = sorted(
        (item for item in items if item.get("entity") == "event"),
        key=lambda item: str(item["sk"]),  # EVT#<fixed-width instant>#<id>: instant order
        reverse=True,
    )[:MAX_PUBLIC_EVENTS]
    status = meta.get("status") or None
    return {
        "carrier": meta["carrier"],
        "tracking_number": meta["tracking_number"],
        "tracking_numbers": [_leg(text) for text in meta.get("tracking_keys") or []],
        "status": status,
        "status_label": STATUS_LABELS[status],
        "status_since": _instant(meta.get("status_since")),
        "last_event_at": _instant(meta.get("last_event_at")),
        "updated_at": _instant(meta["updated_at"]),
        "events": [
            {
                "milestone": item.get("milestone"),
                "exception": item.get("exception"),
                "occurred_at": _instant(item["occurred_at"]),
                "occurred_at_local": _local_time(item.get("occurred_at_local")),
                "location": _place(item.get("location")),
                "description": item.get("description"),
            }
            for item in events
        ],
    }


def _instant(text: str | None) -> str | None:
    # UtcInstant's JSON: the instant in UTC, "Z", seconds unless sub-second is present.
    return None if text is None else isoformat_z(parse_instant(text))


def _local_time(text: str | None) -> str | None:
    # LocalTime's JSON: the wall time with its own offset, as ``isoformat()`` writes it.
    if text is None:
        return None
    parsed = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
    if parsed.tzinfo is None:
        raise ValueError(f"a local time needs an offset: {text!r}")
    return parsed.isoformat()


def _leg(text: str) -> dict[str, str]:
    carrier, _, number = str(text).partition(":")
    return {"carrier": carrier, "tracking_number": number}


def _place(location: dict[str, Any] | None) -> dict[str, Any] | None:
    # Postal codes are left out: on a public page they narrow a delivery down to a street.
    if not location:
        return None
    return {"city": location.get("city"), "region": location.get("region"), "country": location.get("country")}
