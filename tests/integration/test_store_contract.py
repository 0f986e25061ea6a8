"""The in-memory fake and the DynamoDB store keep the same promises (so unit tests on the
fake say something true about production)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from moto import mock_aws

from infra.local.stack import deploy
from infra.local.template import Template
from shared.dal.shipments import Absorbed, Commit, DynamoShipmentStore, Reread
from shared.errors import Conflict
from shared.logic.ingest.process import ShipmentStore
from shared.logic.polling.poller import DueIndex
from shared.models.canonical import Milestone
from shared.models.parties import Address, CustomerContact
from shared.models.shipment import OutboxEntry, Shipment, StoredEvent, TrackingKey
from tests.builders import T0, scan
from tests.fakes import InMemoryShipmentStore

KEY = TrackingKey("ups", "1Z4Y0A190348261953")


@pytest.fixture(params=["fake", "dynamodb"])
def store(request: pytest.FixtureRequest) -> Iterator[ShipmentStore]:
    if request.param == "fake":
        yield InMemoryShipmentStore()
        return
    with mock_aws():
        stack = deploy(Template.load())
        yield DynamoShipmentStore(stack.ref("ShipmentsTable"))


def shipment(version: int = 1, **changes: object) -> Shipment:
    return Shipment(
        shipment_id="shp_contract",
        carrier=KEY.carrier,
        tracking_number=KEY.tracking_number,
        public_token="t" * 24,
        created_at=T0,
        updated_at=T0,
        first_source="generic",
        version=version,
        **changes,  # type: ignore[arg-type]
    )


def entry(sequence: int) -> OutboxEntry:
    return OutboxEntry(
        shipment_id="shp_contract",
        sequence=sequence,
        detail_type="Shipment Milestone Reached",
        detail={"sequence": sequence},
        created_at=T0,
    )


def test_create_load_update_and_drain(store: ShipmentStore) -> None:
    first = StoredEvent(scan(Milestone.PICKED_UP, 1), "generic")
    store.commit(Commit(shipment(1, status=Milestone.PICKED_UP), None, [first], [entry(1)], [KEY]))
    assert store.resolve([KEY, TrackingKey("ups", "1Z000")]) == {KEY: "shp_contract"}

    partition = store.load("shp_contract")
    assert partition is not None
    assert partition.shipment.status is Milestone.PICKED_UP
    assert [s.event for s in partition.events] == [first.event]
    assert partition.events[0].source == "generic"
    assert [e.sequence for e in partition.outbox] == [1]

    second = StoredEvent(scan(Milestone.ARRIVED_HUB, 9), "easypost")
    store.commit(Commit(shipment(2, status=Milestone.ARRIVED_HUB), 1, [second], [entry(2)]))
    store.delete_outbox([entry(1)])
    partition = store.load("shp_contract")
    assert partition is not None
    assert partition.shipment.version == 2
    assert {s.event.event_id for s in partition.events} == {first.event.event_id, second.event.event_id}
    assert [e.sequence for e in partition.outbox] == [2]
    assert store.load("shp_missing") is None


def test_conflicts_leave_nothing_half_written(store: ShipmentStore) -> None:
    event = StoredEvent(scan(Milestone.PICKED_UP, 1), "generic")
    store.commit(Commit(shipment(1), None, [event], [], [KEY]))
    later = StoredEvent(scan(Milestone.DELIVERED, 40), "generic")
    # a second creation of the same shipment
    with pytest.raises(Conflict):
        store.commit(Commit(shipment(1), None, [later], [], []))
    # a stale version
    with pytest.raises(Conflict):
        store.commit(Commit(shipment(3), 2, [later], [entry(1)]))
    # an event already stored
    with pytest.raises(Conflict):
        store.commit(Commit(shipment(2), 1, [event, later], [entry(1)]))
    # a tracking number another shipment owns
    other = shipment(1).model_copy(update={"shipment_id": "shp_other", "tracking_number": "1Z999"})
    with pytest.raises(Conflict):
        store.commit(Commit(other, None, [], [], [KEY]))
    partition = store.load("shp_contract")
    assert partition is not None
    assert partition.shipment.version == 1
    assert [s.event.event_id for s in partition.events] == [event.event.event_id]
    assert partition.outbox == []
    assert store.load("shp_other") is None


def test_events_load_in_instant_order_whatever_the_write_order(store: ShipmentStore) -> None:
    late, early = (
        StoredEvent(scan(Milestone.DELIVERED, 48), "easypost"),
        StoredEvent(scan(Milestone.PICKED_UP, 1), "generic"),
    )
    store.commit(Commit(shipment(1), None, [late], [], [KEY]))
    store.commit(Commit(shipment(2), 1, [early], []))
    partition = store.load("shp_contract")
    assert partition is not None
    ordered = sorted(partition.events, key=lambda s: s.event.sort_key)
    assert [s.event.occurred_at for s in ordered] == [T0 + timedelta(hours=1), T0 + timedelta(hours=48)]


def test_a_better_reading_replaces_the_stored_one_even_when_its_seconds_differ(store: ShipmentStore) -> None:
    floored = scan(Milestone.IN_TRANSIT, 5)
    exact = scan(Milestone.ARRIVED_HUB, 5).model_copy(
        update={"occurred_at": floored.occurred_at + timedelta(seconds=37)}
    )
    store.commit(Commit(shipment(1), None, [StoredEvent(floored, "easypost")], [], [KEY]))
    # a reading at the same instant keeps its key; one with other seconds moves to a new key
    same_instant = StoredEvent(scan(Milestone.ARRIVED_HUB, 5), "easypost")
    store.commit(Commit(shipment(2), 1, replace_events=[Reread(floored, same_instant)]))
    store.commit(Commit(shipment(3), 2, replace_events=[Reread(same_instant.event, StoredEvent(exact, "ups"))]))
    partition = store.load("shp_contract")
    assert partition is not None
    assert [(s.source, s.event.occurred_at, s.event.milestone) for s in partition.events] == [
        ("ups", exact.occurred_at, Milestone.ARRIVED_HUB)
    ]
    # replacing a reading that is no longer stored is refused
    with pytest.raises(Conflict):
        store.commit(Commit(shipment(4), 3, replace_events=[Reread(floored, StoredEvent(exact, "ups"))]))


def test_merging_repoints_numbers_and_marks_the_absorbed(store: ShipmentStore) -> None:
    usps = TrackingKey("usps", "92419900000033499522966220")
    store.commit(Commit(shipment(1), None, [StoredEvent(scan(Milestone.PICKED_UP, 1), "ups")], [], [KEY]))
    other = shipment(1).model_copy(
        update={
            "shipment_id": "shp_other",
            "carrier": "usps",
            "tracking_number": usps.tracking_number,
            "tracking_keys": [f"usps:{usps.tracking_number}"],
        }
    )
    store.commit(Commit(other, None, [], [], [usps]))
    merged_record = other.model_copy(update={"merged_into": "shp_contract", "version": 2})
    # a stale absorbed version is refused, and nothing moves
    with pytest.raises(Conflict):
        store.commit(Commit(shipment(2), 1, [], [], [], [Absorbed(merged_record, 5, [usps])]))
    assert store.resolve([usps]) == {usps: "shp_other"}
    store.commit(Commit(shipment(2), 1, [], [], [], [Absorbed(merged_record, 1, [usps])]))
    assert store.resolve([KEY, usps]) == {KEY: "shp_contract", usps: "shp_contract"}
    absorbed = store.load("shp_other")
    assert absorbed is not None and absorbed.shipment.merged_into == "shp_contract"


def test_the_due_index_lists_only_what_is_due_and_rearming_is_conditional(store: ShipmentStore) -> None:
    due_at = T0 + timedelta(hours=2)
    polled = shipment(
        1,
        status=Milestone.PICKED_UP,
        poll_source="ups",
        poll_number=KEY.tracking_number,
        poll_due_at=due_at,
        poll_shard="POLL#3",
    )
    store.commit(Commit(polled, None, [], [], [KEY]))
    quiet = shipment(1).model_copy(update={"shipment_id": "shp_quiet", "tracking_number": "1Z000"})
    store.commit(Commit(quiet, None, [], [], [TrackingKey("ups", "1Z000")]))
    index: DueIndex = store  # type: ignore[assignment]
    assert list(index.due_for_poll("POLL#3", T0 + timedelta(hours=1))) == []
    (due,) = index.due_for_poll("POLL#3", T0 + timedelta(hours=3))
    assert (due.shipment_id, due.poll_source, due.poll_number, due.status) == (
        "shp_contract",
        "ups",
        KEY.tracking_number,
        "picked_up",
    )
    assert due.poll_digest is None
    assert index.rearm_poll(due, polled_at=T0 + timedelta(hours=3), next_due=T0 + timedelta(hours=6), digest="d1")
    assert not index.rearm_poll(due, polled_at=T0 + timedelta(hours=3), next_due=T0 + timedelta(hours=7))
    assert list(index.due_for_poll("POLL#3", T0 + timedelta(hours=5))) == []
    (again,) = index.due_for_poll("POLL#3", T0 + timedelta(hours=6, seconds=1))
    assert again.poll_digest == "d1"  # the digest of the answer enqueued travels with the index
    assert index.rearm_poll(again, polled_at=T0 + timedelta(hours=6), next_due=None)
    assert list(index.due_for_poll("POLL#3", T0 + timedelta(days=9))) == []
    partition = store.load("shp_contract")
    assert partition is not None and partition.shipment.version == 3  # each re-arm moved the version


def test_the_last_scan_is_read_from_the_timeline(store: ShipmentStore) -> None:
    # Given a shipment whose scans were stored in two changes, the later scan first
    delivered, picked_up = scan(Milestone.DELIVERED, 48), scan(Milestone.PICKED_UP, 1)
    store.commit(Commit(shipment(1), None, [StoredEvent(delivered, "ups")], [], [KEY]))
    store.commit(Commit(shipment(2), 1, [StoredEvent(picked_up, "generic")], []))
    # When it is loaded
    partition = store.load("shp_contract")
    # Then its last scan is the last one in scan order, whatever the record was written with
    assert partition is not None and partition.shipment.last_scan is not None
    assert partition.shipment.last_scan.event_id == delivered.event_id
    assert partition.shipment.last_scan.occurred_at == delivered.occurred_at


def test_a_registration_is_written_when_it_changes_and_kept_when_a_change_leaves_it(store: ShipmentStore) -> None:
    # Given a registered shipment
    ann = CustomerContact(name="Ann Lee", email="ann@example.com")
    registered = {"registered_at": T0, "order_id": "ORD-1", "destination": Address(country="US"), "customer": ann}
    store.commit(Commit(shipment(1, **registered), None, [], [], [KEY]))
    # When a change that keeps the registration is written, then one that replaces it
    moved = shipment(2, status=Milestone.PICKED_UP, **registered)
    store.commit(Commit(moved, 1, [StoredEvent(scan(Milestone.PICKED_UP, 1), "ups")], registration_changed=False))
    kept = store.load("shp_contract")
    bob = CustomerContact(name="Bob Lee")
    store.commit(Commit(moved.model_copy(update={"version": 3, "customer": bob}), 2, registration_changed=True))
    replaced = store.load("shp_contract")
    # Then the first keeps the registration as stored, and the second stores the new one
    assert kept is not None and kept.shipment.status is Milestone.PICKED_UP
    assert (kept.shipment.order_id, kept.shipment.customer, kept.shipment.registered_at) == ("ORD-1", ann, T0)
    assert replaced is not None and replaced.shipment.customer == bob
    assert replaced.shipment.destination == Address(country="US")
