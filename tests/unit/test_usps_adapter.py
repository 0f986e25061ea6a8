"""USPS Tracking API v3 answers → canonical events (and the payload builder that renders them)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from infra.formats import usps as usps_format
from infra.formats.scan import CANONICAL, Leg, Parcel, Place, TrueScan
from shared.adapters import usps
from shared.adapters.base import MappingTable, NormalizeResult
from shared.errors import NotFound, PayloadError
from shared.models.canonical import IncidentType, Milestone, TimeSource
from shared.sources import webhook_source
from tests.conftest import REFERENCE_PAYLOADS, event_bytes

RECEIVED = datetime(2027, 2, 1, 10, 0, tzinfo=UTC)
M, X = Milestone, IncidentType


def normalize(name: str) -> NormalizeResult:
    return usps.normalize(event_bytes("usps", name), received_at=RECEIVED)


def normalize_json(document: Any) -> NormalizeResult:
    return usps.normalize(json.dumps(document).encode(), received_at=RECEIVED)


def one_event(**fields: Any) -> dict[str, Any]:
    """A minimal v3 answer with one tracking event (the fields given replace the defaults)."""
    event = {
        "eventType": "USPS in possession of item",
        "eventTimestamp": "2026-10-05T15:06:00",
        "GMTTimestamp": "2026-10-05T22:06:08Z",
        "GMTOffset": "-07:00",
        "eventCountry": None,
        "eventCity": "PORTLAND",
        "eventState": "OR",
        "eventZIP": "97218",
        "eventCode": "03",
        **fields,
    }
    return {"trackingNumber": "9400136105500123456784", "trackingEvents": [event]}


# ---------------------------------------------------------------------------- journeys


def test_domestic_journey_reads_every_scan_in_canonical_terms() -> None:
    # Given a delivered domestic parcel, events newest-first as USPS lists them
    result = normalize("domestic_delivered.json")
    # Then every scan is one USPS event, in the answer's order, mapped on its code
    assert [e.milestone for e in result.events] == [
        M.DELIVERED,
        M.OUT_FOR_DELIVERY,
        M.HANDED_TO_LAST_MILE,
        M.ARRIVED_HUB,
        M.IN_TRANSIT,
        M.IN_TRANSIT,
        M.IN_TRANSIT,
        M.ARRIVED_HUB,
        M.ARRIVED_HUB,
        M.DEPARTED_ORIGIN,
        M.PICKED_UP,
        M.LABEL_CREATED,
    ]
    assert [e.raw_code for e in result.events[:4]] == ["01", "OF", "07", "A1"]
    delivered = result.events[0]
    assert (delivered.carrier, delivered.tracking_number) == ("usps", "9400136105500123456784")
    # the instant comes from GMTTimestamp (seconds kept), the local time keeps USPS's wall clock
    assert delivered.occurred_at == datetime(2026, 10, 9, 18, 32, 20, tzinfo=UTC)
    assert delivered.occurred_at_local is not None
    assert delivered.occurred_at_local.isoformat() == "2026-10-09T14:32:20-04:00"
    assert delivered.time_source is TimeSource.CARRIER_OFFSET
    # a domestic scan says eventCountry: null; in a US state it is in the US
    assert delivered.location is not None
    assert delivered.location.model_dump() == {
        "city": "ASHEVILLE",
        "region": "NC",
        "postal_code": "28801",
        "country": "US",
    }
    assert delivered.description == "Delivered, In/At Mailbox"
    assert result.unmapped == []
    assert result.ignored is None
    assert result.legs == []


def test_gmt_timestamp_carrying_the_local_date_is_corrected() -> None:
    # Given the regional-facility arrival at 21:14 EDT on Oct 8, which USPS sends as
    # GMTTimestamp "2026-10-08T01:14:05Z" (the UTC clock under the local date)
    arrived = normalize("domestic_delivered.json").events[3]
    # Then the instant is the next UTC day, as the local time and GMTOffset prove
    assert arrived.occurred_at == datetime(2026, 10, 9, 1, 14, 5, tzinfo=UTC)
    assert arrived.occurred_at_local is not None
    assert arrived.occurred_at_local.isoformat() == "2026-10-08T21:14:05-04:00"


def test_facility_names_and_location_less_transit_scans_are_kept_as_given() -> None:
    result = normalize("domestic_delivered.json")
    facility, transit = result.events[3], result.events[4]
    # A regional facility's name sits in eventCity with no state or ZIP: no country is invented
    assert facility.location is not None
    assert facility.location.model_dump() == {
        "city": "GREENSBORO NC DISTRIBUTION CENTER",
        "region": None,
        "postal_code": None,
        "country": None,
    }
    # "TL" has no location at all; its time still comes from the GMT fields
    assert transit.location is None
    assert transit.time_source is TimeSource.CARRIER_OFFSET


def test_a_scan_listed_twice_gives_one_identity_and_repeated_transit_scans_stay_apart() -> None:
    result = normalize("domestic_delivered.json")
    arrivals = [e for e in result.events if e.raw_code == "10"]
    transits = [e for e in result.events if e.raw_code == "TL"]
    # Given the origin-facility arrival listed twice in one answer
    # Then both copies are emitted with one event_id, so the timeline stores it once
    assert len(arrivals) == 2
    assert arrivals[0].event_id == arrivals[1].event_id
    # while the two "In Transit to Next Facility" scans, a day apart, are two events
    assert transits[0].event_id != transits[1].event_id


def test_failed_attempt_delay_and_pickup_at_the_post_office() -> None:
    result = normalize("attempt_then_picked_up.json")
    assert [(e.milestone, e.exception) for e in reversed(result.events)] == [
        (M.PICKED_UP, None),
        (M.HANDED_TO_LAST_MILE, None),
        (None, X.DELAYED),  # "71" rescheduled: a notice, not a movement
        (M.OUT_FOR_DELIVERY, None),
        (M.DELIVERY_FAILED, X.DELIVERY_FAILED),  # "52" notice left
        (M.AVAILABLE_FOR_PICKUP, None),
        (M.DELIVERED, None),  # "43": the addressee collected it
    ]
    # "-5:00", the spec's offset style, is read like "-05:00"
    picked_up_at_counter = result.events[0]
    assert picked_up_at_counter.occurred_at == datetime(2026, 11, 12, 16, 5, 27, tzinfo=UTC)
    assert picked_up_at_counter.occurred_at_local is not None
    assert picked_up_at_counter.occurred_at_local.utcoffset() == timedelta(hours=-5)


def test_return_to_sender_after_an_address_problem_ends_delivered_back() -> None:
    result = normalize("return_to_sender.json")
    readings = [(e.raw_code, e.milestone, e.exception) for e in reversed(result.events)]
    assert readings == [
        ("GX", M.LABEL_CREATED, None),
        ("03", M.PICKED_UP, None),
        ("OF", M.OUT_FOR_DELIVERY, None),
        ("05", M.DELIVERY_FAILED, X.ADDRESS_ISSUE),
        ("09", M.RETURN_STARTED, X.RETURN_TO_SENDER),
        ("A1", M.ARRIVED_HUB, None),
        ("07", M.HANDED_TO_LAST_MILE, None),
        # a delivery after the return started, under the same number, is the return's
        ("01", M.RETURN_DELIVERED, None),
    ]


def test_missent_recall_and_mail_recovery_are_problem_notices() -> None:
    result = normalize("missent_recalled_lost.json")
    assert [(e.raw_code, e.milestone, e.exception) for e in result.events] == [
        ("11", None, X.LOST),
        ("44", None, X.HELD),
        ("08", None, X.DELAYED),
        ("03", M.PICKED_UP, None),
    ]


def test_events_without_gmt_fields_fall_back_to_offset_then_place_then_utc() -> None:
    # Given a shipping partner's parcel: some scans carry no GMTTimestamp (and some no GMTOffset)
    delivered, out, accepted, departed, arrived, partner_pickup, manifest = normalize(
        "partner_injected_local_times.json"
    ).events
    # local time + GMTOffset: the instant is known
    assert delivered.occurred_at == datetime(2027, 1, 15, 22, 47, tzinfo=UTC)
    assert delivered.time_source is TimeSource.CARRIER_OFFSET
    # local time only, in Utah: resolved with Mountain time
    assert out.occurred_at == datetime(2027, 1, 15, 15, 30, tzinfo=UTC)
    assert out.time_source is TimeSource.LOCATION_TZ
    assert out.occurred_at_local is not None
    assert out.occurred_at_local.isoformat() == "2027-01-15T08:30:00-07:00"
    # local time and no place at all: UTC is assumed, and said so
    assert partner_pickup.time_source is TimeSource.ASSUMED_UTC
    assert partner_pickup.occurred_at_local is None
    assert manifest.occurred_at == datetime(2027, 1, 12, 0, 0, tzinfo=UTC)
    # the partner's scans and USPS's destination acceptance
    assert [e.milestone for e in (accepted, departed, arrived, partner_pickup, manifest)] == [
        M.HANDED_TO_LAST_MILE,
        M.IN_TRANSIT,
        M.ARRIVED_HUB,
        M.PICKED_UP,
        M.LABEL_CREATED,
    ]


def test_foreign_scans_keep_their_country_and_unknown_codes_are_reported() -> None:
    # Given an inbound international item whose foreign scans use codes USPS's domestic table lacks
    result = normalize("inbound_international.json")
    departed_abroad, prepared_abroad = result.events[-2:]
    # Then they are still events, with no milestone, and their codes are reported
    assert (departed_abroad.milestone, departed_abroad.exception) == (None, None)
    assert departed_abroad.raw_code == "IZ"
    assert result.unmapped == ["eventCode=IZ", "eventCode=IA"]
    # "GERMANY" is DE, and the +02:00 offset gives the instant
    assert departed_abroad.location is not None
    assert departed_abroad.location.country == "DE"
    assert departed_abroad.occurred_at == datetime(2026, 8, 16, 19, 15, 11, tzinfo=UTC)
    assert prepared_abroad.occurred_at_local is not None
    assert prepared_abroad.occurred_at_local.utcoffset() == timedelta(hours=2)
    # and the domestic part reads as usual, through the local delivery unit
    assert [e.milestone for e in result.events[:5]] == [
        M.DELIVERED,
        M.OUT_FOR_DELIVERY,
        M.HANDED_TO_LAST_MILE,
        M.IN_TRANSIT,
        M.ARRIVED_HUB,
    ]


def test_label_created_with_no_scan_yet() -> None:
    (label,) = normalize("label_created_only.json").events
    assert (label.milestone, label.exception) == (M.LABEL_CREATED, None)
    # 18:45 PST on Dec 20 is 02:45 UTC on Dec 21 (USPS wrote the 20th in GMTTimestamp)
    assert label.occurred_at == datetime(2026, 12, 21, 2, 45, 39, tzinfo=UTC)


@pytest.mark.parametrize(
    ("state", "country"),
    [("PR", "US"), ("DC", "US"), ("AE", None), ("PW", "PW")],
)
def test_country_follows_the_usps_state_code(state: str, country: str | None) -> None:
    # Given a scan with eventCountry null in a territory, DC, a military (APO) code, or Palau
    result = normalize_json(one_event(eventState=state, eventCity="SOMEWHERE", eventZIP=None))
    # Then the country is the one that code names, and none for military mail abroad
    assert result.events[0].location is not None
    assert result.events[0].location.country == country


def test_html_in_usps_text_is_removed_from_the_description() -> None:
    result = normalize_json(one_event(eventType="Accepted at USPS Origin Facility<SUP>&#174;</SUP> &amp; Sorted"))
    assert result.events[0].description == "Accepted at USPS Origin Facility & Sorted"


# ---------------------------------------------------------------------------- no tracking, bad input


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("not_found.json", "USPS error answer 404"),
        ("not_yet_available.json", "USPS error answer 400"),
        ("summary_only.json", "expand=DETAIL"),
        ("no_events.json", "no tracking events"),
    ],
)
def test_answers_without_tracking_are_ignored(name: str, reason: str) -> None:
    result = normalize(name)
    assert result.events == []
    assert result.ignored is not None
    assert reason in result.ignored


def test_an_oauth_error_is_ignored_without_echoing_its_text() -> None:
    result = normalize_json({"error": "invalid_client", "error_description": "Client authentication failed."})
    assert result.events == []
    assert result.ignored == "USPS error answer invalid_client: no tracking"


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"<TrackResponse/>", "not JSON"),
        (b"[]", "not a JSON object"),
        (json.dumps({"trackingEvents": []}).encode(), "trackingNumber"),
        (json.dumps(one_event(eventCode=3)).encode(), "eventCode"),
        (
            json.dumps({"trackingNumber": "9400136105500123456784", "trackingEvents": [{"eventType": "x"}]}).encode(),
            "eventCode",
        ),
        (json.dumps(one_event(GMTTimestamp=None, eventTimestamp=None)).encode(), "neither"),
        (json.dumps(one_event(GMTTimestamp="yesterday")).encode(), "GMTTimestamp"),
        (json.dumps({**one_event(), "trackingNumber": "94001<script>"}).encode(), "tracking number"),
        (json.dumps({**one_event(), "trackingEvents": "none"}).encode(), "trackingEvents"),
    ],
)
def test_unreadable_answers_are_payload_errors(body: bytes, problem: str) -> None:
    with pytest.raises(PayloadError, match=problem):
        usps.normalize(body, received_at=RECEIVED)


def test_an_unreadable_local_time_is_not_needed_when_gmt_is_there() -> None:
    # Given an answer whose eventTimestamp is only a clock time (seen on v3 in 2023)
    result = normalize_json(one_event(eventTimestamp="3:06 pm"))
    # Then the UTC field alone gives the instant
    assert result.events[0].occurred_at == datetime(2026, 10, 5, 22, 6, 8, tzinfo=UTC)


def test_usps_is_polled_and_accepts_no_webhook() -> None:
    with pytest.raises(NotFound, match="polled"):
        webhook_source("usps")


# ---------------------------------------------------------------------------- codes


def test_carrier_codes_relayed_by_aggregators_map_like_usps_own() -> None:
    # EasyPost relays USPS's event code in carrier_code: the same scan gets the same reading
    assert usps.map_carrier_code("03") == MappingTable.load("usps").lookup("eventCode", "03")
    mapping = usps.map_carrier_code(" of ")
    assert mapping is not None
    assert mapping.milestone is M.OUT_FOR_DELIVERY
    assert usps.map_carrier_code("ZZ") is None


def test_the_table_covers_the_published_and_observed_codes() -> None:
    # Pub 199 G-4 codes (USPS::WebTools::Tracking::Codes) and codes seen in real v3 answers
    published = (
        "MA OF PC 01 DX 02 52 53 54 55 56 03 TM 04 05 06 07 08 09 21 22 23 24 25 26 27 28 29 31 10 PA 11 14 15 "
        "16 17 19 41 42 43 44 51 80 81 82 EF SF 71 30"
    )
    observed = "GX A1 T1 TL AD"
    assert set(MappingTable.load("usps").codes("eventCode")) == set((published + " " + observed).split())


# ---------------------------------------------------------------------------- builder round trip

CHICAGO = Place("Chicago", "IL", "60607", "US", "America/Chicago")
DENVER = Place("Denver", "CO", "80202", "US", "America/Denver")
PARCEL = Parcel(legs=(Leg("usps", "9400100000000000000017"),), origin=CHICAGO, destination=DENVER)
# 21:40 CST is 03:40 UTC the next day: USPS writes the local date in GMTTimestamp
T0 = datetime(2026, 11, 21, 3, 40, 17, tzinfo=UTC)


@pytest.mark.parametrize("kind", list(CANONICAL))
def test_builder_rendering_reads_back_as_the_canonical_kind(kind: str) -> None:
    # Given a label, a pickup and then a scan of this kind, rendered as USPS answers
    scans = [
        TrueScan("label_created", T0 - timedelta(days=2), CHICAGO),
        TrueScan("picked_up", T0 - timedelta(days=1, hours=5), CHICAGO),
        TrueScan(kind, T0, CHICAGO),
    ]
    body = usps_format.poll_response(PARCEL, scans, now=T0 + timedelta(hours=1))
    # When the adapter reads the answer
    result = usps.normalize(body, received_at=RECEIVED)
    # Then the scan is there with a reading the builder promises, at its instant
    (event,) = [e for e in result.events if e.occurred_at.replace(second=0) == T0.replace(second=0)]
    assert (event.milestone, event.exception) in usps_format.RENDERS[kind]
    assert event.occurred_at == T0
    assert (event.carrier, event.tracking_number) == ("usps", "9400100000000000000017")
    assert result.unmapped == []


def test_builder_lists_events_newest_first_with_usps_quirks() -> None:
    scans = [TrueScan("picked_up", T0, CHICAGO), TrueScan("in_transit", T0 + timedelta(hours=6), CHICAGO)]
    answer = json.loads(usps_format.poll_response(PARCEL, scans, now=T0 + timedelta(days=1)))
    newest, oldest = answer["trackingEvents"]
    assert (newest["eventCode"], oldest["eventCode"]) == ("TL", "03")
    assert newest["eventCity"] is None  # TL: no location
    assert oldest["eventCountry"] is None  # domestic
    assert oldest["authorizedAgent"] == "false"  # booleans as strings
    assert oldest["eventTimestamp"] == "2026-11-20T21:40:00"  # local, truncated to the minute
    assert oldest["GMTTimestamp"] == "2026-11-20T03:40:17Z"  # the UTC clock under the local date
    assert oldest["GMTOffset"] == "-06:00"


def test_builder_not_found_is_ignored_by_the_adapter() -> None:
    status, body = usps_format.not_found("9400100000000000000099")
    assert status == 404
    result = usps.normalize(body, received_at=RECEIVED)
    assert result.events == []
    assert result.ignored is not None


def test_every_kind_is_renderable() -> None:
    assert set(usps_format.RENDERS) == set(CANONICAL) == set(usps_format.CODES)


# ---------------------------------------------------------------------------- reference payloads


def _reference_files() -> list[str]:
    names: list[str] = []
    for folder in ("usps", "usps_international"):
        directory = REFERENCE_PAYLOADS / folder
        if directory.is_dir():
            names += [
                f"{folder}/{path.name}"
                for path in sorted(directory.iterdir())
                if any(word in path.name for word in ("Tracking", "Duplicate", "Inconsistent"))
            ]
    return names or ["usps/absent"]


@pytest.mark.parametrize("name", _reference_files())
def test_reference_payloads_parse(name: str) -> None:
    path = REFERENCE_PAYLOADS / name
    if not path.exists():
        pytest.skip("../shared/reference-payloads is not beside this clone")
    result = usps.normalize(path.read_bytes(), received_at=RECEIVED)
    assert result.events or result.ignored
    assert all(e.raw_code for e in result.events)
