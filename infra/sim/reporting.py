"""How carriers *report* the simulated truth: who tells Shiplight what, when, and how badly.

Each push source sends a signed webhook after every scan it sees, in its own format (the
payload builders in ``infra/formats``), with its own reporting latency (minutes for a
carrier's push, up to hours for an aggregator that itself polls); aggregators re-send the
whole history each time; some deliveries are retried (duplicates) and some held back for
hours (so they arrive after newer ones). Warehouses report ``packed`` and ``handed to the
carrier`` through the generic source. Polled carriers are not sent anything: the fake carrier
API answers the poller from the same truth (``CarrierWorld``), each scan visible once its
latency has passed.

The chaos settings add what a public endpoint also meets: forged signatures, truncated JSON,
wrong carrier paths and oversized bodies, each carrying a made-up scan that must never be
stored. A scenario may also drop scans on purpose (a carrier that never reports one); the
truth says which.
"""

from __future__ import annotations

import importlib
import json
import math
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from infra.demo.bundled import sign
from infra.formats.generic import generic_body, generic_event
from infra.formats.scan import TrueScan
from infra.sim.world import Journey
from shared.sources import SOURCES

# Median reporting latency in minutes (lognormal, spread ~0.8): a carrier's own push is
# quick, an aggregator that polls the carriers itself is slower, 17TRACK the slowest.
PUSH_LATENCY_MINUTES = {
    "ups": 6.0,
    "fedex": 9.0,
    "dhl": 14.0,
    "easypost": 7.0,
    "shippo": 11.0,
    "aftership": 25.0,
    "seventeentrack": 55.0,
    "generic": 3.0,
}
POLL_LATENCY = (timedelta(minutes=10), timedelta(minutes=40))  # when a carrier's API shows a scan
MAX_BODY = 256 * 1024

CHAOS_KINDS = ("bad_signature", "truncated_json", "wrong_carrier", "oversized")
CHAOS_EXPECT = {"bad_signature": 401, "truncated_json": 400, "wrong_carrier": 404, "oversized": 413}


@dataclass(frozen=True)
class Chaos:
    """What goes wrong on the way, as shares (per delivery, or per shipment for forged traffic)."""

    duplicate: float = 0.05  # a delivery retried by the sender a few minutes later
    held_back: float = 0.03  # a delivery delayed by hours, arriving after newer ones
    drop_scan: float = 0.0  # a push-only scan that no source ever reports (on purpose)
    bad_input: float = 0.03  # a malformed or forged webhook, per shipment


@dataclass(frozen=True)
class Delivery:
    """One HTTP request to the gateway."""

    at: datetime  # when it is sent (simulated)
    source: str  # the path's carrier segment ("" for a registration)
    body: bytes
    headers: dict[str, str]
    kind: str  # "registration", "webhook", "warehouse", "duplicate", "held_back" or a CHAOS_KINDS entry
    sim_id: str
    expect: int = 202

    @property
    def path(self) -> str:
        """The request path; a claim's names the shipment, which the runner fills in."""
        if self.kind == "registration":
            return "/v1/shipments"
        if self.kind == "claim":
            return "/v1/shipments/{shipment_id}/claims"
        return f"/webhooks/{self.source}"


@dataclass
class Report:
    """Everything the simulated senders will do, plus what the truth records about it."""

    deliveries: list[Delivery] = field(default_factory=list)
    poll_latency: dict[str, timedelta] = field(default_factory=dict)  # sim_id → its carriers' API latency
    dropped: dict[str, list[int]] = field(default_factory=dict)  # sim_id → indexes of scans never reported
    forged: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # sim_id → made-up scans sent


def _latency(rng: random.Random, source: str) -> timedelta:
    median = PUSH_LATENCY_MINUTES[source]
    return timedelta(minutes=math.exp(math.log(median) + rng.gauss(0, 0.8)))


