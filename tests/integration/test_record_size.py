"""What a shipment's record costs to write: the record every change and every poll rewrites stays
within one DynamoDB write unit (1 KB), however long the merchant's addresses, and what left it
(the registration, the last scan) still reads back whole — for records written before too."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from infra.costs import item_bytes
from infra.formats.generic import generic_body, generic_event
from shared import clock
from shared.clock import FrozenClock
from shared.dal.apikeys import DynamoApiKeyStore
from shared.dal.codec import encode_item
from shared.dal.items import event_item, shipment_item, tracking_item
from shared.dal.shipments import DynamoShipmentStore
from shared.logic.api.auth import create_api_key
from shared.models.canonical import Milestone
from shared.models.incidents import ScanSummary
from shared.models.parties import Address, CustomerContact
from shared.models.shipment import Shipment, TrackingKey
from tests.builders import scan
from tests.integration.conftest import Deployed

NOW = datetime(2026, 11, 30, 15, 0, tzinfo=UTC)
UPS = TrackingKey("ups", "1Z4Y0A190348261953")
USPS = TrackingKey("usps", "9400111899223197428490")
ONE_WRITE_UNIT = 1024  # bytes, by DynamoDB's item-size rules (attribute names and values)
LONG_ORIGIN = {"country": "CA", "region": "Quebec", "city": "Saint-Jean-sur-Richelieu", "postal_code": "J3B 6Z5"}
LONG_DESTINATION = {
    "country": "GB",
    "region": "Isle of Anglesey",
    "city": "Llanfairpwllgwyngyllgogerychwyrndrobwllllantysiliogogogoch",
    "postal_code": "LL61 5UJ",
}
CUSTOMER = {
    "name": "Maria Fernanda Oyarzabal-Etxeberria",
    "email": "maria.fernanda.oyarzabal-etxeberria@example-merchant.com",
    "phone": "+447700900123",
}


@pytest.fixture(autouse=True)
def frozen_clock() -> FrozenClock:
    frozen = FrozenClock(NOW)
    clock.install(frozen)
    return frozen


def merchant_call(deployed: Deployed, method: str, path: str, body: Any = None) -> Any:
    _, key = create_api_key(DynamoApiKeyStore(deployed.stack.ref("ApiKeysTable")), label="test", now=clock.now())
    headers = {"authorization": f"Bearer {key}", "content-type": "application/json", "host": "api.test"}
    answer = deployed.call(method, path, body=json.dumps(body).encode() if body is not None else b"", headers=headers)
    assert answer.status in (200, 201), answer.body
    return answer.body


def send(deployed: Deployed, key: TrackingKey, *scans: tuple[str, datetime], exception: str | None = None) -> None:
    body = generic_body(
        [
            generic_event(
                carrier=key.carrier,
                tracking_number=key.tracking_number,
                code=code,
                occurred_at=at,
                city="Saint-Jean-sur-Richelieu",
                region="QC",
                postal_code="J3B 6Z5",
                country="CA",
                description="Scan at the carrier's facility, sorted for onward transport",
                exception=exception,
            )
            for code, at in scans
        ]
    )
    assert deployed.post_webhook("generic", body).status == 202
    deployed.drain()


def record_item(deployed: Deployed, shipment_id: str) -> dict[str, Any]:
    (record,) = [
        item for item in deployed.table_items() if item["pk"]["S"] == f"SHP#{shipment_id}" and item["sk"]["S"] == "META"
    ]
    return record


def test_a_moving_registered_parcel_with_long_addresses_keeps_a_record_of_one_write_unit(deployed: Deployed) -> None:
    # Given a parcel registered with long addresses, a full customer contact and a last-mile leg
    registered = merchant_call(
        deployed,
        "POST",
        "/v1/shipments",
        {
            "carrier": "ups",
            "tracking_number": UPS.tracking_number,
            "last_mile": {"carrier": "usps", "tracking_number": USPS.tracking_number},
            "order_id": "ORD-2026-11-30-000123456",
            "origin": LONG_ORIGIN,
            "destination": LONG_DESTINATION,
            "customer": CUSTOMER,
            "locale": "en-GB",
            "time_zone": "Europe/London",
            "promised_delivery_date": "2026-12-09",
            "label_created_at": "2026-11-30T09:00:00Z",
        },
    )
    shipment_id = registered["shipment_id"]
    # When it moves on both legs, with a problem open, is polled (its answer digested) and its
    # silence deadline armed
    send(deployed, UPS, ("picked_up", NOW - timedelta(hours=5)), ("departed_origin", NOW - timedelta(hours=3)))
    send(deployed, USPS, ("handed_to_last_mile", NOW - timedelta(hours=2)))
    send(deployed, UPS, ("note", NOW - timedelta(hours=1)), exception="address_issue")
    store = DynamoShipmentStore(deployed.stack.ref("ShipmentsTable"))
    due = [d for shard in ("POLL#0", "POLL#1") for d in store.due_for_poll(shard, NOW + timedelta(days=30))]
    assert [d.shipment_id for d in due] == [shipment_id]
    assert store.rearm_poll(due[0], polled_at=NOW, next_due=NOW + timedelta(hours=4), digest="f" * 32)

    # Then its record, rewritten by each of these, is at most one write unit
    record = record_item(deployed, shipment_id)
    assert {"poll_due_at", "poll_digest", "timer_due_at", "open_exceptions", "tracking_keys"} <= record.keys()
    assert item_bytes(record) <= ONE_WRITE_UNIT
    # and the merchant still reads the whole registration and every scan back
    view = merchant_call(deployed, "GET", f"/v1/shipments/{shipment_id}")
    assert view["registration"]["destination"]["city"] == LONG_DESTINATION["city"]
    assert view["registration"]["customer"] == CUSTOMER
    assert view["registration"]["promised_delivery_date"] == "2026-12-09"
    assert view["status"] == "handed_to_last_mile"
    assert len(view["events"]) == 4
    # and the open problem carries the shipment's last scan
    (problem,) = view["exceptions"]
    assert problem["type"] == "address_issue" and problem["status"] == "open"
    assert problem["last_scan"]["occurred_at"] == "2026-11-30T14:00:00Z"


def test_a_record_written_before_the_registration_moved_off_it_keeps_its_registration(deployed: Deployed) -> None:
    # Given a record as earlier versions stored it: the registration and the last scan on the record
    table = deployed.stack.ref("ShipmentsTable")
    first = scan(Milestone.PICKED_UP, 1)
    old = Shipment(
        shipment_id="shp_0123456789abcdef01234567",
        carrier=UPS.carrier,
        tracking_number=UPS.tracking_number,
        public_token="Tok0123456789abcdefghij",
        created_at=first.occurred_at,
        updated_at=first.occurred_at,
        first_source="registration",
        order_id="ORD-OLD-1",
        status=Milestone.PICKED_UP,
        status_since=first.occurred_at,
        last_event_at=first.occurred_at,
        event_count=1,
        version=3,
        tracking_keys=[str(UPS)],
        registered_at=first.occurred_at - timedelta(hours=1),
        origin=Address.model_validate(LONG_ORIGIN),
        destination=Address.model_validate(LONG_DESTINATION),
        customer=CustomerContact.model_validate(CUSTOMER),
        locale="en-GB",
        time_zone="Europe/London",
    )
    registration = {"registered_at", "origin", "destination", "customer", "locale", "time_zone"}
    legacy = {
        **shipment_item(old),
        **old.model_dump(mode="json", include=registration),
        "last_scan": ScanSummary.of(first).model_dump(mode="json"),
    }
    ddb = deployed.client("dynamodb")
    ddb.put_item(TableName=table, Item=encode_item(legacy))
    ddb.put_item(TableName=table, Item=encode_item(event_item(first, shipment=old, source="ups")))
    ddb.put_item(TableName=table, Item=encode_item(tracking_item(UPS, old.shipment_id, old.created_at)))
    store = DynamoShipmentStore(table)
    assert (loaded := store.load(old.shipment_id)) is not None
    assert loaded.shipment.customer == old.customer

    # When the parcel moves on (the processor rewrites the record)
    send(deployed, UPS, ("arrived_hub", NOW - timedelta(hours=1)))

    # Then the record no longer holds the registration, and the shipment still has all of it
    record = record_item(deployed, old.shipment_id)
    assert "customer" not in record and "last_scan" not in record
    after = store.load(old.shipment_id)
    assert after is not None and after.shipment.version == 4
    assert after.shipment.status is Milestone.ARRIVED_HUB and after.shipment.event_count == 2
    for name in ("order_id", "registered_at", "origin", "destination", "customer", "locale", "time_zone"):
        assert getattr(after.shipment, name) == getattr(old, name), name
    assert after.shipment.last_scan is not None and after.shipment.last_scan.milestone is Milestone.ARRIVED_HUB
