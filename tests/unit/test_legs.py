"""A parcel with a shipper carrier and a last-mile carrier: both numbers, one timeline."""

from __future__ import annotations

from datetime import timedelta

import pytest

from shared import clock
from shared.clock import FrozenClock
from shared.logic.ingest.process import Staged, commit_batch
from shared.logic.shipments.chain import CommitOptions
from shared.models.canonical import Milestone
from shared.models.shipment import TrackingKey
from tests.builders import T0, scan
from tests.fakes import InMemoryShipmentStore, RecordingPublisher

UPS = TrackingKey("ups", "1Z4Y0A190348261953")
USPS = TrackingKey("usps", "92419900000033499522966220")
OPTIONS = CommitOptions(poll_sources=frozenset({"ups", "usps"}))


def ups(milestone: Milestone, hours: float):  # type: ignore[no-untyped-def]
    return scan(milestone, hours, carrier=UPS.carrier, tracking_number=UPS.tracking_number)


def usps(milestone: Milestone, hours: float):  # type: ignore[no-untyped-def]
    return scan(milestone, hours, carrier=USPS.carrier, tracking_number=USPS.tracking_number)


def deliver(store: InMemoryShipmentStore, publisher: RecordingPublisher, *items: Staged, hours: float = 0) -> None:
    with clock.use_clock(FrozenClock(T0 + timedelta(hours=hours))):
        outcome = commit_batch(list(items), store=store, publisher=publisher, options=OPTIONS)
    assert not outcome.failed_message_ids, outcome.errors


def test_both_legs_in_one_payload_make_one_shipment() -> None:
    # Given an aggregator payload with the UPS leg, the USPS last mile and the link between them
    store, publisher = InMemoryShipmentStore(), RecordingPublisher()
    events = [ups(Milestone.PICKED_UP, 1), ups(Milestone.HANDED_TO_LAST_MILE, 30), usps(Milestone.OUT_FOR_DELIVERY, 40)]
    deliver(store, publisher, Staged("m1", "seventeentrack", events=events, legs=[(UPS, USPS)]))
    # Then one shipment holds both numbers and the whole timeline
    (shipment,) = store.shipments.values()
    assert shipment.key == UPS
    assert shipment.keys == [UPS, USPS]
    assert store.tracking == {UPS: shipment.shipment_id, USPS: shipment.shipment_id}
    assert shipment.status is Milestone.OUT_FOR_DELIVERY and shipment.event_count == 3
    # and once the parcel is with the last-mile carrier, that is who the poller asks
    assert (shipment.poll_source, shipment.poll_number) == ("usps", USPS.tracking_number)


def test_a_later_scan_under_the_last_mile_number_joins_the_same_timeline() -> None:
    store, publisher = InMemoryShipmentStore(), RecordingPublisher()
    deliver(store, publisher, Staged("m1", "ups", events=[ups(Milestone.PICKED_UP, 1)], legs=[(UPS, USPS)]))
    deliver(store, publisher, Staged("m2", "usps", events=[usps(Milestone.DELIVERED, 50)]), hours=51)
    (shipment,) = store.shipments.values()
    assert shipment.status is Milestone.DELIVERED and shipment.event_count == 2
    assert [e.detail["milestone"] for e in publisher.published] == ["picked_up", "delivered"]


def test_two_shipments_found_to_be_one_parcel_are_merged_into_the_older() -> None:
    # Given the UPS leg tracked first, and the USPS number reported separately later
    store, publisher = InMemoryShipmentStore(), RecordingPublisher()
    deliver(store, publisher, Staged("m1", "ups", events=[ups(Milestone.PICKED_UP, 1)]), hours=1)
    deliver(store, publisher, Staged("m2", "usps", events=[usps(Milestone.ARRIVED_HUB, 36)]), hours=36)
    assert len(store.shipments) == 2
    older = store.tracking[UPS]
    younger = store.tracking[USPS]
    # When a payload links the two numbers
    deliver(
        store,
        publisher,
        Staged("m3", "ups", events=[ups(Milestone.HANDED_TO_LAST_MILE, 30)], legs=[(UPS, USPS)]),
        hours=37,
    )
    # Then the older shipment holds every event, both numbers point to it, the younger is marked merged
    merged = store.shipments[older]
    assert merged.event_count == 3 and merged.keys == [UPS, USPS]
    assert store.tracking == {UPS: older, USPS: older}
    gone = store.shipments[younger]
    assert gone.merged_into == older and gone.merged_into_token == merged.public_token
    assert gone.poll_due_at is None
    # the walk over both legs in time order: a USPS hub scan after the handover does not regress it
    assert merged.status is Milestone.HANDED_TO_LAST_MILE
    # and later events of either number land in the merged shipment
    deliver(store, publisher, Staged("m4", "usps", events=[usps(Milestone.DELIVERED, 48)]), hours=49)
    assert store.shipments[older].status is Milestone.DELIVERED
    assert store.shipments[younger].event_count == 1


def test_a_leg_link_alone_claims_the_number_for_the_known_shipment() -> None:
    store, publisher = InMemoryShipmentStore(), RecordingPublisher()
    deliver(store, publisher, Staged("m1", "ups", events=[ups(Milestone.PICKED_UP, 1)]))
    deliver(store, publisher, Staged("m2", "ups", events=[ups(Milestone.PICKED_UP, 1)], legs=[(UPS, USPS)]))
    (shipment,) = store.shipments.values()
    assert store.tracking[USPS] == shipment.shipment_id and shipment.keys == [UPS, USPS]


