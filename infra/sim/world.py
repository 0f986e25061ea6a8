"""The simulated world: lanes a merchant really ships on, and what really happens on them.

A seeded generator of journeys. Each shipment gets a lane (who carries it, who tells
Shiplight about it), a label time, a pickup after the warehouse's cut-off on a business day,
a transit time drawn from the lane's distribution (business days, public holidays from the
``holidays`` package, in the country where the parcel is), hub scans in between, and, at the
rates configured, the incidents merchants live with: no first scan, stalls, customs holds,
address problems, failed attempts, returns, damage, loss, delays, holds, and customers who say
a delivered parcel never came. The result is the ground truth: every true scan with its true
instant and place, and the incidents with the moment they began.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from infra.formats.scan import Leg, Parcel, Place, TrueScan
from shared.calendar import add_business_days, next_business_day

# ---------------------------------------------------------------------------- places

RENO = Place("Reno", "NV", "89502", "US", "America/Los_Angeles")
COLUMBUS = Place("Columbus", "OH", "43215", "US", "America/New_York")
SHENZHEN = Place("Shenzhen", "GD", "518000", "CN", "Asia/Shanghai")
GUANGZHOU = Place("Guangzhou", "GD", "510000", "CN", "Asia/Shanghai")
HONG_KONG = Place("Hong Kong", None, None, "HK", "Asia/Hong_Kong")
LEIPZIG = Place("Leipzig", "SN", "04435", "DE", "Europe/Berlin")

US_HUBS = (
    Place("Salt Lake City", "UT", "84104", "US", "America/Denver"),
    Place("Commerce City", "CO", "80022", "US", "America/Denver"),
    Place("Hodgkins", "IL", "60525", "US", "America/Chicago"),
    Place("Louisville", "KY", "40209", "US", "America/New_York"),
    Place("Memphis", "TN", "38118", "US", "America/Chicago"),
    Place("Dallas", "TX", "75261", "US", "America/Chicago"),
    Place("Ontario", "CA", "91761", "US", "America/Los_Angeles"),
)
US_DESTINATIONS = (
    Place("Austin", "TX", "78701", "US", "America/Chicago"),
    Place("Brooklyn", "NY", "11201", "US", "America/New_York"),
    Place("Seattle", "WA", "98101", "US", "America/Los_Angeles"),
    Place("Phoenix", "AZ", "85004", "US", "America/Phoenix"),
    Place("Denver", "CO", "80202", "US", "America/Denver"),
    Place("Miami", "FL", "33130", "US", "America/New_York"),
    Place("Chicago", "IL", "60607", "US", "America/Chicago"),
    Place("Pittsburgh", "PA", "15222", "US", "America/New_York"),
    Place("El Paso", "TX", "79901", "US", "America/Denver"),
    Place("Honolulu", "HI", "96813", "US", "Pacific/Honolulu"),
)
US_GATEWAYS = (
    Place("Los Angeles", "CA", "90045", "US", "America/Los_Angeles"),
    Place("Jamaica", "NY", "11430", "US", "America/New_York"),
)
EU_HUBS = (Place("Hauneck", "HE", "36282", "DE", "Europe/Berlin"),)
EU_DESTINATIONS = (
    Place("Paris", "IDF", "75011", "FR", "Europe/Paris"),
    Place("Amsterdam", "NH", "1012", "NL", "Europe/Amsterdam"),
    Place("Vienna", "W", "1010", "AT", "Europe/Vienna"),
    Place("Munich", "BY", "80331", "DE", "Europe/Berlin"),
)


# ---------------------------------------------------------------------------- lanes


@dataclass(frozen=True)
class Lane:
    """Who carries a parcel and who tells Shiplight about it."""

    name: str
    weight: float
    carriers: tuple[str, ...]  # the shipper carrier, then a last-mile carrier if any
    push: str | None  # the source that sends webhooks (a carrier, or an aggregator for every leg)
    polled: tuple[str, ...]  # sources whose tracking APIs know the parcel (the fake carrier API)
    warehouse: bool  # the merchant's warehouse reports packed / handed to the carrier
    origins: tuple[Place, ...]
    destinations: tuple[Place, ...]
    hubs: tuple[Place, ...]
    transit_days: tuple[float, float]  # lognormal median and spread of business days in transit
    cross_border: bool = False


LANES: tuple[Lane, ...] = (
    Lane("us_ups", 0.18, ("ups",), "ups", ("ups",), True, (RENO,), US_DESTINATIONS, US_HUBS, (3.0, 0.35)),
    Lane("us_fedex", 0.14, ("fedex",), "fedex", ("fedex",), True, (COLUMBUS,), US_DESTINATIONS, US_HUBS, (2.5, 0.35)),
    Lane("us_usps", 0.14, ("usps",), None, ("usps",), True, (RENO,), US_DESTINATIONS, US_HUBS, (3.5, 0.4)),
    Lane(
        "cn_us_17track",
        0.11,
        ("yunexpress", "usps"),
        "seventeentrack",
        ("seventeentrack", "usps"),
        False,
        (SHENZHEN,),
        US_DESTINATIONS,
        (HONG_KONG,),
        (8.0, 0.3),
        cross_border=True,
    ),
    Lane(
        "cn_us_aftership",
        0.11,
        ("china_post", "usps"),
        "aftership",
        ("usps",),
        False,
        (GUANGZHOU,),
        US_DESTINATIONS,
        (HONG_KONG,),
        (9.0, 0.3),
        cross_border=True,
    ),
    Lane("eu_dhl", 0.12, ("dhl",), "dhl", ("dhl",), True, (LEIPZIG,), EU_DESTINATIONS, EU_HUBS, (2.5, 0.3)),
    Lane("us_easypost", 0.10, ("usps",), "easypost", (), False, (COLUMBUS,), US_DESTINATIONS, US_HUBS, (3.0, 0.4)),
    Lane("us_shippo", 0.10, ("fedex",), "shippo", (), False, (RENO,), US_DESTINATIONS, US_HUBS, (2.5, 0.35)),
)


@dataclass(frozen=True)
class IncidentRates:
    """How often each incident happens (share of shipments; customs holds: of cross-border ones)."""

    no_first_scan: float = 0.03
    stall: float = 0.04
    customs_hold: float = 0.15
    address_issue: float = 0.03
    failed_attempt: float = 0.06
    return_to_sender: float = 0.02
    damaged: float = 0.01
    lost: float = 0.01
    delayed: float = 0.05
    held: float = 0.01
    delivered_not_received: float = 0.02

    def scaled(self, factor: float) -> IncidentRates:
        return IncidentRates(**{name: min(1.0, value * factor) for name, value in vars(self).items()})


# ---------------------------------------------------------------------------- truth


@dataclass
class Incident:
    type: str  # an exception type (docs/incidents.md), or "stall" / "no_first_scan" as the simulator caused them
    at: datetime  # when it began (for silences: the last scan before it)
    resolved_at: datetime | None = None


@dataclass
class Journey:
    """One shipment's ground truth."""

    sim_id: str
    lane: Lane
    parcel: Parcel
    label_at: datetime
    scans: list[TrueScan]
    incidents: list[Incident] = field(default_factory=list)
    delivered_at: datetime | None = None
    claim_at: datetime | None = None  # a delivered-not-received claim by the customer
    warehouse_events: list[tuple[str, datetime]] = field(default_factory=list)  # (generic code, instant)

    def to_json(self) -> dict[str, Any]:
        def place(p: Place | None) -> dict[str, Any] | None:
            return (
                None
                if p is None
                else {
                    "city": p.city,
                    "region": p.region,
                    "postal_code": p.postal_code,
                    "country": p.country,
                    "tz": p.tz,
                }
            )

        return {
            "sim_id": self.sim_id,
            "lane": self.lane.name,
            "legs": [{"carrier": leg.carrier, "tracking_number": leg.tracking_number} for leg in self.parcel.legs],
            "push": self.lane.push,
            "polled": list(self.lane.polled),
            "label_at": self.label_at.isoformat(),
            "origin": place(self.parcel.origin),
            "destination": place(self.parcel.destination),
            "scans": [
                {"kind": s.kind, "at": s.at.isoformat(), "leg": s.leg, "place": place(s.place)} for s in self.scans
            ],
            "warehouse_events": [{"code": code, "at": at.isoformat()} for code, at in self.warehouse_events],
            "incidents": [
                {
                    "type": i.type,
                    "at": i.at.isoformat(),
                    "resolved_at": i.resolved_at.isoformat() if i.resolved_at else None,
                }
                for i in self.incidents
            ],
            "delivered_at": self.delivered_at.isoformat() if self.delivered_at else None,
            "claim_at": self.claim_at.isoformat() if self.claim_at else None,
        }


