"""AfterShip webhooks → canonical events."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from infra.formats import aftership as builder
from infra.formats.scan import CANONICAL, Leg, Parcel, Place, TrueScan
from shared.adapters import aftership
from shared.adapters.base import CodeMapping, LegLink, MappingTable, NormalizeResult
from shared.errors import PayloadError, Unauthorized
from shared.models.canonical import CanonicalEvent, IncidentType, Milestone, TimeSource
from shared.models.shipment import TrackingKey
from shared.sources import AFTERSHIP_SIGNATURE
from tests.conftest import event_bytes

RECEIVED = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
M, X = Milestone, IncidentType


def normalize(name: str) -> NormalizeResult:
    return aftership.normalize(event_bytes("aftership", name), received_at=RECEIVED)


Edit = Callable[[Any], object]


def edited(name: str, edit: Edit) -> bytes:
    """A fixture changed by ``edit(document)`` (which mutates the parsed JSON)."""
    document = json.loads(event_bytes("aftership", name))
    edit(document)
    return json.dumps(document).encode()


# ------------------------------------------------------------------------------ journeys


def test_domestic_journey_reads_every_checkpoint_of_the_physical_carrier() -> None:
    # Given a tracking_update for a USPS parcel, Portland OR → Madison WI, newer field names
    result = normalize("tracking_update_usps_domestic.json")
    # Then every checkpoint is one event, oldest first, in canonical terms
    assert [(e.milestone, e.exception) for e in result.events] == [
        (M.LABEL_CREATED, None),
        (M.PICKED_UP, None),
        (M.DEPARTED_ORIGIN, None),  # InTransit_007 right after the acceptance: "Departed Post Office"
        (M.ARRIVED_HUB, None),
        (M.ARRIVED_HUB, None),
        (M.OUT_FOR_DELIVERY, None),
        (M.DELIVERED, None),
    ]
    # The carrier is USPS (never AfterShip); the number is as USPS prints it, without spaces
    assert {(e.carrier, e.tracking_number) for e in result.events} == {("usps", "9434650106151012345671")}
    picked_up = result.events[1]
    assert picked_up.occurred_at == datetime(2026, 10, 2, 0, 40, tzinfo=UTC)
    assert picked_up.time_source is TimeSource.CARRIER_OFFSET
    assert picked_up.occurred_at_local is not None
    assert picked_up.occurred_at_local.isoformat() == "2026-10-01T17:40:00-07:00"
    assert picked_up.location is not None
    # ISO alpha-3 "USA" becomes alpha-2
    assert (picked_up.location.city, picked_up.location.region, picked_up.location.postal_code) == (
        "Portland",
        "OR",
        "97203",
    )
    assert picked_up.location.country == "US"
    assert picked_up.raw_code == "InTransit/InTransit_002"
    assert picked_up.description == "USPS in possession of item"
    assert result.unmapped == []
    assert result.legs == []
    assert result.ignored is None


def test_checkpoint_time_without_offset_is_wall_time_at_the_checkpoint() -> None:
    # Given a departure scan at 19:05 in Portland, OR with no offset (as AfterShip relays USPS)
    departed = normalize("tracking_update_usps_domestic.json").events[2]
    # Then it is read in Pacific daylight time, and said so
    assert departed.occurred_at == datetime(2026, 10, 2, 2, 5, tzinfo=UTC)
    assert departed.time_source is TimeSource.LOCATION_TZ
    assert departed.occurred_at_local is not None
    assert departed.occurred_at_local.isoformat() == "2026-10-01T19:05:00-07:00"


def test_a_checkpoint_repeated_with_its_place_filled_in_is_the_same_scan() -> None:
    # Given the arrival checkpoint twice: first without a place, then enriched (research Q6)
    first, second = normalize("tracking_update_usps_domestic.json").events[3:5]
    # Then both are emitted, with one identity, so the timeline stores the scan once
    assert first.location is None
    assert second.location is not None
    assert first.event_id == second.event_id


def test_cross_border_parcel_links_the_last_mile_number_and_reads_the_handover() -> None:
    # Given a YunExpress parcel handed to USPS, with AfterShip's last_mile object and legacy
    # field names (zip, country_iso3), every time local without an offset
    result = normalize("tracking_update_cross_border_last_mile.json")
    yun = TrackingKey("yunexpress", "YT2610021234567")
    usps = TrackingKey("usps", "9261290312833012345678")
    # Then both numbers are one parcel
    assert result.legs == [LegLink(first=yun, last_mile=usps)]
    # and each scan belongs to the number of the carrier that made it
    keys = [TrackingKey(e.carrier, e.tracking_number) for e in result.events]
    assert keys == [yun] * 6 + [usps] * 5
    assert [(e.milestone, e.exception) for e in result.events] == [
        (M.LABEL_CREATED, None),
        (M.PICKED_UP, None),
        (M.DEPARTED_ORIGIN, None),  # "Departed from the airport of origin", after the acceptance
        (M.ARRIVED_HUB, None),  # InTransit_004: arrived in the destination country
        (M.CUSTOMS_STARTED, None),
        (M.CUSTOMS_CLEARED, None),
        (M.LABEL_CREATED, None),  # USPS pre-advice: not the parcel changing hands
        (M.HANDED_TO_LAST_MILE, None),  # USPS's first movement scan is the handover
        (M.ARRIVED_HUB, None),
        (M.OUT_FOR_DELIVERY, None),
        (M.DELIVERED, None),
    ]
    # Shenzhen wall time is China Standard Time, City of Industry is Pacific daylight time
    picked_up, handover = result.events[1], result.events[7]
    assert picked_up.occurred_at == datetime(2026, 9, 20, 10, 30, tzinfo=UTC)
    assert picked_up.time_source is TimeSource.LOCATION_TZ
    assert handover.occurred_at == datetime(2026, 9, 25, 14, 35, tzinfo=UTC)
    assert handover.location is not None
    assert handover.location.country == "US"
    # A US checkpoint with no state does not determine a zone: UTC is assumed, and said so
    pre_advice = result.events[6]
    assert pre_advice.time_source is TimeSource.ASSUMED_UTC
    assert pre_advice.occurred_at_local is None


def test_last_mile_carrier_is_recognised_without_a_last_mile_object() -> None:
    # Given the same parcel from an API version without last_mile: USPS checkpoints under
    # the YunExpress number
    body = edited("tracking_update_cross_border_last_mile.json", lambda d: d["msg"].pop("last_mile"))
    result = aftership.normalize(body, received_at=RECEIVED)
    yun = TrackingKey("yunexpress", "YT2610021234567")
    usps = TrackingKey("usps", "YT2610021234567")
    # Then the USPS scans keep the only number known, and both keys are linked
    assert result.legs == [LegLink(first=yun, last_mile=usps)]
    assert {TrackingKey(e.carrier, e.tracking_number) for e in result.events[6:]} == {usps}
    # and the handover is still read from USPS's first movement scan
    assert result.events[7].milestone is M.HANDED_TO_LAST_MILE


def test_a_last_mile_number_no_carrier_could_print_is_left_out() -> None:
    body = edited(
        "tracking_update_cross_border_last_mile.json", lambda d: d["msg"]["last_mile"].update(tracking_number="n/a")
    )
    result = aftership.normalize(body, received_at=RECEIVED)
    assert result.legs == [
        LegLink(TrackingKey("yunexpress", "YT2610021234567"), TrackingKey("usps", "YT2610021234567"))
    ]
    assert len(result.events) == 11


def test_failed_attempt_then_delivery() -> None:
    result = normalize("tracking_update_failed_attempt_then_delivered.json")
    assert [(e.milestone, e.exception) for e in result.events] == [
        (M.LABEL_CREATED, None),
        (M.PICKED_UP, None),
        (M.IN_TRANSIT, None),
        (M.OUT_FOR_DELIVERY, None),
        (M.DELIVERY_FAILED, X.DELIVERY_FAILED),  # AttemptFail_002: addressee not available
        (M.OUT_FOR_DELIVERY, None),  # OutForDelivery_003: customer contacted
        (M.DELIVERED, None),
    ]
    assert result.events[4].raw_code == "AttemptFail/AttemptFail_002"


def test_a_date_only_checkpoint_is_local_midnight_at_its_place() -> None:
    # Given "checkpoint_time": "2026-11-02" in Tennessee (a bare date, research Q4)
    label = normalize("tracking_update_failed_attempt_then_delivered.json").events[0]
    # Then it is midnight Central time, read from the place
    assert label.occurred_at == datetime(2026, 11, 2, 6, 0, tzinfo=UTC)
    assert label.time_source is TimeSource.LOCATION_TZ
    assert label.location is not None
    assert (label.location.city, label.location.region, label.location.country) == (None, "TN", "US")


def test_a_checkpoint_with_no_place_keeps_its_offset_and_no_location() -> None:
    in_transit = normalize("tracking_update_failed_attempt_then_delivered.json").events[2]
    assert in_transit.location is None
    assert in_transit.occurred_at == datetime(2026, 11, 3, 7, 5, tzinfo=UTC)
    assert in_transit.occurred_at_local is not None
    assert in_transit.occurred_at_local.utcoffset() == timedelta(hours=-6)


def test_address_issue_return_and_returned_to_sender() -> None:
    # Given a UPS parcel with a wrong address, sent back and received by the sender
    result = normalize("tracking_update_return_to_sender.json")
    assert [(e.milestone, e.exception) for e in result.events] == [
        (M.PICKED_UP, None),
        (M.ARRIVED_HUB, None),
        (None, X.ADDRESS_ISSUE),  # Exception_007: a notice, not a movement
        (M.RETURN_STARTED, X.RETURN_TO_SENDER),  # Exception_010
        (M.RETURN_DELIVERED, None),  # Exception_011: not a mere "exception"
    ]
    assert [e.raw_code for e in result.events][-2:] == ["Exception/Exception_010", "Exception/Exception_011"]
    # UPS wall time in Georgia and Florida: Eastern daylight time
    assert result.events[0].occurred_at == datetime(2026, 8, 10, 22, 0, tzinfo=UTC)


def test_each_exception_subtag_keeps_its_own_meaning() -> None:
    result = normalize("tracking_update_exceptions.json")
    assert [(e.milestone, e.exception) for e in result.events] == [
        (M.PICKED_UP, None),
        (None, X.DELAYED),  # Exception_017: extreme weather
        (M.CUSTOMS_STARTED, None),
        (None, X.CUSTOMS_HOLD),  # Exception_004: delayed in customs
        (None, X.CUSTOMS_HOLD),  # Exception_018: missing documents
        (None, X.DAMAGED),  # Exception_012
        (None, X.LOST),  # Exception_013
        (None, None),  # Exception_014: in no public list
        (None, None),  # an unknown tag and subtag
    ]
    # Leipzig with +02:00 keeps its offset
    assert result.events[0].occurred_at_local is not None
    assert result.events[0].occurred_at_local.isoformat() == "2026-05-04T14:00:00+02:00"
    assert result.events[0].location is not None
    assert result.events[0].location.country == "DE"


def test_unknown_codes_are_kept_and_reported() -> None:
    result = normalize("tracking_update_exceptions.json")
    unknown = result.events[-2:]
    assert [e.raw_code for e in unknown] == ["Exception/Exception_014", "UnderReview/UnderReview_001"]
    assert all(e.milestone is None and e.exception is None for e in unknown)
    assert result.unmapped == ["subtag=Exception_014", "tag=UnderReview", "subtag=UnderReview_001"]
    # Two different unmapped scans never collapse into one identity
    assert unknown[0].event_id != unknown[1].event_id


def test_label_created_with_no_scan_yet() -> None:
    result = normalize("tracking_update_info_received_only.json")
    (label,) = result.events
    assert (label.carrier, label.tracking_number, label.milestone) == ("ontrac", "D10011234567890", M.LABEL_CREATED)
    # Phoenix keeps standard time all summer
    assert label.occurred_at == datetime(2026, 7, 1, 17, 0, tzinfo=UTC)
    assert label.occurred_at_local is not None
    assert label.occurred_at_local.utcoffset() == timedelta(hours=-7)


# ------------------------------------------------------------------------------ nothing to store


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("edd_revise.json", "edd_revise"),
        ("tracking_update_pending_no_checkpoints.json", "no checkpoints"),
    ],
)
def test_payloads_without_checkpoints_to_store_are_ignored(name: str, reason: str) -> None:
    result = normalize(name)
    assert result.events == []
    assert result.ignored is not None
    assert reason in result.ignored


def test_tracking_pending_time_event_is_ignored() -> None:
    body = edited("edd_revise.json", lambda d: d.update(event="tracking_pending_time"))
    result = aftership.normalize(body, received_at=RECEIVED)
    assert result.events == []
    assert result.ignored is not None


def test_missing_tracking_number_is_a_payload_error() -> None:
    with pytest.raises(PayloadError, match="tracking_number"):
        normalize("tracking_update_missing_tracking_number.json")


def test_null_checkpoints_are_an_empty_list() -> None:
    body = edited("tracking_update_pending_no_checkpoints.json", lambda d: d["msg"].update(checkpoints=None))
    result = aftership.normalize(body, received_at=RECEIVED)
    assert (result.events, result.ignored is not None) == ([], True)


def _drop_checkpoint_time(document: Any) -> None:
    del document["msg"]["checkpoints"][0]["checkpoint_time"]


def _number_as_int(document: Any) -> None:
    document["msg"]["tracking_number"] = 9434650106151012345671


def _checkpoints_not_a_list(document: Any) -> None:
    document["msg"]["checkpoints"] = "none"


def _bad_time(document: Any) -> None:
    document["msg"]["checkpoints"][0]["checkpoint_time"] = "yesterday"


def _bad_number(document: Any) -> None:
    document["msg"]["tracking_number"] = "94346501<script>"


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (_drop_checkpoint_time, "checkpoint_time"),
        (_number_as_int, "tracking_number"),
        (_checkpoints_not_a_list, "checkpoints"),
        (_bad_time, "timestamp"),
        (_bad_number, "tracking number"),
    ],
)
def test_unreadable_fields_are_payload_errors_naming_the_field(edit: Edit, field: str) -> None:
    with pytest.raises(PayloadError, match=field):
        aftership.normalize(edited("tracking_update_usps_domestic.json", edit), received_at=RECEIVED)


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"\xff\xfe",
        b"[]",
        b"{}",
        b'{"event": "tracking_update"}',
        b'{"event": "tracking_update", "msg": []}',
        b'{"event": 7, "msg": {}}',
    ],
)
def test_bodies_that_are_not_aftership_webhooks_are_payload_errors(body: bytes) -> None:
    with pytest.raises(PayloadError):
        aftership.normalize(body, received_at=RECEIVED)


def test_error_details_never_echo_the_input() -> None:
    with pytest.raises(PayloadError) as caught:
        aftership.normalize(edited("tracking_update_usps_domestic.json", _number_as_int), received_at=RECEIVED)
    assert "9434650106151012345671" not in caught.value.detail


def test_carrier_text_is_capped_and_stripped_of_control_characters() -> None:
    def long_message(document: Any) -> None:
        document["msg"]["checkpoints"][0]["message"] = "Label\x00 created " + "x" * 1900

    result = aftership.normalize(edited("tracking_update_usps_domestic.json", long_message), received_at=RECEIVED)
    description = result.events[0].description
    assert description is not None
    assert len(description) == 500
    assert "\x00" not in description


# ------------------------------------------------------------------------------ codes


def test_subtag_decides_and_unknown_subtag_falls_back_to_the_tag() -> None:
    assert aftership.map_codes("InTransit", "InTransit_002") == (CodeMapping(M.PICKED_UP), [])
    mapping, unmapped = aftership.map_codes("InTransit", "InTransit_099")
    assert mapping is not None
    assert mapping.milestone is M.IN_TRANSIT
    assert unmapped == ["subtag=InTransit_099"]
    # a tag alone (older checkpoints) still maps
    tag_only, _ = aftership.map_codes("OutForDelivery", None)
    assert tag_only is not None
    assert tag_only.milestone is M.OUT_FOR_DELIVERY


def test_a_delivered_tag_is_never_weakened_by_its_subtag() -> None:
    mapping, _ = aftership.map_codes("Delivered", "InTransit_003")
    assert mapping is not None
    assert mapping.milestone is M.DELIVERED


def test_every_documented_code_is_in_the_table() -> None:
    # AfterShip's published tags and sub-statuses (2026-07 docs + help centre): an entry for
    # each, mapped or explicitly nothing
    tags = "Pending InfoReceived InTransit OutForDelivery AttemptFail Delivered AvailableForPickup Exception Expired"
    subtags = (
        [f"Pending_00{n}" for n in range(1, 7)]
        + ["InfoReceived_001", "AvailableForPickup_001", "Expired_001"]
        + [f"InTransit_00{n}" for n in range(1, 10)]
        + [f"OutForDelivery_00{n}" for n in range(1, 5)]
        + [f"AttemptFail_00{n}" for n in range(1, 4)]
        + [f"Delivered_00{n}" for n in range(1, 6)]
        + [f"Exception_{n:03d}" for n in [*range(1, 14), *range(16, 22)]]
    )
    table = MappingTable.load("aftership")
    assert set(tags.split()) == set(table.codes("tag"))
    assert set(subtags) == set(table.codes("subtag"))


# ------------------------------------------------------------------------------ signatures

# `openssl dgst -sha256 -hmac aftership-webhook-secret-7f1c -binary tracking_update_usps_domestic.json | base64`
SIGNED_BODY = event_bytes("aftership", "tracking_update_usps_domestic.json")
SECRET = "aftership-webhook-secret-7f1c"
SIGNATURE = "IjOwk3brTmBoemtMMyGwBBH2BAKgU2qlL/z804Np04M="


class TestSignature:
    def test_valid_signature_from_an_independent_computation(self) -> None:
        # Given the header openssl computed over the fixture bytes
        # When the receiver verifies it with the account's webhook secret
        # Then it is accepted
        AFTERSHIP_SIGNATURE.verify({"aftership-hmac-sha256": SIGNATURE}, SIGNED_BODY, [SECRET], now=0)

    def test_tampered_body_is_refused(self) -> None:
        tampered = SIGNED_BODY.replace(b"Madison", b"Madisen", 1)
        with pytest.raises(Unauthorized, match="does not match"):
            AFTERSHIP_SIGNATURE.verify({"aftership-hmac-sha256": SIGNATURE}, tampered, [SECRET], now=0)

    def test_wrong_secret_is_refused(self) -> None:
        with pytest.raises(Unauthorized, match="does not match"):
            AFTERSHIP_SIGNATURE.verify({"aftership-hmac-sha256": SIGNATURE}, SIGNED_BODY, ["another-secret"], now=0)

    def test_missing_header_is_refused(self) -> None:
        with pytest.raises(Unauthorized, match="missing aftership-hmac-sha256"):
            AFTERSHIP_SIGNATURE.verify({}, SIGNED_BODY, [SECRET], now=0)

    def test_second_of_two_active_secrets_is_accepted(self) -> None:
        AFTERSHIP_SIGNATURE.verify(
            {"aftership-hmac-sha256": SIGNATURE}, SIGNED_BODY, ["rotated-new-secret", SECRET], now=0
        )

    def test_base64_is_case_sensitive(self) -> None:
        with pytest.raises(Unauthorized):
            AFTERSHIP_SIGNATURE.verify({"aftership-hmac-sha256": SIGNATURE.lower()}, SIGNED_BODY, [SECRET], now=0)


# ------------------------------------------------------------------------------ round trip

SHENZHEN = Place("Shenzhen", "Guangdong", "518000", "CN", "Asia/Shanghai")
CHICAGO = Place("Chicago", "IL", "60607", "US", "America/Chicago")
PARCEL = Parcel(
    legs=(Leg("yunexpress", "YT2612345678901"), Leg("ups", "1Z999AA10123456784")),
    origin=SHENZHEN,
    destination=CHICAGO,
    reference="as_trk_001",
)
T0 = datetime(2026, 3, 7, 23, 20, tzinfo=UTC)


def _matching(result: NormalizeResult, scan: TrueScan) -> list[CanonicalEvent]:
    leg = PARCEL.legs[scan.leg]
    return [
        e
        for e in result.events
        if (e.carrier, e.tracking_number) == (leg.carrier, leg.tracking_number)
        and e.occurred_at.replace(second=0) == scan.at.replace(second=0, microsecond=0)
    ]


@pytest.mark.parametrize("kind", sorted(CANONICAL))
@pytest.mark.parametrize("leg", [0, 1])
def test_round_trip_every_kind(kind: str, leg: int) -> None:
    # Given a scan of this kind by either carrier (UPS writes wall time without an offset),
    # after a first scan by the other one
    other = TrueScan("picked_up", T0, SHENZHEN, leg=1 - leg)
    scan = TrueScan(kind, T0 + timedelta(days=2, minutes=7), CHICAGO, leg=leg)
    scans = [other, scan]
    # When AfterShip's webhook for it is normalized
    body = builder.webhook_body(PARCEL, scans, now=scan.at + timedelta(minutes=5))
    result = aftership.normalize(body, received_at=RECEIVED)
    # Then the scan is one event of the right carrier and number, at the right instant,
    # with a reading the builder promises
    (event,) = _matching(result, scan)
    assert (event.milestone, event.exception) in builder.RENDERS[kind]
    assert result.unmapped == []


def test_round_trip_a_whole_journey_without_places() -> None:
    # Given every kind in turn, with no place at all (times then come through as UTC)
    scans = [TrueScan(kind, T0 + timedelta(hours=3 * n), None) for n, kind in enumerate(sorted(CANONICAL))]
    body = builder.webhook_body(PARCEL, scans, now=T0 + timedelta(days=5))
    result = aftership.normalize(body, received_at=RECEIVED)
    for scan in scans:
        (event,) = _matching(result, scan)
        assert (event.milestone, event.exception) in builder.RENDERS[scan.kind]
    assert result.legs == [
        LegLink(TrackingKey("yunexpress", "YT2612345678901"), TrackingKey("ups", "1Z999AA10123456784"))
    ]


def test_builder_renders_ups_wall_time_without_offset_and_others_with_it() -> None:
    scans = [TrueScan("picked_up", T0, SHENZHEN), TrueScan("delivered", T0 + timedelta(days=4), CHICAGO, leg=1)]
    document = json.loads(builder.webhook_body(PARCEL, scans, now=T0 + timedelta(days=4)))
    first, last = document["msg"]["checkpoints"]
    assert first["checkpoint_time"] == "2026-03-08T07:20:00+08:00"
    assert last["checkpoint_time"] == "2026-03-11T18:20:00"
    assert (first["slug"], last["slug"], last["country_region"]) == ("yunexpress", "ups", "USA")
    assert document["msg"]["last_mile"]["tracking_number"] == "1Z999AA10123456784"


def test_builder_renders_every_kind() -> None:
    assert set(builder.RENDERS) == set(builder.CODES) == set(CANONICAL)
    assert all(CANONICAL[kind] in readings or kind == "departed_origin" for kind, readings in builder.RENDERS.items())


# ------------------------------------------------------------------------------ reference payloads


def test_a_departure_is_the_origins_only_right_after_the_acceptance() -> None:
    # Given the domestic journey without its acceptance scan, and one with an arrival before
    # the departure
    def without_acceptance(document: Any) -> None:
        checkpoints = document["msg"]["checkpoints"]
        checkpoints[:] = [c for c in checkpoints if c.get("subtag") != "InTransit_002"]

    def arrival_first(document: Any) -> None:
        checkpoints = document["msg"]["checkpoints"]
        checkpoints[2]["subtag"], checkpoints[3]["subtag"] = checkpoints[3]["subtag"], checkpoints[2]["subtag"]

    for edit in (without_acceptance, arrival_first):
        result = aftership.normalize(edited("tracking_update_usps_domestic.json", edit), received_at=RECEIVED)
        departures = [e for e in result.events if e.raw_code == "InTransit/InTransit_007"]
        # Then the departure is a departure from some facility: in transit
        assert [e.milestone for e in departures] == [M.IN_TRANSIT]