def test_the_same_scan_from_an_aggregator_and_the_carrier_is_one_event_whatever_the_order() -> None:
    # Given 17TRACK reads USPS's first scan as the handover and USPS itself as an arrival
    handover = usps(Milestone.HANDED_TO_LAST_MILE, 30)
    arrival = usps(Milestone.ARRIVED_HUB, 30)
    finals = set()
    for first, second in (
        (("seventeentrack", handover), ("usps", arrival)),
        (("usps", arrival), ("seventeentrack", handover)),
    ):
        store, publisher = InMemoryShipmentStore(), RecordingPublisher()
        deliver(
            store, publisher, Staged("m1", first[0], events=[ups(Milestone.PICKED_UP, 1), first[1]], legs=[(UPS, USPS)])
        )
        deliver(store, publisher, Staged("m2", second[0], events=[second[1]]), hours=31)
        (shipment,) = store.shipments.values()
        (kept,) = [s for s in store.events[shipment.shipment_id].values() if s.event.carrier == "usps"]
        finals.add((shipment.status, shipment.event_count, kept.event.milestone, kept.source))
    # Then one event, with the stronger reading, and the same shipment state in both orders
    assert finals == {(Milestone.HANDED_TO_LAST_MILE, 2, Milestone.HANDED_TO_LAST_MILE, "seventeentrack")}


def test_a_better_reading_of_a_scan_with_other_seconds_replaces_the_stored_one_in_either_order() -> None:
    # Given an aggregator floors a UPS scan to the minute and UPS itself reports its seconds
    floored = ups(Milestone.ARRIVED_HUB, 5)
    exact = floored.model_copy(update={"occurred_at": floored.occurred_at + timedelta(seconds=37)})
    assert floored.event_id == exact.event_id
    finals = set()
    for first, second in ((("easypost", floored), ("ups", exact)), (("ups", exact), ("easypost", floored))):
        store, publisher = InMemoryShipmentStore(), RecordingPublisher()
        deliver(store, publisher, Staged("m1", first[0], events=[first[1]]), hours=6)
        deliver(store, publisher, Staged("m2", second[0], events=[second[1]]), hours=6)
        (shipment,) = store.shipments.values()
        (kept,) = store.events[shipment.shipment_id].values()
        finals.add((kept.source, kept.event.occurred_at, shipment.event_count, len(publisher.published)))
    # Then one event remains, the carrier's own reading with its seconds, announced once
    assert finals == {("ups", exact.occurred_at, 1, 1)}


@pytest.mark.parametrize("carrier_first", [True, False])
def test_many_better_readings_and_new_scans_in_one_payload_are_all_kept(carrier_first: bool) -> None:
    # Given an aggregator reported 60 scans as in-transit, then UPS reads each as an arrival
    # and adds 40 new scans (more than one transaction holds)
    retold = [ups(Milestone.IN_TRANSIT, hour) for hour in range(60)]
    own = [ups(Milestone.ARRIVED_HUB, hour) for hour in range(60)] + [
        ups(Milestone.ARRIVED_HUB if hour % 2 else Milestone.IN_TRANSIT, 100 + hour) for hour in range(40)
    ]
    deliveries = [("easypost", retold), ("ups", own)]
    if carrier_first:
        deliveries.reverse()
    store, publisher = InMemoryShipmentStore(), RecordingPublisher()
    for index, (source, events) in enumerate(deliveries):
        outcome = commit_batch([Staged(f"m{index}", source, events=events)], store=store, publisher=publisher)
        assert not outcome.failed_message_ids and not outcome.errors
    # Then every scan is stored once, each in UPS's own reading, whichever came first
    (shipment,) = store.shipments.values()
    kept = list(store.events[shipment.shipment_id].values())
    assert len(kept) == shipment.event_count == 100
    assert {s.source for s in kept} == {"ups"}
    assert store.commits >= 3  # it did not fit one transaction


def test_when_the_last_mile_number_was_seen_first_the_shipper_number_still_leads_after_the_merge() -> None:
    # Given USPS's number arrives first (a warehouse scan), then UPS's with the leg link
    store, publisher = InMemoryShipmentStore(), RecordingPublisher()
    deliver(store, publisher, Staged("m1", "usps", events=[usps(Milestone.ARRIVED_HUB, 36)]), hours=36)
    deliver(store, publisher, Staged("m2", "ups", events=[ups(Milestone.PICKED_UP, 1)]), hours=37)
    deliver(
        store,
        publisher,
        Staged("m3", "ups", events=[ups(Milestone.HANDED_TO_LAST_MILE, 30)], legs=[(UPS, USPS)]),
        hours=38,
    )
    # Then the surviving shipment is the older (USPS-created) one, but UPS's number leads:
    # the record names UPS, and after the handover the poller asks USPS, the carrier holding it
    (merged,) = [s for s in store.shipments.values() if not s.merged_into]
    assert merged.keys == [UPS, USPS]
    assert (merged.carrier, merged.tracking_number) == (UPS.carrier, UPS.tracking_number)
    assert (merged.poll_source, merged.poll_number) == ("usps", USPS.tracking_number)
