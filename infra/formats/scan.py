"""What really happened to a parcel, before any carrier reports it.

Payload builders (``infra/formats/<source>.py``) render these true scans in each source's
own codes, time formats and shapes; the simulator generates them; the fake carrier API
answers polls from them; and round-trip tests check that the source's adapter reads each
rendering back as the canonical milestone and exception listed in the builder's ``RENDERS``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal
from zoneinfo import ZoneInfo

from shared.models.canonical import IncidentType, Milestone

# What can happen to a parcel, as the simulator and the builders name it.
Kind = Literal[
    "label_created",
    "picked_up",
    "departed_origin",
    "in_transit",
    "arrived_hub",
    "customs_started",
    "customs_hold",
    "customs_cleared",
    "handed_to_last_mile",
    "out_for_delivery",
    "delivery_failed",
    "address_issue",
    "delayed",
    "held",
    "damaged",
    "lost",
    "available_for_pickup",
    "delivered",
    "return_started",
    "return_delivered",
]

M, X = Milestone, IncidentType
Reading = tuple[Milestone | None, IncidentType | None]

# The canonical reading each kind should get, whatever the source: a builder's RENDERS
# may only narrow or substitute these where the source cannot say more (and must say so).
CANONICAL: dict[str, Reading] = {
    "label_created": (M.LABEL_CREATED, None),
    "picked_up": (M.PICKED_UP, None),
    "departed_origin": (M.DEPARTED_ORIGIN, None),
    "in_transit": (M.IN_TRANSIT, None),
    "arrived_hub": (M.ARRIVED_HUB, None),
    "customs_started": (M.CUSTOMS_STARTED, None),
    "customs_hold": (None, X.CUSTOMS_HOLD),
    "customs_cleared": (M.CUSTOMS_CLEARED, None),
    "handed_to_last_mile": (M.HANDED_TO_LAST_MILE, None),
    "out_for_delivery": (M.OUT_FOR_DELIVERY, None),
    "delivery_failed": (M.DELIVERY_FAILED, X.DELIVERY_FAILED),
    "address_issue": (None, X.ADDRESS_ISSUE),
    "delayed": (None, X.DELAYED),
    "held": (None, X.HELD),
    "damaged": (None, X.DAMAGED),
    "lost": (None, X.LOST),
    "available_for_pickup": (M.AVAILABLE_FOR_PICKUP, None),
    "delivered": (M.DELIVERED, None),
    "return_started": (M.RETURN_STARTED, X.RETURN_TO_SENDER),
    "return_delivered": (M.RETURN_DELIVERED, None),
}


@dataclass(frozen=True)
class Place:
    city: str | None
    region: str | None
    postal_code: str | None
    country: str  # ISO alpha-2
    tz: str  # IANA zone, for carriers that write local wall time

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.tz)


@dataclass(frozen=True)
class Leg:
    """One carrier's part of a journey: a shipper carrier, then maybe a last-mile carrier."""

    carrier: str  # Shiplight carrier id: ups, fedex, usps, dhl, yunexpress…
    tracking_number: str


@dataclass(frozen=True)
class TrueScan:
    kind: str  # one of Kind
    at: datetime  # the true instant (aware)
    place: Place | None
    leg: int = 0  # index into Parcel.legs: who scanned it
    note: str | None = None  # free text a carrier might add (never needed to map)

    def local(self) -> datetime:
        """The wall time a carrier at ``place`` would print (UTC when there is no place)."""
        return self.at.astimezone(self.place.zone if self.place else UTC)


@dataclass(frozen=True)
class Parcel:
    legs: tuple[Leg, ...]
    origin: Place
    destination: Place
    service: str = "Ground"
    reference: str = field(default="")  # the aggregator's own id (tracker id, AfterShip id…)

    @property
    def first(self) -> Leg:
        return self.legs[0]

    @property
    def last_mile(self) -> Leg | None:
        return self.legs[1] if len(self.legs) > 1 else None
