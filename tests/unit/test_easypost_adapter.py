"""EasyPost payloads → canonical events."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from shared.adapters import easypost
from shared.adapters.base import MappingTable
from shared.errors import PayloadError
from shared.models.canonical import IncidentType, Milestone, TimeSource
from tests.conftest import REFERENCE_PAYLOADS, event_bytes

RECEIVED = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


def normalize(name: str) -> easypost.NormalizeResult:
    return easypost.normalize(event_bytes("easypost", name), received_at=RECEIVED)


def test_tracker_updated_gives_every_scan_in_canonical_terms() -> None:
    # Given a tracker.updated webhook carrying a USPS tracker with four scans
    result = normalize("tracker_updated_usps_in_transit.json")
    # Then each scan is one canonical event of the physical carrier, oldest first
    assert [e.milestone for e in result.events] == [
        Milestone.LABEL_CREATED,
        Milestone.PICKED_UP,
        Milestone.DEPARTED_ORIGIN,
        Milestone.ARRIVED_HUB,
    ]
    first = result.events[1]
    assert first.carrier == "usps"
    assert first.tracking_number == "9205590221582712345678"
    assert first.occurred_at == datetime(2026, 10, 2, 1, 45, tzinfo=UTC)
    assert first.time_source is TimeSource.CARRIER_OFFSET
    # and the local time is derived from the scan's place (Portland, OR: Pacific daylight time)
    assert first.occurred_at_local is not None
    assert first.occurred_at_local.isoformat() == "2026-10-01T18:45:00-07:00"
    assert first.location is not None
    assert (first.location.city, first.location.country) == ("PORTLAND", "US")
    assert first.raw_code == "in_transit/received_at_origin_facility/03"
    assert first.received_at == RECEIVED
    assert result.unmapped == []
    assert result.ignored is None


def test_failed_attempt_weather_delay_and_delivery() -> None:
    result = normalize("tracker_updated_ups_delivered_after_retry.json")
    by_code = [(e.milestone, e.exception) for e in result.events]
    assert by_code == [
        (Milestone.LABEL_CREATED, None),
        (Milestone.PICKED_UP, None),
        (None, IncidentType.DELAYED),  # a delay notice is not a movement
        (Milestone.OUT_FOR_DELIVERY, None),
        (Milestone.DELIVERY_FAILED, IncidentType.DELIVERY_FAILED),
        (Milestone.OUT_FOR_DELIVERY, None),
        # "delivered" with the detail "arrived_at_destination": the stronger milestone wins
        (Milestone.DELIVERED, None),
    ]
    # ISO alpha-3 countries become alpha-2
    assert {e.location.country for e in result.events if e.location} == {"US"}


def test_bare_tracker_with_empty_strings_is_read_like_an_event() -> None:
    # Given the 2025 API shape: a bare Tracker, "" instead of null, per-detail est_delivery_date
    result = normalize("tracker_bare_api_response.json")
    assert [e.milestone for e in result.events] == [Milestone.LABEL_CREATED, Milestone.PICKED_UP]
    assert result.events[0].location is None  # every part missing → no location at all
    assert result.events[0].raw_code == "pre_transit/status_update"
    # A scan without a country in a US state still gets no invented country
    assert result.events[1].location is not None
    assert result.events[1].location.country is None


def test_event_without_tracking_is_ignored_not_failed() -> None:
    result = normalize("event_batch_created.json")
    assert result.events == []
    assert result.ignored is not None
    assert "batch.created" in result.ignored


def test_unknown_codes_are_kept_with_no_milestone_and_reported() -> None:
    # Given a detail whose status_detail is not in EasyPost's published list, and one whose
    # status is unknown too
    result = normalize("tracker_updated_unknown_codes.json")
    # Then the first still maps on its known status, the second maps to nothing
    assert [e.milestone for e in result.events] == [Milestone.IN_TRANSIT, None]
    assert [e.raw_code for e in result.events] == ["in_transit/drone_handoff/DR", "teleported/unknown/TP"]
    assert sorted(result.unmapped) == ["status=teleported", "status_detail=drone_handoff"]


def test_local_times_without_offset_use_the_scan_location_time_zone() -> None:
    result = normalize("tracker_updated_local_times.json")
    arrived, departed, out = result.events
    # 22:15 MST in Denver is 05:15 UTC
    assert arrived.occurred_at == datetime(2026, 3, 8, 5, 15, tzinfo=UTC)
    assert arrived.time_source is TimeSource.LOCATION_TZ
    # 02:30 does not exist on 2026-03-08 in Denver (clocks jump 02:00 → 03:00): read with the
    # offset before the jump it is 09:30 UTC, shown as 03:30 MDT
    assert departed.occurred_at == datetime(2026, 3, 8, 9, 30, tzinfo=UTC)
    assert departed.occurred_at_local is not None
    assert departed.occurred_at_local.isoformat() == "2026-03-08T03:30:00-06:00"
    # no location at all: UTC is assumed, and said so
    assert out.time_source is TimeSource.ASSUMED_UTC
    assert out.occurred_at_local is None


def test_missing_tracking_code_is_a_payload_error() -> None:
    with pytest.raises(PayloadError, match="tracking_code"):
        normalize("tracker_missing_tracking_code.json")


@pytest.mark.parametrize(
    "body",
    [b"not json", b"[]", b'{"object": "Shipment"}', b'{"object": "Event", "description": "tracker.updated"}'],
)
def test_bodies_that_are_not_trackers_are_payload_errors(body: bytes) -> None:
    with pytest.raises(PayloadError):
        easypost.normalize(body, received_at=RECEIVED)


def test_carrier_text_is_capped_and_stripped_of_control_characters() -> None:
    document = json.loads(event_bytes("easypost", "tracker_updated_usps_in_transit.json"))
    document["result"]["tracking_details"][0]["message"] = "Label\x00 created " + "x" * 1900
    result = easypost.normalize(json.dumps(document).encode(), received_at=RECEIVED)
    description = result.events[0].description
    assert description is not None
    assert len(description) == 500
    assert "\x00" not in description


def test_every_documented_code_is_in_the_table() -> None:
    # EasyPost's published enumerations (Tracker.cs): an entry for each, mapped or explicitly nothing
    statuses = "unknown pre_transit in_transit out_for_delivery delivered available_for_pickup return_to_sender failure cancelled error"
    details = (
        "address_correction arrived_at_destination arrived_at_facility arrived_at_pickup_location awaiting_information "
        "cancelled damaged delayed delivery_exception departed_facility departed_origin_facility expired failure held "
        "in_transit label_created lost missorted out_for_delivery received_at_destination_facility "
        "received_at_origin_facility refused return status_update transferred_to_destination_carrier "
        "transit_exception unknown weather_delay"
    )
    table = MappingTable.load("easypost")
    assert set(statuses.split()) == set(table.codes("status"))
    assert set(details.split()) == set(table.codes("status_detail"))


@pytest.mark.parametrize(
    "name", ["event-body.json", "TrackingResponseJSON.json", "easypost_examples_trackers-retrieve.json"]
)
def test_reference_payloads_parse(name: str) -> None:
    path = REFERENCE_PAYLOADS / "easypost" / name
    if not path.exists():
        pytest.skip("../shared/reference-payloads is not beside this clone")
    result = easypost.normalize(path.read_bytes(), received_at=RECEIVED)
    assert result.events
    assert all(e.raw_code for e in result.events)
