"""UPS payloads (Track API answers, Track Alert events) → canonical events."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from infra.formats import ups as ups_format
from infra.formats.scan import CANONICAL, Leg, Parcel, Place, TrueScan
from shared.adapters import ups
from shared.adapters.base import LegLink, MappingTable, NormalizeResult
from shared.errors import PayloadError, Unauthorized
from shared.models.canonical import IncidentType, Milestone, TimeSource
from shared.models.shipment import TrackingKey
from shared.sources import UPS_CREDENTIAL
from tests.conftest import REFERENCE_PAYLOADS, event_bytes

RECEIVED = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
M, X = Milestone, IncidentType


def normalize(name: str) -> NormalizeResult:
    return ups.normalize(event_bytes("ups", name), received_at=RECEIVED)


def readings(result: NormalizeResult) -> list[tuple[Milestone | None, IncidentType | None]]:
    return [(e.milestone, e.exception) for e in result.events]


def body(document: Any) -> bytes:
    return json.dumps(document).encode()


# ---------------------------------------------------------------------------- Track API


def test_domestic_journey_reads_every_scan_newest_first_as_sent() -> None:
    # Given a Track API answer for a Ground parcel, activities newest-first as UPS lists them
    result = normalize("track_domestic_delivered.json")
    # Then every activity is one event of UPS, in the payload's order, and nothing is unmapped
    assert readings(result) == [
        (M.DELIVERED, None),
        (M.OUT_FOR_DELIVERY, None),
        (M.HANDED_TO_LAST_MILE, None),  # I/YP: preparing for delivery at the delivering facility
        (M.ARRIVED_HUB, None),
        (M.ARRIVED_HUB, None),
        (M.IN_TRANSIT, None),
        (M.ARRIVED_HUB, None),
        (M.IN_TRANSIT, None),
        (M.PICKED_UP, None),  # I/OR origin scan with status 160 "we have your package"
        (M.LABEL_CREATED, None),
    ]
    assert result.unmapped == []
    assert result.ignored is None
    assert result.legs == []
    delivered = result.events[0]
    assert (delivered.carrier, delivered.tracking_number) == ("ups", "1Z5R89390357114782")
    assert delivered.raw_code == "D/FS/011"
    assert delivered.description == "DELIVERED"
    assert delivered.received_at == RECEIVED


def test_gmt_fields_give_the_instant_and_the_local_twin_keeps_the_wall_clock() -> None:
    # Given activities with local date/time plus gmtDate/gmtTime written "HH:MM:SS"
    result = normalize("track_domestic_delivered.json")
    delivered, pickup = result.events[0], result.events[8]
    # Then the instant comes from the GMT fields, the local time from the local fields
    assert delivered.occurred_at == datetime(2026, 11, 5, 19, 7, 31, tzinfo=UTC)
    assert delivered.time_source is TimeSource.CARRIER_OFFSET
    assert delivered.occurred_at_local is not None
    assert delivered.occurred_at_local.isoformat() == "2026-11-05T14:07:31-05:00"
    # A Tacoma scan the evening before lands on the next UTC day
    assert pickup.occurred_at == datetime(2026, 11, 3, 2, 15, 44, tzinfo=UTC)
    assert pickup.occurred_at_local is not None
    assert pickup.occurred_at_local.isoformat() == "2026-11-02T18:15:44-08:00"
    assert delivered.location is not None
    assert delivered.location.model_dump() == {
        "city": "DAYTON",
        "region": "OH",
        "postal_code": "45402",
        "country": "US",
    }


def test_a_scan_listed_twice_gives_two_events_with_one_identity() -> None:
    # Given the same arrival scan twice in one answer
    result = normalize("track_domestic_delivered.json")
    first, second = result.events[3], result.events[4]
    # Then both are kept (never drop an event) and share the deterministic event id
    assert first.raw_code == second.raw_code == "I/AR/005"
    assert first.event_id == second.event_id


def test_cross_border_journey_with_customs_hold_and_five_digit_gmt_time() -> None:
    # Given an export from Shenzhen cleared in Louisville after a government hold
    result = normalize("track_cross_border_customs.json")
    assert readings(result) == [
        (M.DELIVERED, None),
        (M.OUT_FOR_DELIVERY, None),
        (M.HANDED_TO_LAST_MILE, None),  # I/DS destination scan
        (M.CUSTOMS_CLEARED, None),  # X/DA released by the clearing agency
        (None, X.CUSTOMS_HOLD),  # X/5 pending release by a government agency: a notice
        (M.CUSTOMS_STARTED, None),  # I/IP import scan
        (M.ARRIVED_HUB, None),
        (M.DEPARTED_ORIGIN, None),  # I/EP export scan
        (M.PICKED_UP, None),
        (M.LABEL_CREATED, None),
    ]
    import_scan, export_scan, label = result.events[5], result.events[7], result.events[9]
    # gmtTime "74700" (UPS drops the leading zero) is 07:47:00 UTC
    assert import_scan.occurred_at == datetime(2026, 6, 16, 7, 47, tzinfo=UTC)
    assert import_scan.occurred_at_local is not None
    assert import_scan.occurred_at_local.isoformat() == "2026-06-16T03:47:00-04:00"
    # "60500" in Shenzhen (UTC+8) is the same afternoon locally
    assert export_scan.occurred_at == datetime(2026, 6, 15, 6, 5, tzinfo=UTC)
    assert export_scan.occurred_at_local is not None
    assert export_scan.occurred_at_local.isoformat() == "2026-06-15T14:05:00+08:00"
    assert export_scan.location is not None
    assert (export_scan.location.city, export_scan.location.country) == ("SHENZHEN", "CN")
    # A label-only activity names only the country: the GMT fields still give the instant
    assert label.location is not None
    assert (label.location.city, label.location.country) == (None, "CN")
    assert label.time_source is TimeSource.CARRIER_OFFSET


def test_surepost_handoff_links_the_usps_number() -> None:
    # Given a Ground Saver parcel UPS handed to the post office
    result = normalize("track_surepost_usps_handoff.json")
    # Then the USPS_PIC alternate number is a last-mile leg; the untyped alternate (another
    # UPS number) is not
    assert result.legs == [
        LegLink(
            first=TrackingKey("ups", "1Z8F4A120398765401"),
            last_mile=TrackingKey("usps", "9274890199876543210987"),
        )
    ]
    assert readings(result) == [
        (M.DELIVERED, None),  # D with status 026 "delivered by local post office"
        (M.HANDED_TO_LAST_MILE, None),  # I/XA at the local post office
        (M.IN_TRANSIT, None),  # I/YM moving to the local post office
        (M.ARRIVED_HUB, None),
        (M.PICKED_UP, None),
    ]


def test_failed_attempt_then_redelivery() -> None:
    result = normalize("track_failed_attempt_then_delivered.json")
    assert readings(result) == [
        (M.DELIVERED, None),
        (M.OUT_FOR_DELIVERY, None),
        (M.DELIVERY_FAILED, X.DELIVERY_FAILED),  # X/48 receiver not available
        (M.OUT_FOR_DELIVERY, None),
        (None, X.ADDRESS_ISSUE),  # X/AA suite number missing: a notice, not an attempt
        (M.ARRIVED_HUB, None),
    ]
    assert result.events[2].raw_code == "X/48/022"
    assert result.events[2].occurred_at == datetime(2026, 12, 2, 22, 44, tzinfo=UTC)


def test_return_to_sender_after_an_attempt_at_a_vacant_address() -> None:
    result = normalize("track_return_to_sender.json")
    assert readings(result) == [
        (M.RETURN_DELIVERED, None),  # X/UA returned to the sender
        (M.IN_TRANSIT, None),
        (M.RETURN_STARTED, X.RETURN_TO_SENDER),  # X/DL (under type I, DL is a driver load)
        (M.DELIVERY_FAILED, X.ADDRESS_ISSUE),  # X/DW the delivery location is vacant
        (M.OUT_FOR_DELIVERY, None),
    ]


def test_label_only_answer_without_gmt_fields() -> None:
    # Given an older-style answer: local date/time only, and only a country
    result = normalize("track_label_only.json")
    (label,) = result.events
    assert label.milestone is M.LABEL_CREATED
    # A country alone does not determine a zone in the US: UTC is assumed, and said so
    assert label.time_source is TimeSource.ASSUMED_UTC
    assert label.occurred_at == datetime(2026, 10, 20, 16, 45, 9, tzinfo=UTC)
    assert label.occurred_at_local is None


def test_local_times_without_gmt_fields_use_offset_or_place() -> None:
    result = normalize("track_local_times.json")
    lost, arrived, departed, origin = result.events
    # local time only, in Phoenix (no daylight saving: UTC-7 in July)
    assert arrived.time_source is TimeSource.LOCATION_TZ
    assert arrived.occurred_at == datetime(2026, 7, 20, 9, 30, tzinfo=UTC)
    assert arrived.occurred_at_local is not None
    assert arrived.occurred_at_local.isoformat() == "2026-07-20T02:30:00-07:00"
    # local time with gmtOffset but no GMT date/time
    assert departed.time_source is TimeSource.CARRIER_OFFSET
    assert departed.occurred_at == datetime(2026, 7, 20, 1, 20, tzinfo=UTC)
    # no location at all
    assert origin.time_source is TimeSource.ASSUMED_UTC
    assert origin.location is None
    assert origin.occurred_at_local is None
    # and the lost package
    assert (lost.milestone, lost.exception) == (None, X.LOST)


def test_unknown_codes_are_kept_reported_and_fall_back_to_what_is_known() -> None:
    result = normalize("track_unknown_codes.json")
    new_type, unknown_exception, new_movement = result.events
    # an unknown type maps to nothing
    assert (new_type.milestone, new_type.exception) == (None, None)
    assert new_type.raw_code == "Q/ZZ/170"
    # an unknown exception code under the coarse status 013 "Exception": nothing either
    assert (unknown_exception.milestone, unknown_exception.exception) == (None, None)
    # an unknown movement code still reads as in transit from its status code 005
    assert new_movement.milestone is M.IN_TRANSIT
    assert sorted(result.unmapped) == ["activity=Q7", "movement=DZ", "status_code=170", "type=Q"]


def test_not_found_is_ignored_not_failed() -> None:
    # UPS answers an unknown number with HTTP 200 and a TW0001 warning
    result = normalize("track_not_found.json")
    assert result.events == []
    assert result.ignored is not None
    assert "TW0001" in result.ignored


def test_error_answer_is_ignored_not_failed() -> None:
    result = normalize("track_invalid_number.json")
    assert result.events == []
    assert result.ignored is not None
    assert "TV1002" in result.ignored


def test_package_without_activity_is_ignored() -> None:
    document = {"trackResponse": {"shipment": [{"inquiryNumber": "1Z5R89390357114782", "package": [{"activity": []}]}]}}
    result = ups.normalize(body(document), received_at=RECEIVED)
    assert result.events == []
    assert result.ignored == "UPS Track API response has no activity"


# ---------------------------------------------------------------------------- Track Alert


def test_track_alert_out_for_delivery_with_dotted_offset() -> None:
    result = normalize("alert_out_for_delivery.json")
    (event,) = result.events
    assert (event.milestone, event.exception) == (M.OUT_FOR_DELIVERY, None)
    assert event.raw_code == "I/OT/021"
    assert event.occurred_at == datetime(2026, 10, 13, 12, 52, 17, tzinfo=UTC)
    assert event.occurred_at_local is not None
    assert event.occurred_at_local.isoformat() == "2026-10-13T08:52:17-04:00"
    assert event.location is not None
    assert (event.location.city, event.location.region, event.location.postal_code) == ("Greensboro", "NC", None)


def test_track_alert_delivery_and_the_photo_update_after_it() -> None:
    delivered = normalize("alert_delivered.json").events[0]
    photo = normalize("alert_delivery_photo.json")
    assert delivered.milestone is M.DELIVERED
    assert delivered.location is not None
    assert delivered.location.postal_code == "27401"
    # A U-type update (delivery photo) is information: no milestone, nothing unmapped
    assert readings(photo) == [(None, None)]
    assert photo.unmapped == []
    assert photo.events[0].raw_code == "U/PX/155"


def test_track_alert_problem_notices() -> None:
    # descriptionCode may arrive as a number (UPS's YAML writes 011 unquoted)
    assert readings(normalize("alert_weather_delay.json")) == [(None, X.DELAYED)]
    assert normalize("alert_weather_delay.json").events[0].raw_code == "X/7W/52"
    assert readings(normalize("alert_damaged.json")) == [(None, X.DAMAGED)]
    # X/XA is a clearance query (under type I, XA is "at the local post office")
    assert readings(normalize("alert_customs_hold.json")) == [(None, X.CUSTOMS_HOLD)]


def test_track_alert_without_gmt_fields_uses_the_dotted_offset() -> None:
    (event,) = normalize("alert_local_time_offset_only.json").events
    assert event.time_source is TimeSource.CARRIER_OFFSET
    assert event.occurred_at == datetime(2026, 10, 11, 6, 30, tzinfo=UTC)
    assert event.occurred_at_local is not None
    assert event.occurred_at_local.isoformat() == "2026-10-10T23:30:00-07:00"


def test_track_alert_without_tracking_number_is_a_payload_error() -> None:
    with pytest.raises(PayloadError, match="trackingNumber"):
        normalize("alert_missing_tracking_number.json")


# ---------------------------------------------------------------------------- codes


@pytest.mark.parametrize(
    ("kind", "code", "status_code", "expected"),
    [
        ("I", "OT", "021", (M.OUT_FOR_DELIVERY, None)),
        ("X", "OT", None, (None, X.CUSTOMS_HOLD)),  # same code, other type, other meaning
        ("I", "DL", "005", (M.IN_TRANSIT, None)),  # driver load
        ("X", "DL", None, (M.RETURN_STARTED, X.RETURN_TO_SENDER)),
        ("U", "UP", "154", (None, None)),  # updated delivery date
        ("X", "UP", None, (None, X.DELAYED)),  # UPS is verifying the package location
        ("D", "ZP", "161", (M.AVAILABLE_FOR_PICKUP, None)),  # delivered to an Access Point
        ("D", "KB", "011", (M.DELIVERED, None)),
        ("X", "KB", None, (None, None)),  # legacy sample: UPS internal activity
        ("I", "F0", "005", (M.ARRIVED_HUB, None)),  # not a movement (ULD) code: UPS's appendix
        ("X", None, "059", (None, X.DAMAGED)),  # no code: the status code decides
        ("I", None, None, (M.IN_TRANSIT, None)),  # nothing finer: the type decides
        ("X", "SR", "003", (M.CUSTOMS_CLEARED, None)),  # the code beats a coarser status code
        (None, "AR", None, (M.ARRIVED_HUB, None)),  # no type: read like a relayed code
    ],
)
def test_codes_are_read_per_type(
    kind: str | None,
    code: str | None,
    status_code: str | None,
    expected: tuple[Milestone | None, IncidentType | None],
) -> None:
    mapping, unmapped = ups.map_codes(kind, code, status_code)
    assert mapping is not None
    assert (mapping.milestone, mapping.exception) == expected
    assert unmapped == []


def test_a_delivery_type_stays_a_delivery_whatever_its_code() -> None:
    mapping, unmapped = ups.map_codes("D", "Q1Q", "013")
    assert mapping is not None
    assert mapping.milestone is M.DELIVERED
    assert unmapped == ["delivery=Q1Q"]


@pytest.mark.parametrize("status_code", ["003", "3", 3, " 003 "])
def test_status_codes_are_read_with_or_without_zero_padding(status_code: str | int) -> None:
    mapping, _ = ups.map_codes("M", None, status_code)
    assert mapping is not None
    assert mapping.milestone is M.LABEL_CREATED


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("AR", (M.ARRIVED_HUB, None)),
        ("DP", (M.IN_TRANSIT, None)),  # a departure, not "manifest processed"
        ("OT", (M.OUT_FOR_DELIVERY, None)),
        ("XA", (M.HANDED_TO_LAST_MILE, None)),  # UPS: "at local post office"
        ("FS", (M.DELIVERED, None)),
        ("KB", (M.DELIVERED, None)),
        ("MP", (M.LABEL_CREATED, None)),
        ("OR", (M.PICKED_UP, None)),
        ("48", (M.DELIVERY_FAILED, X.DELIVERY_FAILED)),
        ("7W", (None, X.DELAYED)),
        (" ot ", (M.OUT_FOR_DELIVERY, None)),
    ],
)
def test_bare_codes_relayed_by_aggregators(code: str, expected: tuple[Milestone | None, IncidentType | None]) -> None:
    mapping = ups.map_carrier_code(code)
    assert mapping is not None
    assert (mapping.milestone, mapping.exception) == expected


@pytest.mark.parametrize("code", ["WE", "NA", "", "ZZZ"])
def test_bare_codes_ups_does_not_document_are_unknown(code: str) -> None:
    assert ups.map_carrier_code(code) is None


def test_documented_status_movement_manifest_and_update_codes_are_all_in_the_table() -> None:
    # UPS's "Status/Description Codes" (0-169 with gaps), "Movement Scans", "Manifest Codes",
    # "Updates", "Package Activity Types" (+ legacy P)
    numbers = [0, 3, 5, 6, 7, *range(10, 15), *range(16, 31), *range(32, 150), *range(153, 170)]
    status_codes = {str(number) for number in numbers}
    movement = "AG AR AT CA CD CL DL DP DS EP HU IP LC LM OC OD OF OR OT PC PL PT PU SP UA UD UL VP WH XA XD XR YF YH YI YM YN YP"
    table = MappingTable.load("ups")
    assert set(table.codes("status_code")) == status_codes
    assert set(table.codes("movement")) == set(movement.split())
    assert set(table.codes("manifest")) == {"DP", "MP", "RD", "VP"}
    assert set(table.codes("update")) == {"PX", "UP", "UT"}
    assert set(table.codes("type")) == {"D", "I", "M", "MV", "X", "U", "DO", "DD", "W", "NA", "P"}


def test_every_code_of_ups_activity_appendix_is_in_the_table() -> None:
    path = REFERENCE_PAYLOADS / "ups" / "Tracking-exceptions-movement-delivery-codes.txt"
    if not path.exists():
        pytest.skip("../shared/reference-payloads is not beside this clone")
    lines = path.read_text(encoding="utf-8").splitlines()
    section = lines[lines.index("Package Exceptions") : lines.index("Delivery Codes")]
    codes = {line.strip() for line in section[3:] if re.fullmatch(r"[A-Z0-9]{1,2}", line.strip())}
    table = set(MappingTable.load("ups").codes("activity"))
    assert len(codes) > 650
    assert codes - table == set()


# ---------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b"\xff\xfe",
        b"[]",
        b'"trackResponse"',
        b'{"shipments": []}',
        b'{"trackResponse": {"shipment": "one"}}',
        b'{"trackResponse": {"shipment": [{"package": [{"trackingNumber": 7, "activity": []}]}]}}',
        b'{"response": {"errors": "none"}}',
        b'{"trackingNumber": "1Z9W8V7U0355667781"}',
        b'{"trackingNumber": ["1Z"], "activityStatus": {}}',
    ],
)
def test_unreadable_payloads_are_payload_errors(payload: bytes) -> None:
    with pytest.raises(PayloadError):
        ups.normalize(payload, received_at=RECEIVED)


def test_activity_without_a_date_is_a_payload_error_naming_the_field() -> None:
    document = json.loads(event_bytes("ups", "track_label_only.json"))
    del document["trackResponse"]["shipment"][0]["package"][0]["activity"][0]["date"]
    with pytest.raises(PayloadError, match=r"activity\.date"):
        ups.normalize(body(document), received_at=RECEIVED)


def test_malformed_date_is_a_payload_error_that_does_not_echo_the_value() -> None:
    document = json.loads(event_bytes("ups", "track_label_only.json"))
    document["trackResponse"]["shipment"][0]["package"][0]["activity"][0]["date"] = "<script>x"
    with pytest.raises(PayloadError) as caught:
        ups.normalize(body(document), received_at=RECEIVED)
    assert "script" not in caught.value.detail


def test_tracking_number_with_characters_no_carrier_uses_is_a_payload_error() -> None:
    document = json.loads(event_bytes("ups", "alert_out_for_delivery.json"))
    document["trackingNumber"] = "1Z9W8V7U03556677<81"
    with pytest.raises(PayloadError, match="tracking number"):
        ups.normalize(body(document), received_at=RECEIVED)


def test_carrier_text_is_capped_and_stripped_of_control_characters() -> None:
    document = json.loads(event_bytes("ups", "alert_damaged.json"))
    document["activityStatus"]["description"] = "Damaged\x00 " + "x" * 1900
    (event,) = ups.normalize(body(document), received_at=RECEIVED).events
    assert event.description is not None
    assert len(event.description) == 500
    assert "\x00" not in event.description


# ---------------------------------------------------------------------------- signatures

UPS_BODY = event_bytes("ups", "alert_delivered.json")


class TestUpsCredential:
    """Track Alert sends a static credential (no payload signature): bearer token or x-api-key."""

    def test_valid_bearer_token(self) -> None:
        UPS_CREDENTIAL.verify({"authorization": "Bearer trk-alert-7f3a"}, UPS_BODY, ["trk-alert-7f3a"], now=0)

    def test_valid_x_api_key(self) -> None:
        UPS_CREDENTIAL.verify({"x-api-key": "trk-alert-7f3a"}, UPS_BODY, ["trk-alert-7f3a"], now=0)

    def test_bearer_prefix_is_case_insensitive(self) -> None:
        UPS_CREDENTIAL.verify({"authorization": "bearer trk-alert-7f3a"}, UPS_BODY, ["trk-alert-7f3a"], now=0)

    def test_wrong_token_is_refused(self) -> None:
        with pytest.raises(Unauthorized, match="not one of the configured tokens"):
            UPS_CREDENTIAL.verify({"authorization": "Bearer trk-alert-0000"}, UPS_BODY, ["trk-alert-7f3a"], now=0)

    def test_missing_headers_are_refused(self) -> None:
        with pytest.raises(Unauthorized, match="missing authorization or x-api-key header"):
            UPS_CREDENTIAL.verify({"user-agent": "UPSPubSubTrackingService"}, UPS_BODY, ["trk-alert-7f3a"], now=0)

    def test_other_authorization_scheme_is_refused(self) -> None:
        # The right token behind "Basic" is not a bearer credential
        with pytest.raises(Unauthorized):
            UPS_CREDENTIAL.verify({"authorization": "Basic trk-alert-7f3a"}, UPS_BODY, ["trk-alert-7f3a"], now=0)

    def test_second_of_two_configured_tokens_is_accepted(self) -> None:
        UPS_CREDENTIAL.verify(
            {"authorization": "Bearer trk-alert-7f3a"}, UPS_BODY, ["trk-alert-new", "trk-alert-7f3a"], now=0
        )

    def test_no_configured_token_fails_closed(self) -> None:
        with pytest.raises(Unauthorized, match="no webhook secret"):
            UPS_CREDENTIAL.verify({"x-api-key": "trk-alert-7f3a"}, UPS_BODY, [], now=0)


# ---------------------------------------------------------------------------- round trip

ORIGIN = Place("ATLANTA", "GA", "30318", "US", "America/New_York")
HUB = Place("LOUISVILLE", "KY", "40209", "US", "America/Kentucky/Louisville")
DESTINATION = Place("DENVER", "CO", "80216", "US", "America/Denver")
T0 = datetime(2026, 3, 7, 15, 4, 27, tzinfo=UTC)  # the US switch to daylight time follows


def _journey(kind: str) -> tuple[Parcel, list[TrueScan], TrueScan]:
    parcel = Parcel(
        legs=(Leg("ups", "1Z4E6R8T0312345675"), Leg("usps", "9205590221582700001234")),
        origin=ORIGIN,
        destination=DESTINATION,
    )
    before = [
        TrueScan("label_created", T0, None),
        TrueScan("picked_up", T0 + timedelta(hours=6), ORIGIN),
        TrueScan("arrived_hub", T0 + timedelta(hours=19), HUB),
    ]
    target = TrueScan(kind, T0 + timedelta(hours=40, minutes=17), DESTINATION)
    usps_scan = TrueScan("delivered", T0 + timedelta(hours=60), DESTINATION, leg=1)
    return parcel, [*before, target, usps_scan], target


@pytest.mark.parametrize("kind", sorted(CANONICAL))
def test_round_trip_poll_response(kind: str) -> None:
    # Given the Track API answer UPS would give after a scan of this kind
    parcel, scans, target = _journey(kind)
    payload = ups_format.poll_response(parcel, scans, now=T0 + timedelta(days=3))
    # When it is normalized
    result = ups.normalize(payload, received_at=RECEIVED)
    # Then the USPS leg's own scan is not in UPS's answer, the leg is linked, and the scan
    # reads back as rendered, at the right minute, for UPS's number
    assert len(result.events) == 4
    assert result.unmapped == []
    assert result.legs == [
        LegLink(TrackingKey("ups", "1Z4E6R8T0312345675"), TrackingKey("usps", "9205590221582700001234"))
    ]
    event = next(e for e in result.events if e.occurred_at.replace(second=0) == target.at.replace(second=0))
    assert (event.milestone, event.exception) in ups_format.RENDERS[kind]
    assert (event.carrier, event.tracking_number) == ("ups", "1Z4E6R8T0312345675")
    assert event.occurred_at_local is not None
    assert event.occurred_at_local.utcoffset() == target.local().utcoffset()


@pytest.mark.parametrize("kind", sorted(CANONICAL))
def test_round_trip_track_alert(kind: str) -> None:
    parcel, scans, target = _journey(kind)
    # UPS posts one event for its latest scan (the USPS leg's scan is not UPS's to send)
    payload = ups_format.webhook_body(parcel, scans, now=T0 + timedelta(days=3))
    (event,) = ups.normalize(payload, received_at=RECEIVED).events
    assert (event.milestone, event.exception) in ups_format.RENDERS[kind]
    assert event.occurred_at.replace(second=0) == target.at.replace(second=0)
    assert (event.carrier, event.tracking_number) == ("ups", "1Z4E6R8T0312345675")


def test_builder_renders_every_kind_and_ups_ways_of_writing_time() -> None:
    assert set(ups_format.RENDERS) == set(CANONICAL)
    parcel, scans, _ = _journey("out_for_delivery")
    answer = json.loads(ups_format.poll_response(parcel, scans, now=T0))
    activities = answer["trackResponse"]["shipment"][0]["package"][0]["activity"]
    # newest first, zero-padded status codes, GMT time with colons, offsets with a colon
    assert [a["status"]["code"] for a in activities] == ["OT", "AR", "OR", "MP"]
    assert activities[0]["status"]["statusCode"] == "021"
    assert re.fullmatch(r"\d\d:\d\d:\d\d", activities[0]["gmtTime"])
    assert activities[0]["gmtOffset"] == "-06:00"  # Denver, after the switch to daylight time
    assert activities[-1]["gmtOffset"] == "+00:00"  # a label activity with no place is rendered in UTC
    alert = json.loads(ups_format.webhook_body(parcel, scans, now=T0))
    assert alert["gmtOffset"] == "-06.00"
    assert "postalCode" not in alert["activityLocation"]  # blank until the delivery event


def test_builder_not_found_is_what_ups_really_returns() -> None:
    status, payload = ups_format.not_found("1Z4E6R8T0312345675")
    assert status == 200
    result = ups.normalize(payload, received_at=RECEIVED)
    assert result.events == []
    assert result.ignored is not None
    assert "TW0001" in result.ignored


# ---------------------------------------------------------------------------- reference payloads


def _reference_files() -> list[str]:
    folder = REFERENCE_PAYLOADS / "ups"
    if not folder.exists():
        return []
    return sorted(
        p.name for p in folder.iterdir() if any(word in p.name for word in ("Tracking", "Duplicate", "Inconsistent"))
    )


@pytest.mark.parametrize("name", _reference_files() or ["(absent)"])
def test_reference_payloads_parse_without_unhandled_errors(name: str) -> None:
    path = REFERENCE_PAYLOADS / "ups" / name
    if not path.exists():
        pytest.skip("../shared/reference-payloads is not beside this clone")
    # Code tables and OpenAPI documents are not payloads: a PayloadError is the handled answer
    try:
        result = ups.normalize(path.read_bytes(), received_at=RECEIVED)
    except PayloadError:
        assert not name.endswith(".json")
        return
    assert result.events or result.ignored
    assert all(e.raw_code for e in result.events)
