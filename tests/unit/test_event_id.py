"""``event_id``: the same scan gets the same id, whichever envelope or delivery carried it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from shared.adapters import easypost
from shared.models.canonical import IncidentType, Milestone, compute_event_id, reading_strength
from tests.builders import scan
from tests.conftest import event_bytes

RECEIVED = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


def test_the_same_scan_in_a_webhook_and_in_a_bare_tracker_has_one_id() -> None:
    # Given EasyPost's webhook Event and the bare Tracker the API returns for the same parcel
    webhook = json.loads(event_bytes("easypost", "tracker_updated_usps_in_transit.json"))
    bare = webhook["result"]
    bare["tracking_details"][1]["message"] = "Accepted at USPS Origin Facility"  # wording drifts
    ids_webhook = [e.event_id for e in easypost.normalize(json.dumps(webhook).encode(), received_at=RECEIVED).events]
    later = RECEIVED + timedelta(hours=3)
    ids_bare = [e.event_id for e in easypost.normalize(json.dumps(bare).encode(), received_at=later).events]
    # Then the ids are the same: envelope, description and receipt time are not identity
    assert ids_webhook == ids_bare


def test_sub_minute_precision_does_not_split_a_scan() -> None:
    at = datetime(2026, 11, 2, 12, 7, 0, tzinfo=UTC)
    a = compute_event_id(
        carrier="ups",
        tracking_number="1Z",
        occurred_at=at,
        milestone=Milestone.ARRIVED_HUB,
        exception=None,
        raw_code="AR",
    )
    b = compute_event_id(
        carrier="ups",
        tracking_number="1Z",
        occurred_at=at + timedelta(seconds=41),
        milestone=Milestone.ARRIVED_HUB,
        exception=None,
        raw_code="I",
    )
    assert a == b


def test_different_scans_get_different_ids() -> None:
    base = scan(Milestone.ARRIVED_HUB, 10)
    assert (
        len(
            {
                base.event_id,
                scan(Milestone.ARRIVED_HUB, 11).event_id,  # another time
                scan(Milestone.OUT_FOR_DELIVERY, 10).event_id,  # another kind of scan
                scan(Milestone.ARRIVED_HUB, 10, tracking_number="1Z999").event_id,  # another parcel
                scan(Milestone.ARRIVED_HUB, 10, carrier="fedex").event_id,  # another carrier
                scan(None, 10, exception=IncidentType.DELAYED).event_id,  # a notice
            }
        )
        == 6
    )


def test_two_unmapped_scans_in_the_same_minute_stay_apart() -> None:
    assert scan(None, 10, raw_code="ZZ").event_id != scan(None, 10, raw_code="QQ").event_id


def test_two_sources_reading_one_scan_differently_share_its_id() -> None:
    # An aggregator calls the last-mile carrier's first scan a handover; the carrier, an arrival.
    aggregator = scan(Milestone.HANDED_TO_LAST_MILE, 30, carrier="usps", tracking_number="9400100000000000000001")
    carrier = scan(Milestone.ARRIVED_HUB, 30, carrier="usps", tracking_number="9400100000000000000001")
    assert aggregator.event_id == carrier.event_id
    # and the kept reading is the stronger one, whichever is weighed first: the handover,
    # which only a source seeing both legs can know
    assert reading_strength(aggregator, "seventeentrack") > reading_strength(carrier, "usps")


def test_the_carrier_reading_of_its_own_scan_beats_an_aggregator_retelling() -> None:
    # EasyPost reports a FedEx pickup with the detail "arrived_at_facility"; FedEx says pickup
    retold = scan(Milestone.ARRIVED_HUB, 5, carrier="fedex", tracking_number="794611111111")
    own = scan(Milestone.PICKED_UP, 5, carrier="fedex", tracking_number="794611111111")
    assert retold.event_id == own.event_id
    assert reading_strength(own, "fedex") > reading_strength(retold, "easypost")
