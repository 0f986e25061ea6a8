"""A parcel with a shipper carrier and a last-mile carrier: both numbers, one timeline."""

from __future__ import annotations

from datetime import timedelta

from shared import clock
from shared.clock import FrozenClock
from shared.logic.commit import CommitOptions
from shared.logic.process import Staged, commit_batch
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
