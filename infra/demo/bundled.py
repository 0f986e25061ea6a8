"""The bundled traffic the demo replays (until the simulator exists): every source, each in
its own format, rendered by the payload builders from a few true journeys.

* push sources post signed webhooks as each scan happens — EasyPost, AfterShip, Shippo and
  17TRACK re-send the whole history, UPS Track Alert one event, FedEx and DHL whole shipments —
  with one delivery sent twice and one arriving after a newer one;
* polled carriers (UPS, FedEx, USPS, DHL, 17TRACK) answer Shiplight's poller from the fake
  carrier API, which shows only scans that have happened;
* a warehouse reports "packed" and "handed to the carrier" through the generic source, and
  one code outside the documented vocabulary;
* around them what a real endpoint also meets: an EasyPost event with no tracking, a signed
  payload that does not fit the generic schema (kept and quarantined), a forged delivery (401).
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from infra.formats.generic import generic_body, generic_event
from infra.formats.scan import Leg, Parcel, Place, TrueScan
from shared.sources import SOURCES

DEMO_SECRETS: dict[str, list[str]] = {
    "generic": ["demo-warehouse-secret"],
    "easypost": ["demo-easypost-sécret"],
    "aftership": ["demo-aftership-secret"],
    "shippo": ["demo-shippo-secret"],
    "seventeentrack": ["demo-17track-key"],
    "ups": ["demo-ups-track-alert-token"],
    "fedex": ["demo-fedex-aiv-token"],
    "dhl": ["demo-dhl-push-token"],
}

BROOKLYN = Place("Brooklyn", "NY", "11201", "US", "America/New_York")
AUSTIN = Place("Austin", "TX", "78701", "US", "America/Chicago")
SEATTLE = Place("Seattle", "WA", "98108", "US", "America/Los_Angeles")
LOUISVILLE = Place("Louisville", "KY", "40209", "US", "America/New_York")
DENVER = Place("Commerce City", "CO", "80022", "US", "America/Denver")
COLUMBUS = Place("Columbus", "OH", "43215", "US", "America/New_York")
PITTSBURGH = Place("Pittsburgh", "PA", "15222", "US", "America/New_York")
SHENZHEN = Place("Shenzhen", "GD", "518000", "CN", "Asia/Shanghai")
HONG_KONG = Place("Hong Kong", None, None, "HK", "Asia/Hong_Kong")
LOS_ANGELES = Place("Los Angeles", "CA", "90045", "US", "America/Los_Angeles")
PHOENIX = Place("Phoenix", "AZ", "85004", "US", "America/Phoenix")
LEIPZIG = Place("Leipzig", "SN", "04435", "DE", "Europe/Berlin")
CINCINNATI = Place("Hebron", "KY", "41048", "US", "America/New_York")
CHICAGO = Place("Chicago", "IL", "60607", "US", "America/Chicago")
RENO = Place("Reno", "NV", "89502", "US", "America/Los_Angeles")
MEMPHIS = Place("Memphis", "TN", "38118", "US", "America/Chicago")
MIAMI = Place("Miami", "FL", "33126", "US", "America/New_York")


@dataclass(frozen=True)
class Delivery:
    source: str
    body: bytes
    label: str
    headers: dict[str, str] = field(default_factory=dict)
    expect: int = 202


@dataclass(frozen=True)
class Story:
    """One parcel and who tells Shiplight about it."""

    title: str
    parcel: Parcel
    scans: tuple[TrueScan, ...]
    push: str | None  # the source that sends webhooks for it, if any
    polled: bool = False  # its carriers answer the poller (the fake carrier API knows it)
    warehouse: bool = False  # the warehouse reports packed / handed to the carrier


def sign(source: str, body: bytes, now: datetime, secret: str | None = None) -> dict[str, str]:
    """The headers a sender holding the demo secret would send (every scheme Shiplight knows)."""
    secret = secret or DEMO_SECRETS[source][0]
    scheme = SOURCES[source].signature
    headers = {"content-type": "application/json"}
    if source in ("generic", "shippo"):
        return headers | {scheme.header: scheme.sign(body, secret, int(now.timestamp()))}  # type: ignore[union-attr]
    if source == "ups":
        return headers | {"authorization": f"Bearer {secret}"}
    if source == "dhl":
        return headers | {"shiplight-webhook-token": secret}
    return headers | {scheme.header: scheme.sign(body, secret)}  # type: ignore[union-attr]


def stories(now: datetime) -> list[Story]:
    day = now.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=5)

    def at(days: int, hour: int, minute: int = 0) -> datetime:
        return day + timedelta(days=days, hours=hour, minutes=minute)

    def scans(*items: tuple[str, datetime, Place | None, int]) -> tuple[TrueScan, ...]:
        return tuple(TrueScan(kind, when, place, leg) for kind, when, place, leg in items)

    return [
        Story(
            "USPS via EasyPost: a failed attempt, then delivered",
            Parcel((Leg("usps", "9400111899223344556677"),), BROOKLYN, AUSTIN, reference="usps_demo"),
            scans(
                ("label_created", at(0, 14, 5), BROOKLYN, 0),
                ("picked_up", at(0, 22, 40), BROOKLYN, 0),
                ("departed_origin", at(1, 3, 10), BROOKLYN, 0),
                ("arrived_hub", at(1, 19, 55), AUSTIN, 0),
                ("out_for_delivery", at(2, 13, 2), AUSTIN, 0),
                ("delivery_failed", at(2, 19, 41), AUSTIN, 0),
                ("out_for_delivery", at(3, 13, 15), AUSTIN, 0),
                ("delivered", at(3, 18, 7), AUSTIN, 0),
            ),
            push="easypost",
        ),
        Story(
            "UPS via Track Alert webhooks: weather on the way, warehouse hand-off",
            Parcel((Leg("ups", "1Z999AA10123456784"),), SEATTLE, DENVER),
            scans(
                ("picked_up", at(1, 23, 12), SEATTLE, 0),
                ("arrived_hub", at(2, 20, 45), LOUISVILLE, 0),
                ("delayed", at(3, 11, 0), LOUISVILLE, 0),
                ("in_transit", at(4, 2, 30), LOUISVILLE, 0),
                ("arrived_hub", at(4, 21, 10), DENVER, 0),
            ),
            push="ups",
            warehouse=True,
        ),
        Story(
            "UPS SurePost, polled: UPS hands over to USPS, whose API is polled next",
            Parcel((Leg("ups", "1Z4Y0A190348261953"), Leg("usps", "92419900000033499522966220")), COLUMBUS, PITTSBURGH),
            scans(
                ("label_created", at(1, 15, 0), COLUMBUS, 0),
                ("picked_up", at(1, 23, 5), COLUMBUS, 0),
                ("arrived_hub", at(2, 18, 30), PITTSBURGH, 0),
                ("handed_to_last_mile", at(3, 9, 40), PITTSBURGH, 0),
                ("arrived_hub", at(3, 12, 10), PITTSBURGH, 1),
                ("out_for_delivery", at(4, 8, 2), PITTSBURGH, 1),
                ("delivered", at(4, 14, 48), PITTSBURGH, 1),
            ),
            push=None,
            polled=True,
            warehouse=True,
        ),
        Story(
            "FedEx via AIV webhooks: address problem, then delivered",
            Parcel((Leg("fedex", "794611112222"),), MEMPHIS, MIAMI),
            scans(
                ("label_created", at(0, 16, 0), MEMPHIS, 0),
                ("picked_up", at(0, 21, 30), MEMPHIS, 0),
                ("arrived_hub", at(1, 22, 10), MIAMI, 0),
                ("out_for_delivery", at(2, 12, 0), MIAMI, 0),
                ("address_issue", at(2, 17, 20), MIAMI, 0),
                ("out_for_delivery", at(3, 12, 5), MIAMI, 0),
                ("delivered", at(3, 16, 40), MIAMI, 0),
            ),
            push="fedex",
        ),
        Story(
            "DHL Germany to the US, pushed: customs on arrival",
            Parcel((Leg("dhl", "JD014600006281230704"),), LEIPZIG, CHICAGO),
            scans(
                ("picked_up", at(0, 9, 15), LEIPZIG, 0),
                ("departed_origin", at(0, 20, 40), LEIPZIG, 0),
                ("arrived_hub", at(1, 7, 5), CINCINNATI, 0),
                ("customs_started", at(1, 9, 0), CINCINNATI, 0),
                ("customs_cleared", at(2, 6, 30), CINCINNATI, 0),
                ("out_for_delivery", at(3, 13, 0), CHICAGO, 0),
            ),
            push="dhl",
        ),
        Story(
            "China to the US via AfterShip: China Post, USPS last mile",
            Parcel((Leg("china_post", "LK123456789CN"), Leg("usps", "9400136105440123456789")), SHENZHEN, PHOENIX),
            scans(
                ("picked_up", at(0, 2, 0), SHENZHEN, 0),
                ("departed_origin", at(0, 15, 30), HONG_KONG, 0),
                ("arrived_hub", at(1, 20, 10), LOS_ANGELES, 0),
                ("customs_started", at(1, 22, 0), LOS_ANGELES, 0),
                ("customs_cleared", at(2, 8, 45), LOS_ANGELES, 0),
                ("handed_to_last_mile", at(2, 16, 0), LOS_ANGELES, 1),
                ("out_for_delivery", at(4, 9, 30), PHOENIX, 1),
            ),
            push="aftership",
        ),
        Story(
            "YunExpress via 17TRACK: held by customs",
            Parcel((Leg("yunexpress", "YT2612345678901"), Leg("usps", "9400136105440987654321")), SHENZHEN, AUSTIN),
            scans(
                ("picked_up", at(0, 4, 0), SHENZHEN, 0),
                ("departed_origin", at(1, 1, 0), HONG_KONG, 0),
                ("arrived_hub", at(2, 3, 30), LOS_ANGELES, 0),
                ("customs_started", at(2, 5, 0), LOS_ANGELES, 0),
                ("customs_hold", at(3, 10, 0), LOS_ANGELES, 0),
            ),
            push="seventeentrack",
            polled=True,
        ),
        Story(
            "Shippo: refused, returning to sender",
            Parcel((Leg("fedex", "794622223333"),), RENO, LOS_ANGELES),
            scans(
                ("label_created", at(1, 10, 0), RENO, 0),
                ("picked_up", at(1, 18, 0), RENO, 0),
                ("out_for_delivery", at(2, 14, 0), LOS_ANGELES, 0),
                ("delivery_failed", at(2, 18, 30), LOS_ANGELES, 0),
                ("return_started", at(3, 9, 0), LOS_ANGELES, 0),
            ),
            push="shippo",
        ),
    ]


def deliveries(now: datetime, told: list[Story]) -> list[Delivery]:
    """Every webhook of the demo in the order a busy endpoint would receive them."""
    timed: list[tuple[datetime, int, Delivery]] = []
    for index, story in enumerate(told):
        if story.warehouse:
            timed.append(_warehouse(story, now, index))
        if story.push is None:
            continue
        builder = importlib.import_module(f"infra.formats.{story.push}")
        # A carrier reports its own leg; an aggregator sees every leg.
        seen = [
            s
            for s in story.scans
            if SOURCES[story.push].kind == "aggregator" or story.parcel.legs[s.leg].carrier == story.push
        ]
        for n in range(1, len(seen) + 1):
            reported = seen[:n]
            body = builder.webhook_body(story.parcel, reported, now=reported[-1].at + timedelta(minutes=15))
            label = f"{story.push}: {story.parcel.first.tracking_number} {reported[-1].kind}"
            timed.append((reported[-1].at, index, Delivery(story.push, body, label, sign(story.push, body, now))))
    timed.sort(key=lambda item: (item[0], item[1]))
    ordered = [delivery for _, _, delivery in timed]
    # One update delivered twice, one arriving after a newer one, as real senders do.
    ordered.insert(
        5, Delivery(ordered[4].source, ordered[4].body, ordered[4].label + " (delivered twice)", ordered[4].headers)
    )
    ordered[10], ordered[11] = ordered[11], ordered[10]
    ordered[11] = Delivery(
        ordered[11].source, ordered[11].body, ordered[11].label + " (after a newer update)", ordered[11].headers
    )
    return ordered + _edge_cases(now)


def _warehouse(story: Story, now: datetime, index: int) -> tuple[datetime, int, Delivery]:
    """The warehouse's packed / handed-over report, one code outside the documented set."""
    handed = story.scans[0]
    leg = story.parcel.first
    local = handed.place.zone if handed.place else None

    def event(code: str, hours_before: float, description: str) -> dict[str, object]:
        when = handed.at - timedelta(hours=hours_before)
        return generic_event(
            carrier=leg.carrier,
            tracking_number=leg.tracking_number,
            code=code,
            occurred_at=when.astimezone(local) if local else when,
            description=description,
        )

    body = generic_body(
        [
            event("quality_check", 8, "Passed QC at station 4"),
            event("packed", 7, "Packed at the DC"),
            event("handed_to_carrier", 1, "Loaded on the carrier's trailer"),
        ],
        sender="seattle-dc",
    )
    sent = handed.at - timedelta(hours=1)
    return (
        sent,
        index,
        Delivery(
            "generic",
            body,
            f"warehouse: {leg.carrier} {leg.tracking_number} packed, handed over",
            sign("generic", body, now),
        ),
    )


def _edge_cases(now: datetime) -> list[Delivery]:
    batch = json.dumps(
        {
            "object": "Event",
            "id": "evt_batch_1",
            "description": "batch.created",
            "result": {"object": "Batch", "id": "batch_1"},
        },
        separators=(",", ":"),
    ).encode()
    off_schema = json.dumps(
        {
            "schema": "shiplight.generic.v1",
            "events": [
                {
                    "carrier": "ups",
                    "tracking_number": "1Z999AA10123456784",
                    "code": "packed",
                    "occurred_at": "yesterday",
                }
            ],
        }
    ).encode()
    forged = b'{"description":"tracker.updated","object":"Event","result":{"object":"Tracker","tracking_code":"1"}}'
    return [
        Delivery("easypost", batch, "EasyPost batch.created (no tracking)", sign("easypost", batch, now)),
        Delivery(
            "generic",
            off_schema,
            "warehouse: payload off the schema (kept, quarantined)",
            sign("generic", off_schema, now),
        ),
        Delivery(
            "easypost",
            forged,
            "forged delivery (bad signature)",
            {"x-hmac-signature": "hmac-sha256-hex=" + "0" * 64, "content-type": "application/json"},
            401,
        ),
    ]
