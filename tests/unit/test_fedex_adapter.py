"""FedEx Track API answers and AIV webhooks → canonical events."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from infra.formats import fedex as fedex_format
from infra.formats.scan import CANONICAL, Leg, Parcel, Place, TrueScan
from shared.adapters import fedex
from shared.adapters.base import LegLink, MappingTable, NormalizeResult
from shared.errors import PayloadError, Unauthorized
from shared.models.canonical import IncidentType, Milestone, TimeSource
from shared.models.shipment import TrackingKey
from shared.sources import FEDEX_SIGNATURE
from tests.conftest import REFERENCE_PAYLOADS, event_bytes, event_json

M, X = Milestone, IncidentType
RECEIVED = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def normalize(name: str) -> NormalizeResult:
    return fedex.normalize(event_bytes("fedex", name), received_at=RECEIVED)


def normalize_json(document: Any) -> NormalizeResult:
    return fedex.normalize(json.dumps(document).encode(), received_at=RECEIVED)


def readings(result: NormalizeResult) -> list[tuple[Milestone | None, IncidentType | None]]:
    return [(e.milestone, e.exception) for e in result.events]


# ---------------------------------------------------------------------------- journeys


def test_domestic_ground_journey_reads_oldest_first_with_each_scan_place_offset() -> None:
    # Given a Track API answer listing a Seattle → Columbus Ground parcel newest first
    result = normalize("track_domestic_ground_delivered.json")
    # Then every scan is a FedEx event, in journey order
    assert readings(result) == [
        (M.LABEL_CREATED, None),
        (M.PICKED_UP, None),
        (M.ARRIVED_HUB, None),
        (None, None),  # AO "arriving on time": a forecast, not a movement
        (M.DEPARTED_ORIGIN, None),  # DP at the origin facility
        (M.ARRIVED_HUB, None),
        (M.IN_TRANSIT, None),
        (M.IN_TRANSIT, None),
        (M.ARRIVED_HUB, None),
        (M.IN_TRANSIT, None),
        (M.HANDED_TO_LAST_MILE, None),  # AR at the delivering station
        (M.OUT_FOR_DELIVERY, None),
        (M.DELIVERED, None),
    ]
    assert {(e.carrier, e.tracking_number) for e in result.events} == {("fedex", "284019573316770")}
    assert [e.raw_code for e in result.events][:3] == ["OC", "PU", "AR"]
    # and each instant keeps the offset FedEx printed at that place (Pacific at pickup, Eastern at delivery)
    pickup, delivered = result.events[1], result.events[-1]
    assert pickup.occurred_at == datetime(2026, 10, 5, 23, 45, tzinfo=UTC)
    assert pickup.occurred_at_local is not None
    assert pickup.occurred_at_local.isoformat() == "2026-10-05T16:45:00-07:00"
    assert delivered.occurred_at == datetime(2026, 10, 9, 18, 12, 31, tzinfo=UTC)
    assert delivered.time_source is TimeSource.CARRIER_OFFSET
    # FedEx's empty delivery location ({"streetLines": [""]}) is no location at all
    assert delivered.location is None
    # the label scan carries only the shipper's postal code
    label = result.events[0].location
    assert label is not None
    assert (label.city, label.postal_code, label.country) == (None, "98108", "US")
    assert pickup.location is not None
    assert (pickup.location.city, pickup.location.region) == ("SEATTLE", "WA")
    assert result.unmapped == []
    assert result.ignored is None
    assert result.legs == []


def test_cross_border_express_reads_export_customs_and_the_delivering_station() -> None:
    # Given a Shenzhen → Chicago International Priority parcel held by US customs for a while
    result = normalize("track_international_customs.json")
    by_code = [(e.raw_code, e.milestone, e.exception) for e in result.events]
    # Then EA is "Enroute to Airport" on a vehicle but "Export Approved" at a customs broker
    assert ("EA", M.IN_TRANSIT, None) in by_code
    assert ("EA", None, None) in by_code
    # the mixed-case "Ow" of FedEx's table is known
    assert ("Ow", M.IN_TRANSIT, None) in by_code
    # and import customs is started, held, then cleared before the delivering station
    assert [(m, x) for code, m, x in by_code if code in ("CP", "CD", "CC", "OD", "DL")] == [
        (M.CUSTOMS_STARTED, None),
        (None, X.CUSTOMS_HOLD),
        (M.CUSTOMS_CLEARED, None),
        (M.OUT_FOR_DELIVERY, None),
        (M.DELIVERED, None),
    ]
    assert M.HANDED_TO_LAST_MILE in [e.milestone for e in result.events]
    # China Standard Time at origin, Alaska daylight time over Anchorage
    pickup = next(e for e in result.events if e.raw_code == "PU")
    assert pickup.occurred_at == datetime(2026, 5, 12, 3, 36, tzinfo=UTC)
    assert pickup.location is not None
    assert (pickup.location.city, pickup.location.country) == ("SHENZHEN", "CN")
    flight = next(e for e in result.events if e.raw_code == "Ow")
    assert flight.occurred_at_local is not None
    assert flight.occurred_at_local.isoformat() == "2026-05-12T21:16:00-08:00"
    # the order is the instants', not FedEx's list: Anchorage (-08:00) comes after Guangzhou (+08:00)
    assert [e.occurred_at for e in result.events] == sorted(e.occurred_at for e in result.events)


def test_failed_attempt_then_redirect_then_pickup_at_a_fedex_office() -> None:
    # Given an attempt that failed (nobody in), a redirect to a FedEx Office, and a collection there
    result = normalize("track_failed_attempt_then_pickup.json")
    tail = [(e.raw_code, e.milestone, e.exception) for e in result.events][-6:]
    # Then the reasons tell the failed attempt from the redirect
    assert tail == [
        ("OD", M.OUT_FOR_DELIVERY, None),
        ("DE/08", M.DELIVERY_FAILED, X.DELIVERY_FAILED),
        ("DE/A47", None, X.HELD),
        ("AF/A3", M.ARRIVED_HUB, None),  # "tendered at FedEx Office": detail, the AF decides
        ("HP/015A", M.AVAILABLE_FOR_PICKUP, None),
        ("DL", M.DELIVERED, None),
    ]
    assert result.unmapped == []


def test_return_to_shipper_after_two_failed_attempts_ends_returned() -> None:
    # Given a Ground parcel (three-character reasons) returned after two attempts
    result = normalize("track_return_to_shipper.json")
    by_code = [(e.raw_code, e.milestone, e.exception) for e in result.events]
    assert by_code.count(("DE/007", M.DELIVERY_FAILED, X.DELIVERY_FAILED)) == 2
    # Then the RS starts the return, and the DL that follows it is the return reaching the shipper
    assert ("RS/060G", M.RETURN_STARTED, X.RETURN_TO_SENDER) in by_code
    assert by_code[-1] == ("DL", M.RETURN_DELIVERED, None)
    assert M.DELIVERED not in [e.milestone for e in result.events]


def test_address_problem_is_a_failed_attempt_for_the_address() -> None:
    result = normalize("track_address_issue.json")
    last = result.events[-1]
    assert (last.raw_code, last.milestone, last.exception) == ("DE/03", M.DELIVERY_FAILED, X.ADDRESS_ISSUE)
    assert last.description == "Delivery exception"


def test_delays_and_a_shipment_exception_are_notices_not_movements() -> None:
    # Given a weather delay, a damaged parcel (FedEx sends SE, no damage code) and a delivery delay
    result = normalize("track_delay_and_shipment_exception.json")
    # Then each is a problem with no milestone
    assert [(e.raw_code, e.milestone, e.exception) for e in result.events][2:] == [
        ("DY/A52", None, X.DELAYED),
        ("SE", None, X.HELD),
        ("DD", None, X.DELAYED),
    ]
    assert result.unmapped == []


def test_label_created_with_no_physical_scan() -> None:
    result = normalize("track_label_created_only.json")
    assert readings(result) == [(M.LABEL_CREATED, None)]
    assert result.ignored is None


# ---------------------------------------------------------------------------- time


def test_times_without_offset_are_local_and_a_date_only_pickup_does_not_jump_the_label() -> None:
    # Given scans without an offset: a wall-clock arrival in Rochester, a scan placed only in
    # "US", and a pickup FedEx dates at midnight with no offset (listed last, as FedEx does)
    result = normalize("track_local_times_without_offset.json")
    by_code = {e.raw_code: e for e in result.events}
    # Then the arrival is read in Rochester's zone (EDT)
    arrival = next(e for e in result.events if e.location and e.location.city == "ROCHESTER" and e.raw_code == "AR")
    assert arrival.occurred_at == datetime(2026, 9, 3, 10, 15, tzinfo=UTC)
    assert arrival.time_source is TimeSource.LOCATION_TZ
    assert arrival.occurred_at_local is not None
    assert arrival.occurred_at_local.isoformat() == "2026-09-03T06:15:00-04:00"
    # a US scan without a state has no zone: UTC is assumed, and said
    moving = by_code["IT"]
    assert moving.time_source is TimeSource.ASSUMED_UTC
    assert moving.occurred_at_local is None
    # the date-only pickup is not put at midnight before the 10:36 label scan of the same day:
    # it takes the earliest instant the record allows, keeps FedEx's date and sorts after the label
    label, pickup = by_code["OC"], by_code["PU"]
    assert pickup.occurred_at == label.occurred_at == datetime(2026, 9, 1, 15, 36, tzinfo=UTC)
    assert pickup.time_source is TimeSource.LOCATION_TZ
    assert pickup.occurred_at_local is not None
    assert pickup.occurred_at_local.date().isoformat() == "2026-09-01"
    assert sorted(result.events, key=lambda e: e.sort_key)[:2] == [label, pickup]
    # and it still precedes the arrival at the origin hub that evening
    assert pickup.occurred_at < next(e for e in result.events if e.raw_code == "AR").occurred_at


def test_date_only_scan_with_nothing_earlier_that_day_stays_at_local_midnight() -> None:
    # Given only a date-only pickup in Fargo (Central daylight time)
    document = event_json("fedex", "track_local_times_without_offset.json")
    scans = document["output"]["completeTrackResults"][0]["trackResults"][0]["scanEvents"]
    document["output"]["completeTrackResults"][0]["trackResults"][0]["scanEvents"] = [scans[-1]]
    (pickup,) = normalize_json(document).events
    # Then it is local midnight: nothing earlier contradicts it
    assert pickup.occurred_at == datetime(2026, 9, 1, 5, 0, tzinfo=UTC)
    assert pickup.occurred_at_local is not None
    assert pickup.occurred_at_local.isoformat() == "2026-09-01T00:00:00-05:00"


# ---------------------------------------------------------------------------- results of one number


def test_reused_number_reads_only_the_current_parcel() -> None:
    # Given one number with two trackResults: a January parcel (delivered), then an April one
    result = normalize("track_reused_number.json")
    # Then only the April parcel's scans are events, and nothing is "ignored"
    assert readings(result) == [(M.LABEL_CREATED, None), (M.PICKED_UP, None), (M.ARRIVED_HUB, None)]
    assert all(e.occurred_at.month == 4 for e in result.events)
    assert result.ignored is None


def test_reused_number_choice_does_not_depend_on_list_order() -> None:
    document = event_json("fedex", "track_reused_number.json")
    document["output"]["completeTrackResults"][0]["trackResults"].reverse()
    assert readings(normalize_json(document)) == readings(normalize("track_reused_number.json"))


def test_current_parcel_without_scans_names_the_skipped_results() -> None:
    # Given the newest parcel (by its SHIP date) has no scans yet
    document = event_json("fedex", "track_reused_number.json")
    document["output"]["completeTrackResults"][0]["trackResults"][1]["scanEvents"] = []
    result = normalize_json(document)
    # Then nothing is emitted from the older parcel, and the answer says why
    assert result.events == []
    assert result.ignored is not None
    assert "no scan events" in result.ignored
    assert "1 older result(s)" in result.ignored


def test_duplicate_scans_inside_one_answer_share_one_identity() -> None:
    # Given the same arrival listed twice (the copy lacks the postal code) and two OD the same day
    result = normalize("track_duplicate_scans.json")
    arrivals = [e for e in result.events if e.raw_code == "AR"]
    outs = [e for e in result.events if e.raw_code == "OD"]
    # Then both copies are kept and carry one event id (stored once downstream)
    assert len(arrivals) == 2
    assert arrivals[0].event_id == arrivals[1].event_id
    # while the two real out-for-delivery scans stay two events
    assert len(outs) == 2
    assert outs[0].event_id != outs[1].event_id


# ---------------------------------------------------------------------------- no tracking


def test_not_found_is_ignored_not_failed() -> None:
    # Given FedEx's HTTP 200 answer with a per-number NOTFOUND error
    result = normalize("track_not_found.json")
    assert result.events == []
    assert result.ignored is not None
    assert "TRACKING.TRACKINGNUMBER.NOTFOUND" in result.ignored


def test_top_level_error_answer_is_ignored() -> None:
    result = normalize("error_response.json")
    assert result.events == []
    assert result.ignored == "FedEx answered with errors: TRACKING.TRACKINGNUMBER.EMPTY"


def test_one_known_and_one_unknown_number_emit_the_known_one() -> None:
    result = normalize("track_two_numbers_one_unknown.json")
    assert [(e.tracking_number, e.milestone) for e in result.events] == [("771655220093", M.PICKED_UP)]
    assert result.ignored is None


def test_empty_scan_list_is_ignored() -> None:
    document = event_json("fedex", "track_label_created_only.json")
    document["output"]["completeTrackResults"][0]["trackResults"][0]["scanEvents"] = []
    result = normalize_json(document)
    assert result.events == []
    assert result.ignored == "FedEx 449044918236604: the current parcel has no scan events"


def test_answer_that_is_not_about_tracking_is_ignored() -> None:
    # Given a proof-of-delivery document answer (output without completeTrackResults)
    result = fedex.normalize(b'{"output": {"documentType": "SIGNATURE_PROOF_OF_DELIVERY"}}', received_at=RECEIVED)
    assert result.events == []
    assert result.ignored is not None


# ---------------------------------------------------------------------------- codes


def test_unknown_codes_are_kept_reported_and_fall_back_on_the_derived_status() -> None:
    result = normalize("track_unknown_codes.json")
    by_code = [(e.raw_code, e.milestone, e.exception) for e in result.events]
    assert by_code == [
        ("PU", M.PICKED_UP, None),
        ("ZQ", M.IN_TRANSIT, None),  # unknown eventType, derived status IT
        ("XB", None, None),  # unknown eventType and derived status: kept, mapped to nothing
        ("DE/A99", M.DELIVERY_FAILED, X.DELIVERY_FAILED),  # unknown reason: still a failed attempt
        ("DL/014", M.DELIVERED, None),  # a delivery detail reason is not reported
    ]
    assert sorted(result.unmapped) == [
        "derivedStatusCode=ZZ",
        "eventType=XB",
        "eventType=ZQ",
        "exceptionCode=DE/A99",
    ]


@pytest.mark.parametrize(
    ("code", "reading"),
    [
        ("OC", (M.LABEL_CREATED, None)),
        ("PU", (M.PICKED_UP, None)),
        ("AR", (M.ARRIVED_HUB, None)),
        ("DP", (M.IN_TRANSIT, None)),  # bare: no location type to say "origin"
        ("IT", (M.IN_TRANSIT, None)),
        ("OD", (M.OUT_FOR_DELIVERY, None)),
        ("DL", (M.DELIVERED, None)),
        ("DE", (M.DELIVERY_FAILED, X.DELIVERY_FAILED)),
        ("EA", (M.IN_TRANSIT, None)),  # Movement reading: Enroute to Airport
        ("Ow", (M.IN_TRANSIT, None)),
        ("OW", (M.IN_TRANSIT, None)),
        ("HL", (M.AVAILABLE_FOR_PICKUP, None)),
        ("HP", (M.AVAILABLE_FOR_PICKUP, None)),
        ("CP", (M.CUSTOMS_STARTED, None)),
        ("CC", (M.CUSTOMS_CLEARED, None)),
        ("CD", (None, X.CUSTOMS_HOLD)),
        ("RS", (M.RETURN_STARTED, X.RETURN_TO_SENDER)),
        ("CA", (None, None)),
    ],
)
def test_bare_codes_relayed_by_aggregators(code: str, reading: tuple[Milestone | None, IncidentType | None]) -> None:
    # Given a FedEx eventType as EasyPost relays it in carrier_code
    mapping = fedex.map_carrier_code(code)
    # Then it maps as FedEx's own table says
    assert mapping is not None
    assert (mapping.milestone, mapping.exception) == reading


@pytest.mark.parametrize("code", ["ZZ", "", "  "])
def test_bare_code_fedex_does_not_have_maps_to_nothing(code: str) -> None:
    assert fedex.map_carrier_code(code) is None


def test_every_code_of_fedex_table_is_in_the_mapping() -> None:
    # FedEx "Tracking Status Codes": Movement, Regulatory and Possession (shared codes once)
    published = (
        "AA AC AD AF AO AP AR AX CA CH DD DE DL DP DR DS DY EA ED EO EP FD HL HP IT IX LO OC OD OF Ow OX PD PF "
        "PL PM PU PX RR RM RC RS RP LP RG RD SE SF SP TR CC CD CP SH CU BR TP"
    )
    table = MappingTable.load("fedex")
    assert set(published.split()) <= set(table.codes("eventType"))


def test_carrier_text_is_capped_and_stripped_of_control_characters() -> None:
    document = event_json("fedex", "track_label_created_only.json")
    scan = document["output"]["completeTrackResults"][0]["trackResults"][0]["scanEvents"][0]
    scan["eventDescription"] = "Label\x00 ready " + "x" * 1900
    (event,) = normalize_json(document).events
    assert event.description is not None
    assert len(event.description) == 500
    assert "\x00" not in event.description


# ---------------------------------------------------------------------------- last mile


def test_smartpost_names_the_usps_number_and_the_handover() -> None:
    # Given an AIV push for a Ground Economy (SmartPost) parcel that USPS delivers
    result = normalize("aiv_webhook_smartpost_usps.json")
    # Then the USPS number is linked to the FedEx one, and AX is the handover
    assert result.legs == [
        LegLink(
            first=TrackingKey("fedex", "61290983451120007748"),
            last_mile=TrackingKey("usps", "9205590164917312751089"),
        )
    ]
    assert (M.HANDED_TO_LAST_MILE, None) in readings(result)
    assert result.events[-1].milestone is M.DELIVERED


# ---------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"not json", "not JSON"),
        (b"[]", "track response"),
        (b"{}", "neither output nor errors"),
        (b'{"output": {"completeTrackResults": "many"}}', "completeTrackResults"),
        (b'{"output": {"completeTrackResults": [{"trackResults": [{"scanEvents": {}}]}]}}', "scanEvents"),
        (
            b'{"output": {"completeTrackResults": [{"trackResults": [{"scanEvents": [{"date": "2026-01-02T10:00:00Z"}]}]}]}}',
            "eventType",
        ),
        (
            b'{"output": {"completeTrackResults": [{"trackingNumber": "771234560011", "trackResults": '
            b'[{"scanEvents": [{"date": "soon", "eventType": "PU"}]}]}]}}',
            "date",
        ),
        (
            b'{"output": {"completeTrackResults": [{"trackResults": [{"scanEvents": [{"date": 5, "eventType": "PU"}]}]}]}}',
            "date",
        ),
    ],
)
def test_unreadable_answers_are_payload_errors_naming_the_field(body: bytes, field: str) -> None:
    with pytest.raises(PayloadError, match=field):
        fedex.normalize(body, received_at=RECEIVED)


def test_scan_without_date_is_a_payload_error() -> None:
    with pytest.raises(PayloadError, match="date"):
        normalize("track_scan_without_date.json")


def test_missing_or_unusable_tracking_number_is_a_payload_error() -> None:
    document = event_json("fedex", "track_label_created_only.json")
    entry = document["output"]["completeTrackResults"][0]
    entry["trackingNumber"] = None
    entry["trackResults"][0]["trackingNumberInfo"]["trackingNumber"] = "44904<script>"
    with pytest.raises(PayloadError, match="tracking number"):
        normalize_json(document)


# ---------------------------------------------------------------------------- signatures

# `openssl dgst -sha256 -hmac "aiv-token-Q7r2" -binary tests/events/fedex/aiv_webhook_smartpost_usps.json | base64`
AIV_BODY = event_bytes("fedex", "aiv_webhook_smartpost_usps.json")
AIV_SIGNATURE = "JWCY1E+42Hn6CmNLGw8t8HpL2QuNEkONDR+ckjyVCis="
AIV_TOKEN = "aiv-token-Q7r2"


class TestAivSignature:
    def test_valid_signature_from_an_independent_computation(self) -> None:
        # Given the raw body and the fdx-signature openssl computed with the security token
        # When the receiver verifies it
        # Then it is accepted
        FEDEX_SIGNATURE.verify({"fdx-signature": AIV_SIGNATURE}, AIV_BODY, [AIV_TOKEN], now=0)

    def test_tampered_body_is_refused(self) -> None:
        tampered = AIV_BODY.replace(b"JOHNSTON", b"JOHNSTOWN", 1)
        with pytest.raises(Unauthorized, match="does not match"):
            FEDEX_SIGNATURE.verify({"fdx-signature": AIV_SIGNATURE}, tampered, [AIV_TOKEN], now=0)

    def test_wrong_secret_is_refused(self) -> None:
        with pytest.raises(Unauthorized, match="does not match"):
            FEDEX_SIGNATURE.verify({"fdx-signature": AIV_SIGNATURE}, AIV_BODY, ["aiv-token-Q7r3"], now=0)

    def test_missing_header_is_refused(self) -> None:
        with pytest.raises(Unauthorized, match="missing fdx-signature"):
            FEDEX_SIGNATURE.verify({}, AIV_BODY, [AIV_TOKEN], now=0)

    def test_second_of_two_active_secrets_is_accepted(self) -> None:
        # Given a token rotation in progress: the new token first, the old one still active
        FEDEX_SIGNATURE.verify({"fdx-signature": AIV_SIGNATURE}, AIV_BODY, ["aiv-token-new", AIV_TOKEN], now=0)


# ---------------------------------------------------------------------------- builder round trip

MEMPHIS = Place("MEMPHIS", "TN", "38118", "US", "America/Chicago")
DENVER = Place("DENVER", "CO", "80216", "US", "America/Denver")
T0 = datetime(2026, 3, 2, 15, 0, 27, tzinfo=UTC)
NOW = T0 + timedelta(days=3)


def _scans_for(kind: str) -> list[TrueScan]:
    scans = [TrueScan("label_created", T0 - timedelta(hours=3), MEMPHIS), TrueScan("picked_up", T0, MEMPHIS)]
    if kind == "return_delivered":
        scans.append(TrueScan("return_started", T0 + timedelta(hours=20), DENVER))
    scans.append(TrueScan(kind, T0 + timedelta(days=1, minutes=7), DENVER))
    return scans


@pytest.mark.parametrize("service", ["FedEx Priority Overnight", "FedEx Ground"])
@pytest.mark.parametrize("kind", sorted(CANONICAL))
def test_every_kind_round_trips_through_the_builder(kind: str, service: str) -> None:
    # Given a parcel and a true scan of this kind, rendered as FedEx's Track API answers it
    parcel = Parcel(legs=(Leg("fedex", "771234560011"),), origin=MEMPHIS, destination=DENVER, service=service)
    scans = _scans_for(kind)
    body = fedex_format.poll_response(parcel, scans, now=NOW)
    # When the adapter reads it
    result = fedex.normalize(body, received_at=NOW)
    # Then the last scan's event has a reading the builder promises, at the true minute
    event = max(result.events, key=lambda e: e.sort_key)
    assert (event.milestone, event.exception) in fedex_format.RENDERS[kind]
    assert event.occurred_at.replace(second=0) == scans[-1].at.replace(second=0)
    assert (event.carrier, event.tracking_number) == ("fedex", "771234560011")
    assert len(result.events) == len(scans)
    assert result.unmapped == []


def test_builder_lists_scans_newest_first_with_each_place_offset() -> None:
    parcel = Parcel(legs=(Leg("fedex", "771234560011"),), origin=MEMPHIS, destination=DENVER)
    scans = [TrueScan("picked_up", T0, MEMPHIS), TrueScan("delivered", T0 + timedelta(days=1), DENVER)]
    document = json.loads(fedex_format.webhook_body(parcel, scans, now=NOW))
    events = document["output"]["completeTrackResults"][0]["trackResults"][0]["scanEvents"]
    assert [e["eventType"] for e in events] == ["DL", "PU"]
    assert events[0]["date"] == "2026-03-03T08:00:27-07:00"
    assert events[1]["date"] == "2026-03-02T09:00:27-06:00"


def test_builder_smartpost_parcel_links_the_usps_leg() -> None:
    # Given a FedEx Ground Economy parcel that USPS delivers
    parcel = Parcel(
        legs=(Leg("fedex", "61290983451120001234"), Leg("usps", "9205590164917300001234")),
        origin=MEMPHIS,
        destination=DENVER,
        service="FedEx Ground Economy",
    )
    scans = [
        TrueScan("picked_up", T0, MEMPHIS),
        TrueScan("handed_to_last_mile", T0 + timedelta(days=2), DENVER),
        TrueScan("delivered", T0 + timedelta(days=3), DENVER, leg=1),  # USPS's own scan
    ]
    result = fedex.normalize(fedex_format.poll_response(parcel, scans, now=NOW), received_at=NOW)
    # Then FedEx reports its own scans and names the USPS number
    assert readings(result) == [(M.PICKED_UP, None), (M.HANDED_TO_LAST_MILE, None)]
    assert result.events[-1].raw_code == "AX"
    assert [leg.last_mile for leg in result.legs] == [TrackingKey("usps", "9205590164917300001234")]


def test_builder_not_found_is_what_fedex_answers() -> None:
    status, body = fedex_format.not_found("771299990002")
    assert status == 200
    result = fedex.normalize(body, received_at=NOW)
    assert result.events == []
    assert result.ignored == "FedEx 771299990002: TRACKING.TRACKINGNUMBER.NOTFOUND"


# ---------------------------------------------------------------------------- reference payloads


def test_reference_payloads_parse() -> None:
    folder = REFERENCE_PAYLOADS / "fedex"
    if not folder.exists():
        pytest.skip("../shared/reference-payloads is not beside this clone")
    names = [
        p
        for p in sorted(folder.glob("*.json"))
        if any(word in p.name.lower() for word in ("tracking", "duplicate", "inconsistent"))
    ]
    assert names
    for path in names:
        result = fedex.normalize(path.read_bytes(), received_at=RECEIVED)
        assert result.events or result.ignored, path.name
        assert all(e.raw_code for e in result.events)


def test_reference_duplicate_number_reads_the_delivered_parcel() -> None:
    path = REFERENCE_PAYLOADS / "fedex" / "DuplicateTrackingResponse.json"
    if not path.exists():
        pytest.skip("../shared/reference-payloads is not beside this clone")
    result = fedex.normalize(path.read_bytes(), received_at=RECEIVED)
    # the result whose latest scan is newest (2024-04-26 09:26 -07:00, delivered)
    assert result.events[-1].milestone is M.DELIVERED
    assert result.events[-1].occurred_at == datetime(2024, 4, 26, 16, 26, tzinfo=UTC)
    assert "FD" not in [e.raw_code for e in result.events]


def test_reference_inconsistent_times_keep_the_pickup_after_the_label() -> None:
    path = REFERENCE_PAYLOADS / "fedex" / "InconsistentDateTimeResponse.json"
    if not path.exists():
        pytest.skip("../shared/reference-payloads is not beside this clone")
    result = fedex.normalize(path.read_bytes(), received_at=RECEIVED)
    ordered = sorted(result.events, key=lambda e: e.sort_key)
    assert [e.raw_code for e in ordered][:3] == ["OC", "PU", "AR"]
