"""The bundled webhook traffic the demo replays (until the simulator exists).

Three parcels over the last four days, told the way their sources really tell them:

* a USPS parcel tracked through EasyPost, with a failed delivery attempt and a
  re-attempt — EasyPost re-sends the whole history with every update, one update is
  delivered twice and one arrives after a newer one;
* a UPS parcel tracked through EasyPost, held up by weather on the way;
* a FedEx parcel whose warehouse reports "packed" and "handed to the carrier" through
  the generic source, while EasyPost reports FedEx's own scans: two sources, one timeline.

Around them, what a real endpoint also receives: an EasyPost event that carries no
tracking, a warehouse code outside the documented vocabulary, a signed payload that does
not fit the generic schema (kept and quarantined), and a forged delivery (refused 401).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from infra.formats.easypost import Scan, tracker_event
from infra.formats.generic import generic_body, generic_event
from shared.sources import EASYPOST_SIGNATURE, GENERIC_SIGNATURE

OHIO = ZoneInfo("America/New_York")
DEMO_SECRETS = {"easypost": ["demo-easypost-sécret"], "generic": ["demo-warehouse-secret"]}


@dataclass(frozen=True)
class Delivery:
    source: str
    body: bytes
    label: str
    headers: dict[str, str] = field(default_factory=dict)
    expect: int = 202


def _easypost(body: bytes, label: str) -> Delivery:
    header = EASYPOST_SIGNATURE.sign(body, DEMO_SECRETS["easypost"][0])
    return Delivery("easypost", body, label, {"x-hmac-signature": header, "content-type": "application/json"})


def _generic(body: bytes, label: str, now: datetime, expect: int = 202) -> Delivery:
    header = GENERIC_SIGNATURE.sign(body, DEMO_SECRETS["generic"][0], int(now.timestamp()))
    return Delivery("generic", body, label, {"shiplight-signature": header, "content-type": "application/json"}, expect)


def deliveries(now: datetime) -> list[Delivery]:
    """Every delivery of the demo, in sending order, timed relative to ``now``."""
    day = now.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=4)

    def at(days: int, hour: int, minute: int = 0) -> datetime:
        return day + timedelta(days=days, hours=hour, minutes=minute)

    usps_scans = [
        Scan(
            at(0, 14, 5),
            "pre_transit",
            "label_created",
            "Shipping Label Created, USPS Awaiting Item",
            "BROOKLYN",
            "NY",
            "11201",
        ),
        Scan(
            at(0, 22, 40),
            "in_transit",
            "received_at_origin_facility",
            "USPS in possession of item",
            "BROOKLYN",
            "NY",
            "11201",
        ),
        Scan(
            at(1, 3, 10),
            "in_transit",
            "departed_origin_facility",
            "Departed USPS Regional Facility",
            "BROOKLYN NY DISTRIBUTION CENTER",
            "NY",
            "11256",
        ),
        Scan(
            at(1, 19, 55),
            "in_transit",
            "arrived_at_facility",
            "Arrived at USPS Regional Facility",
            "AUSTIN TX DISTRIBUTION CENTER",
            "TX",
            "78710",
        ),
        Scan(at(2, 13, 2), "out_for_delivery", "out_for_delivery", "Out for Delivery", "AUSTIN", "TX", "78701"),
        Scan(
            at(2, 19, 41),
            "failure",
            "delivery_exception",
            "Notice Left (No Authorized Recipient Available)",
            "AUSTIN",
            "TX",
            "78701",
        ),
        Scan(at(3, 13, 15), "out_for_delivery", "out_for_delivery", "Out for Delivery", "AUSTIN", "TX", "78701"),
        Scan(at(3, 18, 7), "delivered", "unknown", "Delivered, In/At Mailbox", "AUSTIN", "TX", "78701"),
    ]

    def usps(upto: int, n: int) -> bytes:
        return tracker_event(
            "9400111899223344556677",
            "USPS",
            usps_scans[:upto],
            event_id=f"evt_usps_{n}",
            tracker_id="trk_usps_demo",
            created=n == 1,
        )

    ups_scans = [
        Scan(
            at(0, 9, 30),
            "pre_transit",
            "label_created",
            "Shipper created a label, UPS has not received the package yet.",
            "SEATTLE",
            "WA",
            "98101",
            carrier_code="MP",
        ),
        Scan(
            at(0, 23, 12),
            "in_transit",
            "received_at_origin_facility",
            "Picked up",
            "SEATTLE",
            "WA",
            "98108",
            carrier_code="OR",
        ),
        Scan(
            at(1, 20, 45),
            "in_transit",
            "arrived_at_facility",
            "Arrived at Facility",
            "LOUISVILLE",
            "KY",
            "40209",
            carrier_code="AR",
        ),
        Scan(
            at(2, 11, 0),
            "in_transit",
            "weather_delay",
            "A weather emergency is preventing delivery. We will deliver your package as soon as conditions permit.",
            "LOUISVILLE",
            "KY",
            "40209",
            carrier_code="WE",
        ),
        Scan(
            at(3, 2, 30),
            "in_transit",
            "departed_facility",
            "Departed from Facility",
            "LOUISVILLE",
            "KY",
            "40209",
            carrier_code="DP",
        ),
        Scan(
            at(3, 21, 10),
            "in_transit",
            "arrived_at_facility",
            "Arrived at Facility",
            "COMMERCE CITY",
            "CO",
            "80022",
            carrier_code="AR",
        ),
    ]

    def ups(upto: int, n: int) -> bytes:
        return tracker_event(
            "1Z999AA10123456784",
            "UPS",
            ups_scans[:upto],
            event_id=f"evt_ups_{n}",
            tracker_id="trk_ups_demo",
            created=n == 1,
        )

    fedex_scans = [
        Scan(
            at(1, 15, 0),
            "pre_transit",
            "label_created",
            "Shipment information sent to FedEx",
            "COLUMBUS",
            "OH",
            "43215",
            carrier_code="OC",
        ),
        Scan(
            at(2, 0, 5),
            "in_transit",
            "arrived_at_facility",
            "Arrived at FedEx location",
            "GROVEPORT",
            "OH",
            "43125",
            carrier_code="AR",
        ),
        Scan(
            at(2, 18, 30),
            "in_transit",
            "departed_facility",
            "Departed FedEx location",
            "GROVEPORT",
            "OH",
            "43125",
            carrier_code="DP",
        ),
        Scan(
            at(3, 14, 2),
            "out_for_delivery",
            "out_for_delivery",
            "On FedEx vehicle for delivery",
            "PITTSBURGH",
            "PA",
            "15222",
            carrier_code="OD",
        ),
        Scan(
            at(3, 19, 48),
            "delivered",
            "unknown",
            "Delivered, Left at front door",
            "PITTSBURGH",
            "PA",
            "15222",
            carrier_code="DL",
        ),
    ]

    def fedex(upto: int, n: int) -> bytes:
        return tracker_event(
            "776094337676",
            "FedEx",
            fedex_scans[:upto],
            event_id=f"evt_fedex_{n}",
            tracker_id="trk_fedex_demo",
            created=n == 1,
        )

    warehouse = [
        generic_event(
            carrier="fedex",
            tracking_number="776094337676",
            code="packed",
            occurred_at=at(1, 14, 12).astimezone(OHIO),
            city="Columbus",
            region="OH",
            postal_code="43215",
            country="US",
            description="Packed at Columbus DC",
            reference="wms-88121",
        ),
        generic_event(
            carrier="fedex",
            tracking_number="776094337676",
            code="handed_to_carrier",
            occurred_at=at(1, 21, 40).astimezone(OHIO),
            city="Columbus",
            region="OH",
            postal_code="43215",
            country="US",
            description="Loaded on FedEx Ground trailer 5521",
            reference="wms-88157",
        ),
    ]
    quality_check = generic_event(
        carrier="fedex",
        tracking_number="776094337676",
        code="quality_check",
        occurred_at=at(1, 13, 50).astimezone(OHIO),
        description="Passed QC at station 4",
    )
    off_schema = json.dumps(
        {
            "schema": "shiplight.generic.v1",
            "events": [
                {"carrier": "fedex", "tracking_number": "776094337676", "code": "packed", "occurred_at": "yesterday"}
            ],
        }
    ).encode()
    batch_event = json.dumps(
        {
            "object": "Event",
            "id": "evt_batch_1",
            "description": "batch.created",
            "result": {"object": "Batch", "id": "batch_1"},
        },
        separators=(",", ":"),
    ).encode()
    forged = usps(8, 99)

    return [
        _easypost(usps(1, 1), "USPS 9400…6677: tracker created"),
        _easypost(ups(1, 1), "UPS 1Z999…784: tracker created"),
        _easypost(usps(2, 2), "USPS: accepted at Brooklyn"),
        _generic(generic_body([quality_check, warehouse[0]], sender="columbus-dc"), "warehouse: QC + packed", now),
        _easypost(ups(2, 2), "UPS: picked up in Seattle"),
        _easypost(usps(3, 3), "USPS: departed Brooklyn"),
        _easypost(usps(3, 3), "USPS: departed Brooklyn (delivered twice)"),
        _easypost(fedex(1, 1), "FedEx 7760…7676: label created"),
        _generic(generic_body([warehouse[1]], sender="columbus-dc"), "warehouse: handed to FedEx", now),
        _easypost(ups(3, 3), "UPS: arrived Louisville"),
        _easypost(usps(5, 5), "USPS: out for delivery in Austin"),
        _easypost(usps(4, 4), "USPS: arrived Austin (after a newer update)"),
        _easypost(fedex(3, 3), "FedEx: through Groveport"),
        _easypost(ups(4, 4), "UPS: weather delay"),
        _easypost(usps(6, 6), "USPS: delivery attempt failed"),
        _easypost(batch_event, "EasyPost batch.created (no tracking)"),
        _generic(off_schema, "warehouse: payload off the schema (quarantined)", now),
        _easypost(fedex(5, 5), "FedEx: out for delivery and delivered"),
        _easypost(ups(6, 6), "UPS: on to Denver"),
        _easypost(usps(7, 7), "USPS: out for delivery again"),
        _easypost(usps(8, 8), "USPS: delivered"),
        Delivery(
            "easypost",
            forged,
            "forged USPS delivery (bad signature)",
            {"x-hmac-signature": "hmac-sha256-hex=" + "0" * 64, "content-type": "application/json"},
            401,
        ),
    ]
