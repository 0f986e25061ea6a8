"""The parts every detail on the bus shares (docs/events.md): who the shipment is, its place in
the shipment's one ``sequence``, and where it stands after the change."""

from __future__ import annotations

from typing import Any

from shared.clock import isoformat_z
from shared.models.shipment import Shipment


def detail_header(shipment: Shipment, sequence: int) -> dict[str, Any]:
    """``shipment_id``, ``order_id``, ``carrier``, ``tracking_number``, ``tracking_numbers`` and
    ``sequence``: the fields every Shiplight event's detail starts with."""
    return {
        "shipment_id": shipment.shipment_id,
        "order_id": shipment.order_id,
        "carrier": shipment.carrier,
        "tracking_number": shipment.tracking_number,
        "tracking_numbers": shipment.tracking_keys,
        "sequence": sequence,
    }


def detail_state(shipment: Shipment, **more: Any) -> dict[str, Any]:
    """The shipment's state after the change (``state``), with what a detail type adds."""
    return {
        "status": shipment.status.value if shipment.status else None,
        "status_since": isoformat_z(shipment.status_since) if shipment.status_since else None,
        "last_event_at": isoformat_z(shipment.last_event_at) if shipment.last_event_at else None,
        "event_count": shipment.event_count,
        **more,
    }