def _seen_by(journey: Journey, source: str) -> list[TrueScan]:
    """The scans a push source knows: a carrier its own leg's, an aggregator every leg's."""
    if SOURCES[source].kind == "aggregator":
        return list(journey.scans)
    return [s for s in journey.scans if journey.parcel.legs[s.leg].carrier == source]


def plan(journeys: list[Journey], *, seed: int, chaos: Chaos | None = None) -> Report:
    """Every delivery of the run (sorted by send time) and what the fake carrier API knows."""
    chaos = chaos or Chaos()
    report = Report()
    for journey in journeys:
        rng = random.Random(f"{seed}:report:{journey.sim_id}")
        low, high = POLL_LATENCY
        report.poll_latency[journey.sim_id] = low + (high - low) * rng.random()
        report.deliveries.append(_registration(journey, rng))
        if journey.warehouse_events:
            report.deliveries.extend(_warehouse(journey, rng))
        if journey.lane.push is not None:
            report.deliveries.extend(_pushes(journey, journey.lane.push, rng, chaos, report))
        if rng.random() < chaos.bad_input:
            report.deliveries.append(_bad_input(journey, rng, report))
        if journey.claim_at is not None:
            report.deliveries.append(_claim(journey, journey.claim_at))
    report.deliveries.sort(key=lambda d: (d.at, d.sim_id, d.kind))
    return report


def _pushes(journey: Journey, source: str, rng: random.Random, chaos: Chaos, report: Report) -> list[Delivery]:
    builder = importlib.import_module(f"infra.formats.{source}")
    seen = _seen_by(journey, source)
    if chaos.drop_scan and not journey.lane.polled:
        # Only where no poll could reveal it: the scan is then truly never reported.
        kept = [s for s in seen if s.kind == "label_created" or rng.random() >= chaos.drop_scan]
        dropped = [journey.scans.index(s) for s in seen if s not in kept]
        if dropped:
            report.dropped[journey.sim_id] = dropped
        seen = kept
    out: list[Delivery] = []
    for n, scan in enumerate(seen, start=1):
        sent = scan.at + _latency(rng, source)
        kind = "webhook"
        if rng.random() < chaos.held_back:
            sent += timedelta(hours=rng.uniform(2, 10))
            kind = "held_back"
        body = builder.webhook_body(journey.parcel, seen[:n], now=sent)
        headers = sign(source, body, sent)
        out.append(Delivery(sent, source, body, headers, kind, journey.sim_id))
        if rng.random() < chaos.duplicate:
            again = sent + timedelta(minutes=rng.uniform(1, 30))
            out.append(Delivery(again, source, body, sign(source, body, again), "duplicate", journey.sim_id))
    return out


def _registration(journey: Journey, rng: random.Random) -> Delivery:
    """The merchant's order system registers the shipment a few minutes after printing its label
    (the API key is added when it is sent: the runtime issues it)."""
    parcel, lane = journey.parcel, journey.lane

    def address(place: Any) -> dict[str, Any]:
        return {"country": place.country, "region": place.region, "city": place.city, "postal_code": place.postal_code}

    median_days = lane.transit_days[0]
    promised = (journey.label_at + timedelta(days=median_days * 7 / 5 + 2)).astimezone(parcel.destination.zone)
    number = int(journey.sim_id.split("-")[-1])
    document: dict[str, Any] = {
        "carrier": parcel.first.carrier,
        "tracking_number": parcel.first.tracking_number,
        "order_id": f"SL-{100000 + number}",
        "origin": address(parcel.origin),
        "destination": address(parcel.destination),
        "customer": {
            "name": f"Customer {number}",
            "email": f"customer{number}@example.com",
            "phone": f"+1555{number:07d}",
        },
        "locale": "de-DE" if parcel.destination.country in ("DE", "AT") else "en-US",
        "time_zone": parcel.destination.tz,
        "promised_delivery_date": promised.date().isoformat(),
        "label_created_at": journey.label_at.isoformat(),
    }
    if parcel.last_mile is not None:
        document["last_mile"] = {
            "carrier": parcel.last_mile.carrier,
            "tracking_number": parcel.last_mile.tracking_number,
        }
    sent = journey.label_at + timedelta(minutes=rng.uniform(1, 15))
    body = json.dumps(document).encode()
    return Delivery(sent, "", body, {"content-type": "application/json"}, "registration", journey.sim_id, expect=201)


