"""The public tracking view, addressed only by an unguessable token (DESIGN §4.1)."""

from __future__ import annotations

import re
from typing import Any, Protocol

from shared.dal.shipments import DynamoShipmentStore
from shared.errors import NotFound
from shared.models.canonical import Milestone
from shared.models.views import STATUS_LABELS, PublicEvent, PublicLeg, PublicPlace, TrackingView
from shared.settings import PublicApiSettings, load

_TOKEN = re.compile(r"^[A-Za-z0-9_-]{22,64}$")
NOT_FOUND = "no shipment is tracked under this link"


class PublicReader(Protocol):
    def public_items(self, token: str) -> list[dict[str, Any]]: ...


def public_reader() -> PublicReader:
    """The token index of the table named by the environment."""
    return DynamoShipmentStore(load(PublicApiSettings).shipments_table)


def tracking_link_target(token: str) -> str:
    """Where the customer's tracking link ``/t/{token}`` leads for now: the tracking view of the
    same token (the link stays the same when the tracking page arrives). ``NotFound`` for a
    token no link could hold, without reading the table."""
    if not _TOKEN.fullmatch(token):
        raise NotFound(NOT_FOUND)
    return f"/v1/track/{token}"


def tracking_view(token: str, reader: PublicReader) -> TrackingView:
    """The shipment behind ``token``; ``NotFound`` (same answer for any unknown token)."""
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
    )
    status = Milestone(meta["status"]) if meta.get("status") else None
    return TrackingView(
        carrier=meta["carrier"],
        tracking_number=meta["tracking_number"],
        tracking_numbers=[_leg(text) for text in meta.get("tracking_keys") or []],
        status=status,
        status_label=STATUS_LABELS[status],
        status_since=meta.get("status_since"),
        last_event_at=meta.get("last_event_at"),
        updated_at=meta["updated_at"],
        events=[
            PublicEvent(
                milestone=item.get("milestone"),
                exception=item.get("exception"),
                occurred_at=item["occurred_at"],
                occurred_at_local=item.get("occurred_at_local"),
                location=_place(item.get("location")),
                description=item.get("description"),
            )
            for item in events
        ],
    )


def _leg(text: str) -> PublicLeg:
    carrier, _, number = str(text).partition(":")
    return PublicLeg(carrier=carrier, tracking_number=number)


def _place(location: dict[str, Any] | None) -> PublicPlace | None:
    # Postal codes are left out: on a public page they narrow a delivery down to a street.
    if not location:
        return None
    return PublicPlace(city=location.get("city"), region=location.get("region"), country=location.get("country"))
