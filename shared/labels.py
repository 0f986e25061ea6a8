"""Words a customer reads for Shiplight's codes, in the standard library only.

The public route imports no pydantic (docs/architecture.md, its cold start is what a customer waits
for), so the status labels live here, keyed by the milestone codes (``Milestone`` is a
``StrEnum``: ``STATUS_LABELS[Milestone.DELIVERED]`` finds ``"delivered"``);
``shared.models.views`` re-exports them for the pydantic views.
"""

from __future__ import annotations

STATUS_LABELS: dict[str | None, str] = {
    None: "Waiting for the first update",
    "label_created": "Label created",
    "picked_up": "Picked up",
    "departed_origin": "Left the origin facility",
    "in_transit": "In transit",
    "arrived_hub": "At a sorting facility",
    "customs_started": "In customs",
    "customs_cleared": "Cleared customs",
    "handed_to_last_mile": "With the local delivery carrier",
    "out_for_delivery": "Out for delivery",
    "available_for_pickup": "Ready for pickup",
    "delivery_failed": "Delivery attempt failed",
    "return_started": "Returning to sender",
    "delivered": "Delivered",
    "return_delivered": "Returned to sender",
}