def _claim(journey: Journey, claim_at: datetime) -> Delivery:
    """Support records the customer's "delivered but never received" call."""
    document = {
        "description": "Customer says the parcel never arrived although tracking shows it delivered.",
        "claimed_at": claim_at.isoformat(),
        "contact_channel": "phone",
        "reference": f"CASE-{journey.sim_id}",
    }
    body = json.dumps(document).encode()
    return Delivery(claim_at, "", body, {"content-type": "application/json"}, "claim", journey.sim_id, 201)


def _warehouse(journey: Journey, rng: random.Random) -> list[Delivery]:
    """The merchant's warehouse reports each of its events a few minutes after it happens."""
    leg = journey.parcel.first
    origin = journey.parcel.origin
    out = []
    for code, at in journey.warehouse_events:
        body = generic_body(
            [
                generic_event(
                    carrier=leg.carrier,
                    tracking_number=leg.tracking_number,
                    code=code,
                    occurred_at=at.astimezone(origin.zone),
                    description={"packed": "Packed at the DC", "handed_to_carrier": "Loaded on the carrier's trailer"}[
                        code
                    ],
                )
            ],
            sender=f"{origin.city.lower() if origin.city else 'main'}-dc",
        )
        sent = at + _latency(rng, "generic")
        out.append(Delivery(sent, "generic", body, sign("generic", body, sent), "warehouse", journey.sim_id))
    return out


def _bad_input(journey: Journey, rng: random.Random, report: Report) -> Delivery:
    """A request that must be refused: it claims the parcel was delivered an hour after its label."""
    kind = rng.choice(CHAOS_KINDS)
    source = journey.lane.push or "generic"
    made_up = TrueScan("delivered", journey.label_at + timedelta(hours=1), journey.parcel.destination, 0)
    leg = journey.parcel.first
    if source == "generic" or SOURCES[source].signature is None:
        source = "generic"
        body = generic_body(
            [
                generic_event(
                    carrier=leg.carrier,
                    tracking_number=leg.tracking_number,
                    code="delivered",
                    occurred_at=made_up.at,
                    description="Delivered",
                )
            ]
        )
    else:
        builder = importlib.import_module(f"infra.formats.{source}")
        scans = [s for s in _seen_by(journey, source) if s.at < made_up.at] + [made_up]
        body = builder.webhook_body(journey.parcel, scans, now=made_up.at)
    sent = journey.label_at + timedelta(hours=rng.uniform(1, 48))
    report.forged.setdefault(journey.sim_id, []).append(
        {"kind": kind, "scan": "delivered", "at": made_up.at.isoformat(), "tracking_number": leg.tracking_number}
    )
    path = source
    if kind == "bad_signature":
        headers = sign(source, body, sent, secret="not-the-secret")  # noqa: S106 - a forger's guess
    elif kind == "truncated_json":
        body = body[: max(1, len(body) // 2)]
        headers = sign(source, body, sent)
    elif kind == "wrong_carrier":
        path = rng.choice(("royalmail", "ups-test", "canadapost", "dhl_express"))
        headers = sign(source, body, sent)
    else:  # oversized: a valid document padded past the limit, signed
        document = json.loads(body)
        document["padding"] = "x" * (MAX_BODY + 1)
        body = json.dumps(document).encode()
        headers = sign(source, body, sent)
    return Delivery(sent, path, body, headers, kind, journey.sim_id, expect=CHAOS_EXPECT[kind])
