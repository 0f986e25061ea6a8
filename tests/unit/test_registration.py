"""Registration on in-memory fakes: idempotency, attaching to a shipment the carrier's first
event created, the race with that event, legs, announcements, and the merchant's views."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from shared import clock
from shared.clock import FrozenClock
from shared.dal.shipments import Commit
from shared.errors import DependencyUnavailable, InvalidInput, NotFound
from shared.logic.api.merchant import MerchantServices, tracking_url
from shared.logic.ingest.process import Staged, commit_batch
from shared.logic.merchant.registration import (
    REGISTERED,
    parse_registration,
    register_from_body,
)
from shared.logic.merchant.shipments import get_shipment, list_shipments
from shared.logic.shipments.chain import CommitOptions
from shared.models.canonical import CanonicalEvent, IncidentType, Milestone
from shared.models.shipment import Shipment, TrackingKey
from tests.builders import T0, scan
from tests.fakes import InMemoryOrderIndex, InMemoryShipmentStore, RecordingPublisher

UPS = TrackingKey("ups", "1Z4Y0A190348261953")
USPS = TrackingKey("usps", "92419900000033499522966220")
ORIGIN = "https://api.example.test"


def registration(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "carrier": "UPS",
        "tracking_number": UPS.tracking_number,
        "order_id": "ORD-1001",
        "origin": {"country": "US", "region": "KY"},
        "destination": {"country": "US", "region": "IL", "city": "Chicago", "postal_code": "60601"},
        "customer": {"name": "Ann Lee", "email": "ann@example.com", "phone": "+13125550100"},
        "locale": "en-US",
        "time_zone": "America/Chicago",
        "promised_delivery_date": "2026-11-06",
        "label_created_at": "2026-11-02T08:00:00Z",
    }
    body.update(changes)
    return body


class Merchant:
    """The merchant API's logic over in-memory fakes, on a frozen clock."""

    def __init__(self, poll_sources: frozenset[str] = frozenset({"ups", "usps"})) -> None:
        self.store = InMemoryShipmentStore()
        self.publisher = RecordingPublisher()
        self.clock = FrozenClock(T0)
        self.options = CommitOptions(poll_sources=poll_sources)
        self.services = MerchantServices(
            store=self.store,
            orders=InMemoryOrderIndex(self.store),
            publisher=self.publisher,
            options=self.options,
        )

    def register(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with clock.use_clock(self.clock):
            status, answer = register_from_body(json.dumps(body), self.services, origin=ORIGIN)
        return status, answer.model_dump(mode="json")

    def carrier_event(self, *events: CanonicalEvent, legs: list[tuple[TrackingKey, TrackingKey]] | None = None) -> None:
        """What the event_processor does with a carrier's webhook."""
        with clock.use_clock(self.clock):
            outcome = commit_batch(
                [Staged(message_id="m1", source="ups", events=list(events), legs=legs or [])],
                store=self.store,
                publisher=self.publisher,
                options=self.options,
            )
        assert not outcome.failed_message_ids

    def only_shipment(self) -> Shipment:
        live = [s for s in self.store.shipments.values() if not s.merged_into]
        assert len(live) == 1, live
        return live[0]

    def announced(self, detail_type: str = REGISTERED) -> list[dict[str, Any]]:
        return [e.detail for e in self.publisher.published if e.detail_type == detail_type]


@pytest.fixture
def merchant() -> Merchant:
    return Merchant()


# ------------------------------------------------------------------------------ idempotency


def test_a_new_parcel_is_registered_once_and_announced(merchant: Merchant) -> None:
    # When a merchant registers a parcel no carrier has reported yet
    status, answer = merchant.register(registration())
    # Then a shipment exists with an unguessable token and a link to its page
    assert status == 201
    assert answer["created"] is True
    shipment = merchant.only_shipment()
    assert answer["shipment_id"] == shipment.shipment_id
    assert answer["tracking_token"] == shipment.public_token
    assert len(shipment.public_token) >= 22  # 22 URL-safe characters carry 132 bits
    assert answer["tracking_url"] == f"{ORIGIN}/t/{shipment.public_token}"
    assert (answer["carrier"], answer["tracking_number"]) == UPS
    # and the record carries what the silence rules and notifications need
    assert shipment.order_id == "ORD-1001"
    assert shipment.lane == ("US", "US")
    assert shipment.cross_border is False
    assert shipment.label_created_at == T0 - timedelta(hours=4)
    assert shipment.promised_delivery_date is not None
    assert shipment.customer is not None
    assert shipment.customer.email == "ann@example.com"
    assert shipment.poll_source == "ups"  # the poller will ask UPS for the first scan
    # and the merchant's bus heard of it once, without the customer's contact
    (detail,) = merchant.announced()
    assert detail["sequence"] == 1
    assert detail["first_registration"] is True
    assert detail["order_id"] == "ORD-1001"
    assert detail["state"]["destination_country"] == "US"
    assert "ann@example.com" not in json.dumps(detail)
    assert "+13125550100" not in json.dumps(detail)
    assert merchant.store.outbox.get(shipment.shipment_id, {}) == {}  # published, then forgotten


def test_a_retried_registration_answers_the_same_shipment_and_writes_nothing(merchant: Merchant) -> None:
    # Given a registered parcel
    _, first = merchant.register(registration())
    commits = merchant.store.commits
    # When the same registration arrives again (a client retry)
    status, again = merchant.register(registration())
    # Then the answer is the same shipment and token, nothing is written or announced again
    assert status == 200
    assert again["created"] is False
    assert (again["shipment_id"], again["tracking_token"]) == (first["shipment_id"], first["tracking_token"])
    assert merchant.store.commits == commits
    assert len(merchant.announced()) == 1


def test_a_registration_with_other_data_updates_the_shipment(merchant: Merchant) -> None:
    # Given a registered parcel
    _, first = merchant.register(registration())
    # When the merchant registers it again with another destination and no customer contact
    status, again = merchant.register(
        registration(order_id="ORD-1002", destination={"country": "CA", "region": "ON"}, customer=None)
    )
    # Then the same shipment now holds the new data, announced as a second registration
    assert status == 200
    assert again["shipment_id"] == first["shipment_id"]
    shipment = merchant.only_shipment()
    assert shipment.order_id == "ORD-1002"
    assert shipment.cross_border is True
    assert shipment.customer is None
    assert shipment.registered_at == T0  # when it was first registered
    first_detail, second = merchant.announced()
    assert (second["sequence"], second["first_registration"]) == (2, False)


# ------------------------------------------------------------------------------ the first scan


def test_a_registration_attaches_to_the_shipment_the_first_scan_created(merchant: Merchant) -> None:
    # Given a parcel the carrier reported before the merchant registered it
    merchant.carrier_event(scan(Milestone.PICKED_UP, 1))
    created_by_scan = merchant.only_shipment()
    # When the merchant registers it
    merchant.clock.advance(timedelta(hours=2))
    status, answer = merchant.register(registration())
    # Then it is that shipment (same id, same public token), now with the merchant's data
    assert status == 200
    assert answer["created"] is False
    assert answer["shipment_id"] == created_by_scan.shipment_id
    assert answer["tracking_token"] == created_by_scan.public_token
    shipment = merchant.only_shipment()
    assert shipment.status is Milestone.PICKED_UP
    assert shipment.order_id == "ORD-1001"
    assert shipment.registered_at == T0 + timedelta(hours=2)
    # and the announcement continues the shipment's sequence after its milestone
    (milestone,) = merchant.announced("Shipment Milestone Reached")
    (registered,) = merchant.announced()
    assert registered["sequence"] == milestone["sequence"] + 1
    assert registered["state"]["status"] == "picked_up"


def test_the_first_scan_after_registration_joins_the_registered_shipment(merchant: Merchant) -> None:
    # Given a registered parcel
    _, answer = merchant.register(registration())
    # When its first scan arrives
    merchant.carrier_event(scan(Milestone.PICKED_UP, 1))
    # Then the scan is on the registered shipment, which keeps the merchant's data
    shipment = merchant.only_shipment()
    assert shipment.shipment_id == answer["shipment_id"]
    assert shipment.status is Milestone.PICKED_UP
    assert shipment.order_id == "ORD-1001"
    assert shipment.customer is not None
    (milestone,) = merchant.announced("Shipment Milestone Reached")
    assert milestone["sequence"] == 2
    assert milestone["order_id"] == "ORD-1001"


class RacingStore(InMemoryShipmentStore):
    """A store where ``meanwhile`` runs just before the first commit ``when`` picks: the
    other writer wins the race between this writer's read and its write."""

    def __init__(self) -> None:
        super().__init__()
        self.when: Any = None
        self.meanwhile: Any = None

    def commit(self, commit: Commit) -> None:
        if self.when is not None and self.when(commit):
            self.when, other = None, self.meanwhile
            other()
        super().commit(commit)


def test_a_registration_racing_the_first_scan_makes_one_shipment() -> None:
    # Given a registration that read "no such parcel" and is about to create it
    merchant = Merchant()
    store = RacingStore()
    merchant.store = store
    merchant.services.store = store
    merchant.services.orders = InMemoryOrderIndex(store)
    store.when = lambda commit: commit.expected_version is None and commit.shipment.first_source == "registration"
    # When the parcel's first scan creates the shipment in between
    store.meanwhile = lambda: merchant.carrier_event(scan(Milestone.PICKED_UP, 1))
    status, answer = merchant.register(registration())
    assert store.when is None  # the scan did come in between
    # Then the registration's write fails, re-reads and attaches: one shipment, both parts on it
    shipment = merchant.only_shipment()
    assert len(store.shipments) == 1
    assert (status, answer["created"]) == (200, False)
    assert answer["shipment_id"] == shipment.shipment_id
    assert shipment.status is Milestone.PICKED_UP
    assert shipment.order_id == "ORD-1001"
    assert store.tracking == {UPS: shipment.shipment_id}


def test_the_first_scan_racing_a_registration_makes_one_shipment() -> None:
    # Given the processor about to create a shipment for a parcel's first scan
    merchant = Merchant()
    store = RacingStore()
    merchant.store = store
    merchant.services.store = store
    merchant.services.orders = InMemoryOrderIndex(store)
    store.when = lambda commit: commit.expected_version is None and commit.shipment.first_source != "registration"
    answers: list[dict[str, Any]] = []
    # When the merchant's registration creates it in between
    store.meanwhile = lambda: answers.append(merchant.register(registration())[1])
    merchant.carrier_event(scan(Milestone.PICKED_UP, 1))
    assert store.when is None  # the registration did come in between
    # Then the processor re-reads and adds its scan to the registered shipment
    shipment = merchant.only_shipment()
    assert len(store.shipments) == 1
    assert answers[0]["created"] is True
    assert answers[0]["shipment_id"] == shipment.shipment_id
    assert shipment.status is Milestone.PICKED_UP
    assert shipment.registered_at is not None


# ------------------------------------------------------------------------------ legs


def test_registering_both_legs_merges_the_shipments_each_carrier_created(merchant: Merchant) -> None:
    # Given each carrier's scans created a shipment of its own (nobody knew they were one parcel)
    merchant.carrier_event(scan(Milestone.PICKED_UP, 1))
    merchant.clock.advance(timedelta(hours=1))
    merchant.carrier_event(scan(Milestone.OUT_FOR_DELIVERY, 40, carrier="usps", tracking_number=USPS.tracking_number))
    assert len(merchant.store.shipments) == 2
    older = min(merchant.store.shipments.values(), key=lambda s: s.created_at)
    # When the merchant registers the parcel with its last-mile number
    status, answer = merchant.register(
        registration(last_mile={"carrier": "USPS", "tracking_number": USPS.tracking_number})
    )
    # Then one shipment holds both timelines and both numbers, the parcel's own first
    shipment = merchant.only_shipment()
    assert status == 200
    assert answer["shipment_id"] == shipment.shipment_id == older.shipment_id
    assert shipment.keys == [UPS, USPS]
    assert shipment.status is Milestone.OUT_FOR_DELIVERY
    assert shipment.event_count == 2
    assert shipment.order_id == "ORD-1001"
    assert merchant.store.resolve([UPS, USPS]) == {UPS: shipment.shipment_id, USPS: shipment.shipment_id}


def test_a_new_parcel_registered_with_both_legs_claims_both_numbers(merchant: Merchant) -> None:
    status, answer = merchant.register(
        registration(last_mile={"carrier": "usps", "tracking_number": USPS.tracking_number})
    )
    assert status == 201
    merchant.carrier_event(scan(Milestone.OUT_FOR_DELIVERY, 40, carrier="usps", tracking_number=USPS.tracking_number))
    shipment = merchant.only_shipment()
    assert shipment.shipment_id == answer["shipment_id"]
    assert shipment.keys == [UPS, USPS]
    assert shipment.status is Milestone.OUT_FOR_DELIVERY


def test_a_registered_shipment_merged_into_an_older_one_keeps_its_registration(merchant: Merchant) -> None:
    # Given the last-mile scans created a shipment, then the merchant registered the parcel's own number
    merchant.carrier_event(scan(Milestone.ARRIVED_HUB, 30, carrier="usps", tracking_number=USPS.tracking_number))
    merchant.clock.advance(timedelta(hours=1))
    _, answer = merchant.register(registration())
    # When the carrier reports the handover (a leg link), merging the younger registered shipment
    merchant.carrier_event(scan(Milestone.HANDED_TO_LAST_MILE, 29), legs=[(UPS, USPS)])
    # Then the surviving shipment carries the registration, and the registered id still answers
    shipment = merchant.only_shipment()
    assert shipment.shipment_id != answer["shipment_id"]
    assert shipment.order_id == "ORD-1001"
    assert shipment.customer is not None
    view = get_shipment(answer["shipment_id"], merchant.services, origin=ORIGIN)
    assert view.shipment_id == shipment.shipment_id
    page = list_shipments({"order_id": "ORD-1001"}, merchant.services, origin=ORIGIN)
    assert [v.shipment_id for v in page.shipments] == [shipment.shipment_id]


# ------------------------------------------------------------------------------ announcements


def test_an_announcement_the_bus_refused_is_sent_by_the_retry(merchant: Merchant) -> None:
    # Given the bus refuses the first announcement
    merchant.publisher.reject_next = 1
    with pytest.raises(DependencyUnavailable):
        merchant.register(registration())
    shipment = merchant.only_shipment()
    assert len(merchant.store.outbox[shipment.shipment_id]) == 1  # kept, not lost
    # When the client sends the same request again
    status, answer = merchant.register(registration())
    # Then the same shipment is answered and its announcement goes out once
    assert (status, answer["shipment_id"]) == (200, shipment.shipment_id)
    assert [d["sequence"] for d in merchant.announced()] == [1]
    assert merchant.store.outbox[shipment.shipment_id] == {}


# ------------------------------------------------------------------------------ views


def test_the_shipment_view_holds_timeline_registration_and_link(merchant: Merchant) -> None:
    _, answer = merchant.register(registration())
    merchant.carrier_event(scan(Milestone.PICKED_UP, 1), scan(Milestone.ARRIVED_HUB, 9))
    view = get_shipment(answer["shipment_id"], merchant.services, origin=ORIGIN)
    assert view.status is Milestone.ARRIVED_HUB
    assert [e.milestone for e in view.events] == [Milestone.ARRIVED_HUB, Milestone.PICKED_UP]  # newest first
    assert view.events[0].source == "ups"
    assert view.registration is not None
    assert view.registration.destination is not None
    assert view.registration.destination.postal_code == "60601"
    assert view.tracking_url == f"{ORIGIN}/t/{answer['tracking_token']}"
    assert view.exceptions == []
    assert view.eta is None


def test_a_shipment_only_carriers_spoke_of_has_no_registration(merchant: Merchant) -> None:
    merchant.carrier_event(scan(Milestone.PICKED_UP, 1))
    view = get_shipment(merchant.only_shipment().shipment_id, merchant.services, origin=ORIGIN)
    assert view.registration is None
    assert view.order_id is None


@pytest.mark.parametrize(
    "shipment_id",
    ["shp_000000000000000000000000", "shp_nope", "1Z4Y0A190348261953", "ORD-1001", "%00", "a" * 500, ""],
)
def test_an_unknown_id_is_one_not_found_whatever_it_looks_like(merchant: Merchant, shipment_id: str) -> None:
    merchant.register(registration())
    with pytest.raises(NotFound) as missing:
        get_shipment(shipment_id, merchant.services, origin=ORIGIN)
    assert missing.value.detail == "no shipment with this id"


def test_an_order_lists_its_shipments_page_by_page(merchant: Merchant) -> None:
    # Given an order shipped in three parcels, and another order
    ids = []
    for number in ("1Z0000000000000001", "1Z0000000000000002", "1Z0000000000000003"):
        merchant.clock.advance(timedelta(minutes=1))
        ids.append(merchant.register(registration(tracking_number=number))[1]["shipment_id"])
    merchant.register(registration(tracking_number="1Z0000000000000009", order_id="ORD-2"))
    # When the merchant asks for the order two at a time
    first = list_shipments({"order_id": "ORD-1001", "limit": "2"}, merchant.services, origin=ORIGIN)
    assert first.next_cursor is not None
    second = list_shipments(
        {"order_id": "ORD-1001", "limit": "2", "cursor": first.next_cursor}, merchant.services, origin=ORIGIN
    )
    # Then every parcel of the order comes once, oldest first, and the last page says so
    assert [v.shipment_id for v in first.shipments + second.shipments] == ids
    assert second.next_cursor is None
    assert list_shipments({"order_id": "ORD-404"}, merchant.services, origin=ORIGIN).shipments == []


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ({}, "order_id"),
        ({"order_id": " "}, "order_id"),
        ({"order_id": "x" * 129}, "order_id"),
        ({"order_id": "A", "limit": "0"}, "limit"),
        ({"order_id": "A", "limit": "51"}, "limit"),
        ({"order_id": "A", "limit": "ten"}, "limit"),
        ({"order_id": "A", "cursor": "not-a-cursor"}, "cursor"),
        ({"order_id": "A", "cursor": "WyJ4IiwieSJd"}, "cursor"),  # base64 of ["x","y"]
        ({"order_id": "A", "status": "delivered"}, "status"),
    ],
)
def test_bad_listing_parameters_are_named(merchant: Merchant, query: dict[str, str], named: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        list_shipments(query, merchant.services, origin=ORIGIN)
    assert refused.value.detail.startswith(f"{named}: ")


@pytest.mark.parametrize(
    ("base", "expected"),
    [
        ("", "https://api.example.test/t/TOKEN"),
        ("https://track.shop.example", "https://track.shop.example/t/TOKEN"),
        ("https://track.shop.example/", "https://track.shop.example/t/TOKEN"),
        ("https://shop.example/track?t={token}", "https://shop.example/track?t=TOKEN"),
    ],
)
def test_tracking_links_follow_the_configured_base(base: str, expected: str) -> None:
    assert tracking_url("TOKEN", public_base_url=base, origin=ORIGIN) == expected


def test_the_label_time_is_checked_against_the_shared_clock() -> None:
    with pytest.raises(InvalidInput):
        parse_registration(json.dumps(registration(label_created_at="2026-11-04T12:00:00Z")), now=T0)


def test_a_registration_arms_the_silence_rules_from_its_label_and_lane(merchant: Merchant) -> None:
    # Given a label created at T0 - 4 h, registered at T0
    merchant.register(registration())
    shipment = merchant.only_shipment()
    # Then the no-first-scan rule counts from the label, and the checker looks again shortly
    assert shipment.silence_type is IncidentType.NO_FIRST_SCAN
    assert shipment.silence_anchor == T0 - timedelta(hours=4)
    assert shipment.silence_due_at is not None and shipment.silence_due_at > T0
    assert shipment.outbox_pending_since == T0
    assert shipment.timer_due_at is not None and shipment.timer_due_at <= T0 + timedelta(minutes=2)
    first_due = shipment.silence_due_at
    # When the merchant corrects the label time a day later
    merchant.register(registration(label_created_at="2026-11-03T08:00:00Z"))
    # Then the deadline moves with it
    moved = merchant.only_shipment()
    assert moved.silence_anchor == T0 + timedelta(hours=20)
    assert moved.silence_due_at is not None and moved.silence_due_at > first_due


def test_the_view_lists_open_exceptions_with_their_playbook(merchant: Merchant) -> None:
    # Given a registered parcel the carrier reports an address problem for
    _, answer = merchant.register(registration())
    merchant.carrier_event(
        scan(Milestone.PICKED_UP, 1),
        scan(None, 20, exception=IncidentType.ADDRESS_ISSUE, raw_code="address"),
    )
    # When the merchant reads the shipment
    with clock.use_clock(merchant.clock):
        view = get_shipment(answer["shipment_id"], merchant.services, origin=ORIGIN)
    # Then the open exception is there with who acts and what to do
    (row,) = view.exceptions
    assert row.type is IncidentType.ADDRESS_ISSUE
    assert row.shipment_id == answer["shipment_id"]
    assert row.owner.value == "support"
    assert row.next_action
    assert row.order_id == "ORD-1001"