def at_local(day: date, hour: float, place: Place) -> datetime:
    """An instant at ``hour`` o'clock (fractional) local time on ``day`` at ``place``, in UTC."""
    minutes = int(hour * 60)
    return datetime.combine(day, time(minutes // 60, minutes % 60), tzinfo=place.zone).astimezone(UTC)


_NUMBER_FORMATS = {
    "ups": lambda r: (
        "1Z"
        + "".join(r.choice("ABCDEFGHJKLMNPRSTUVWXY0123456789") for _ in range(6))
        + "03"
        + "".join(r.choice("0123456789") for _ in range(8))
    ),
    "fedex": lambda r: "".join(r.choice("0123456789") for _ in range(12)),
    "usps": lambda r: "9400" + "".join(r.choice("0123456789") for _ in range(18)),
    "dhl": lambda r: "JD01460000" + "".join(r.choice("0123456789") for _ in range(10)),
    "yunexpress": lambda r: "YT" + "".join(r.choice("0123456789") for _ in range(16)),
    "china_post": lambda r: "LK" + "".join(r.choice("0123456789") for _ in range(9)) + "CN",
}


@dataclass
class _Builder:
    """Accumulates a journey's scans, keeping every instant strictly later than the last."""

    rng: random.Random
    scans: list[TrueScan] = field(default_factory=list)

    def add(self, kind: str, at: datetime, place: Place | None, leg: int = 0) -> datetime:
        if self.scans and at <= self.scans[-1].at + timedelta(minutes=2):
            at = self.scans[-1].at + timedelta(minutes=self.rng.randint(3, 40))
        self.scans.append(TrueScan(kind, at.replace(second=self.rng.randint(0, 59), microsecond=0), place, leg))
        return self.scans[-1].at

    @property
    def last(self) -> datetime:
        return self.scans[-1].at


def _hours(rng: random.Random, low: float, high: float) -> timedelta:
    return timedelta(hours=rng.uniform(low, high))


def generate(count: int, *, start: datetime, days: int, seed: int, rates: IncidentRates | None = None) -> list[Journey]:
    """``count`` journeys whose labels are created over the first part of a ``days``-day window."""
    rates = rates or IncidentRates()
    lanes = list(LANES)
    weights = [lane.weight for lane in lanes]
    journeys = []
    for index in range(count):
        rng = random.Random(f"{seed}:{index}")
        lane = rng.choices(lanes, weights)[0]
        journeys.append(_journey(index, lane, rng, start, days, rates))
    return journeys


def _journey(index: int, lane: Lane, rng: random.Random, start: datetime, days: int, rates: IncidentRates) -> Journey:
    origin = rng.choice(lane.origins)
    destination = rng.choice(lane.destinations)
    legs = tuple(Leg(carrier, _NUMBER_FORMATS[carrier](rng)) for carrier in lane.carriers)
    parcel = Parcel(legs, origin, destination, reference=f"sim{index:05d}")
    window = timedelta(days=days * 0.6)
    label_at = start + timedelta(seconds=rng.uniform(0, window.total_seconds()))
    label_local = label_at.astimezone(origin.zone)
    if not 8 <= label_local.hour < 20:  # labels are printed in working hours
        label_at = at_local(label_local.date() + timedelta(days=label_local.hour >= 20), rng.uniform(8, 12), origin)
    journey = Journey(f"sim-{index:05d}", lane, parcel, label_at, [])
    b = _Builder(rng)
    b.add("label_created", label_at, origin)

    label_local = label_at.astimezone(origin.zone)
    cutoff_passed = label_local.hour >= 15
    pickup_day = next_business_day(label_local.date() + timedelta(days=cutoff_passed), origin.country)
    pickup_at = at_local(pickup_day, rng.uniform(16.5, 19.5), origin)
    if lane.warehouse:
        journey.warehouse_events.append(("packed", label_at + timedelta(minutes=rng.randint(5, 90))))
    if rng.random() < rates.no_first_scan:
        journey.incidents.append(Incident("no_first_scan", label_at))
        journey.scans = b.scans
        return journey
    if lane.warehouse:
        journey.warehouse_events.append(("handed_to_carrier", pickup_at - timedelta(minutes=rng.randint(20, 90))))
    b.add("picked_up", pickup_at, origin)

    median, spread = lane.transit_days
    transit = max(1, round(math.exp(math.log(median) + rng.gauss(0, spread))))
    delivery_day = add_business_days(pickup_day, transit, destination.country)
    out_at = at_local(delivery_day, rng.uniform(7.0, 9.5), destination)

    transit_incident = _pick(
        rng,
        {
            "stall": rates.stall,
            "delayed": rates.delayed,
            "held": rates.held,
            "damaged": rates.damaged,
            "lost": rates.lost,
        },
    )
    if lane.cross_border:
        lost = _cross_border(journey, b, rng, out_at, rates, transit_incident)
    else:
        lost = _domestic(journey, b, rng, out_at, transit_incident)
    if lost:
        journey.scans = b.scans
        return journey
    _last_mile(journey, b, rng, rates, leg=len(legs) - 1)
    journey.scans = b.scans
    return journey


def _pick(rng: random.Random, options: dict[str, float]) -> str | None:
    roll = rng.random()
    for name, rate in options.items():
        if roll < rate:
            return name
        roll -= rate
    return None


def _transit_incident(
    journey: Journey, b: _Builder, rng: random.Random, kind: str | None, place: Place, leg: int
) -> timedelta:
    """Add a transit incident at the current point; returns the delay it causes."""
    if kind is None:
        return timedelta(0)
    if kind == "stall":  # the carrier stops scanning for days, then resumes
        journey.incidents.append(Incident("stalled", b.last))
        return timedelta(days=rng.uniform(3, 5))
    at = b.add(kind, b.last + _hours(rng, 2, 8), place, leg)
    journey.incidents.append(Incident(kind, at))
    return {"delayed": timedelta(days=1), "held": timedelta(days=1.5)}.get(kind, timedelta(0))


def _domestic(journey: Journey, b: _Builder, rng: random.Random, out_at: datetime, incident: str | None) -> bool:
    lane = journey.lane
    hubs = rng.sample(lane.hubs, k=min(len(lane.hubs), rng.randint(1, 3)))
    b.add("departed_origin", b.last + _hours(rng, 2, 5), journey.parcel.origin)
    incident_at = rng.randrange(len(hubs))
    arrival_deadline = out_at - timedelta(hours=10)
    step = (arrival_deadline - b.last) / (len(hubs) + 1)
    extra = timedelta(0)
    for n, hub in enumerate(hubs):
        b.add("arrived_hub", max(b.last + _hours(rng, 3, 6), b.last + step * rng.uniform(0.7, 1.0)) + extra, hub)
        if n == incident_at and incident is not None:
            if incident == "lost":
                _transit_incident(journey, b, rng, "lost", hub, 0)
                return True
            extra += _transit_incident(journey, b, rng, incident, hub, 0)
        b.add("in_transit", b.last + _hours(rng, 2, 6), hub)
    destination = journey.parcel.destination
    b.add("arrived_hub", max(b.last + _hours(rng, 4, 10), arrival_deadline + extra), destination)
    return False  # the delays are in the arrival at the destination; delivery follows it


def _cross_border(
    journey: Journey, b: _Builder, rng: random.Random, out_at: datetime, rates: IncidentRates, incident: str | None
) -> bool:
    lane = journey.lane
    hub = lane.hubs[0]
    gateway = rng.choice(US_GATEWAYS)
    b.add("departed_origin", b.last + _hours(rng, 20, 40), hub)
    arrival = b.add("arrived_hub", b.last + _hours(rng, 30, 70), gateway)
    extra = timedelta(0)
    if incident == "lost":
        _transit_incident(journey, b, rng, "lost", gateway, 0)
        return True
    b.add("customs_started", arrival + _hours(rng, 1, 4), gateway)
    if rng.random() < rates.customs_hold:
        hold = b.add("customs_hold", b.last + _hours(rng, 4, 12), gateway)
        release = timedelta(days=rng.uniform(2, 4))
        journey.incidents.append(Incident("customs_hold", hold, resolved_at=hold + release))
        extra += release
    b.add("customs_cleared", b.last + _hours(rng, 6, 30) + extra, gateway)
    extra += _transit_incident(journey, b, rng, incident, gateway, 0)
    handed = b.add("handed_to_last_mile", b.last + _hours(rng, 4, 12), gateway, leg=1)
    depot_at = max(handed + _hours(rng, 20, 40), out_at - timedelta(hours=12) + extra)
    b.add("arrived_hub", depot_at, journey.parcel.destination, leg=1)
    return False


def _last_mile(journey: Journey, b: _Builder, rng: random.Random, rates: IncidentRates, leg: int) -> None:
    destination = journey.parcel.destination
    country = destination.country
    day = next_business_day((b.last + timedelta(hours=10)).astimezone(destination.zone).date(), country)
    delivery_incident = _pick(
        rng,
        {
            "failed_attempt": rates.failed_attempt,
            "address_issue": rates.address_issue,
            "return_to_sender": rates.return_to_sender,
        },
    )
    b.add("out_for_delivery", at_local(day, rng.uniform(7.0, 9.5), destination), destination, leg)
    if delivery_incident in ("failed_attempt", "address_issue", "return_to_sender"):
        kind = "address_issue" if delivery_incident == "address_issue" else "delivery_failed"
        at = b.add(kind, at_local(day, rng.uniform(12.5, 17.5), destination), destination, leg)
        journey.incidents.append(Incident("address_issue" if kind == "address_issue" else "delivery_failed", at))
        if delivery_incident == "return_to_sender":
            returning = b.add("return_started", at + _hours(rng, 14, 30), destination, leg)
            journey.incidents.append(Incident("return_to_sender", returning))
            origin = journey.parcel.origin
            b.add("arrived_hub", returning + _hours(rng, 24, 60), rng.choice(journey.lane.hubs), leg)
            back = next_business_day((b.last + timedelta(days=1)).astimezone(origin.zone).date(), origin.country)
            b.add("return_delivered", at_local(back, rng.uniform(10, 16), origin), origin, leg)
            return
        day = next_business_day(day + timedelta(days=1), country)
        b.add("out_for_delivery", at_local(day, rng.uniform(7.0, 9.5), destination), destination, leg)
    if rng.random() < 0.08:  # some parcels wait at a pickup point instead
        ready = b.add("available_for_pickup", at_local(day, rng.uniform(12, 17), destination), destination, leg)
        collected = next_business_day(ready.astimezone(destination.zone).date() + timedelta(days=1), country)
        delivered = b.add("delivered", at_local(collected, rng.uniform(10, 19), destination), destination, leg)
    else:
        delivered = b.add("delivered", at_local(day, rng.uniform(10, 18.5), destination), destination, leg)
    journey.delivered_at = delivered
    if rng.random() < rates.delivered_not_received:
        journey.claim_at = delivered + _hours(rng, 20, 72)
        journey.incidents.append(Incident("delivered_not_received", journey.claim_at))
