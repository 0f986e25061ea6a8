"""The merchant's shipment reads: ``GET /v1/shipments/{id}`` and ``GET /v1/shipments?order_id=``.

Read side: each view is built from one Query of the shipment's partition
(``shared.logic.views.shipment``); nothing here writes.
"""

from __future__ import annotations

import base64
import binascii
import json
import re

from shared import clock
from shared.errors import InvalidInput, NotFound
from shared.logic.api.merchant import MerchantServices, tracking_url
from shared.logic.views.shipment import SHIPMENT_ID, find_shipment, queue_row, shipment_view
from shared.models.merchant import MerchantShipmentView, ShipmentPage
from shared.models.shipment import Partition
from shared.text import has_control_characters

PAGE_DEFAULT, PAGE_MAX = 10, 50
_CURSOR_INSTANT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$")


def _view(partition: Partition, services: MerchantServices, origin: str) -> MerchantShipmentView:
    now = clock.now()
    link = tracking_url(partition.shipment.public_token, public_base_url=services.public_base_url, origin=origin)
    rows = [queue_row(e, now) for e in sorted(partition.incidents, key=lambda e: e.sla_due_at) if e.is_open]
    return shipment_view(partition, tracking_link=link, exceptions=rows)


def get_shipment(shipment_id: str, services: MerchantServices, *, origin: str) -> MerchantShipmentView:
    """``GET /v1/shipments/{id}``."""
    return _view(find_shipment(shipment_id, services.store), services, origin)


def encode_cursor(after: tuple[str, str]) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(after), separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[str, str]:
    """The position an opaque cursor stands for; ``InvalidInput`` for anything this API did not give."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created_at, shipment_id = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (ValueError, TypeError, UnicodeEncodeError, binascii.Error):
        raise InvalidInput("cursor: not a cursor this API gave") from None
    if not (
        isinstance(created_at, str)
        and isinstance(shipment_id, str)
        and _CURSOR_INSTANT.fullmatch(created_at)
        and SHIPMENT_ID.fullmatch(shipment_id)
    ):
        raise InvalidInput("cursor: not a cursor this API gave")
    return created_at, shipment_id


def _limit(text: str | None) -> int:
    if text is None or text == "":
        return PAGE_DEFAULT
    if not text.isdigit() or not 1 <= int(text) <= PAGE_MAX:
        raise InvalidInput(f"limit: a whole number from 1 to {PAGE_MAX}")
    return int(text)


def list_shipments(query: dict[str, str], services: MerchantServices, *, origin: str) -> ShipmentPage:
    """``GET /v1/shipments?order_id=…[&limit=…][&cursor=…]``: an order's shipments, oldest first."""
    unknown = sorted(set(query) - {"order_id", "limit", "cursor"})
    if unknown:
        raise InvalidInput(f"{unknown[0]}: not a parameter of this route (order_id, limit, cursor)")
    order_id = (query.get("order_id") or "").strip()
    if not order_id:
        raise InvalidInput("order_id: is required")
    if len(order_id) > 128 or has_control_characters(order_id):
        raise InvalidInput("order_id: at most 128 printable characters")
    limit = _limit(query.get("limit"))
    after = decode_cursor(query["cursor"]) if query.get("cursor") else None
    page = services.orders.shipments_of_order(order_id, limit=limit, after=after)
    views: list[MerchantShipmentView] = []
    listed: set[str] = set()
    for shipment_id in page.shipment_ids:
        try:
            # A shipment merged into another is listed as the one it joined, once.
            partition = find_shipment(shipment_id, services.store)
        except NotFound:
            continue
        shipment = partition.shipment
        if shipment.shipment_id in listed:
            continue
        listed.add(shipment.shipment_id)
        views.append(_view(partition, services, origin))
    return ShipmentPage(
        order_id=order_id, shipments=views, next_cursor=encode_cursor(page.after) if page.after else None
    )
