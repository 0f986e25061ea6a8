"""17TRACK pushes and gettrackinfo answers → canonical events."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from infra.formats import seventeentrack as builder
from infra.formats.scan import CANONICAL, Leg, Parcel, Place, TrueScan
from shared.adapters import seventeentrack
from shared.adapters.base import CodeMapping, LegLink, MappingTable, NormalizeResult
from shared.errors import PayloadError, Unauthorized
from shared.models.canonical import CanonicalEvent, IncidentType, Milestone, TimeSource
from shared.models.shipment import TrackingKey
from shared.sources import SEVENTEENTRACK_SIGNATURE
from tests.conftest import event_bytes

RECEIVED = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
M, X = Milestone, IncidentType
Edit = Callable[[Any], object]


def normalize(name: str) -> NormalizeResult:
    return seventeentrack.normalize(event_bytes("seventeentrack", name), received_at=RECEIVED)


def edited(name: str, edit: Edit) -> bytes:
    """A fixture changed by ``edit(document)`` (which mutates the parsed JSON)."""
    document = json.loads(event_bytes("seventeentrack", name))
    edit(document)
    return json.dumps(document).encode()


def chronological(result: NormalizeResult) -> list[CanonicalEvent]:
    return sorted(result.events, key=lambda e: e.occurred_at)


def readings(events: list[CanonicalEvent]) -> list[tuple[Milestone | None, IncidentType | None]]:
    return [(e.milestone, e.exception) for e in events]


# ------------------------------------------------------------------------------ journeys


def test_domestic_push_reads_the_provider_events_newest_first() -> None:
    # Given a TRACKING_UPDATED push for a UPS parcel whose numeric carrier key (3011) is wrong
    result = normalize("push_ups_domestic.json")
    # Then every provider event is one event, in 17TRACK's newest-first order
    assert readings(result.events) == [
        (M.DELIVERED, None),
        (M.OUT_FOR_DELIVERY, None),
        (M.IN_TRANSIT, None),
        (M.IN_TRANSIT, None),
        (M.DEPARTED_ORIGIN, None),  # InTransit_Other gives way to the stage "Departure"
        (M.PICKED_UP, None),
        (M.LABEL_CREATED, None),
    ]
    # and the carrier is the provider, UPS, not what the key 3011 would say
    assert {(e.carrier, e.tracking_number) for e in result.events} == {("ups", "1Z84V2E80312345678")}
    delivered = result.events[0]
    assert delivered.occurred_at == datetime(2026, 4, 9, 19, 21, tzinfo=UTC)
    assert delivered.time_source is TimeSource.CARRIER_OFFSET
    assert delivered.occurred_at_local is not None
    assert delivered.occurred_at_local.isoformat() == "2026-04-09T14:21:00-05:00"
    assert delivered.location is not None
    assert (delivered.location.city, delivered.location.region, delivered.location.postal_code) == (
        "KANSAS CITY",
        "MO",
        "64105",
    )
    assert delivered.raw_code == "Delivered_Other/Delivered"
    assert delivered.description == "DELIVERED"
    assert (result.unmapped, result.legs, result.ignored) == ([], [], None)


def test_a_location_line_stands_in_for_an_empty_address() -> None:
    # Given an event whose structured address is all null but whose location says "HODGKINS, IL, US"
    departed = normalize("push_ups_domestic.json").events[4]
    assert departed.location is not None
    assert (departed.location.city, departed.location.region, departed.location.country) == ("HODGKINS", "IL", "US")


def test_the_same_event_twice_keeps_one_identity() -> None:
    first, second = normalize("push_ups_domestic.json").events[2:4]
    assert first.event_id == second.event_id


def test_cross_border_providers_are_legs_with_their_own_numbers() -> None:
    # Given China Post then USPS, 17TRACK naming the USPS number in misc_info
    result = normalize("push_cross_border_two_providers.json")
    china_post = TrackingKey("china_post", "UA998877665CN")
    usps = TrackingKey("usps", "9400136105123456789012")
    # Then both numbers are one parcel
    assert result.legs == [LegLink(first=china_post, last_mile=usps)]
    events = chronological(result)
    assert [TrackingKey(e.carrier, e.tracking_number) for e in events] == [
        china_post,
        china_post,
        china_post,
        china_post,
        china_post,
        usps,  # USPS's pre-advice, while the parcel is in the air
        china_post,
        usps,
        usps,
        usps,
        usps,
        usps,
        usps,
    ]
    assert readings(events) == [
        (M.LABEL_CREATED, None),
        (M.PICKED_UP, None),
        (M.IN_TRANSIT, None),
        (M.CUSTOMS_CLEARED, None),  # export clearance in Guangzhou
        (M.DEPARTED_ORIGIN, None),
        (M.LABEL_CREATED, None),
        (M.ARRIVED_HUB, None),  # InTransit_Arrival reported by China Post
        # USPS's first movement scan is the handover, whatever 17TRACK's sub-status says
        (M.HANDED_TO_LAST_MILE, None),
        (M.CUSTOMS_STARTED, None),
        (M.CUSTOMS_CLEARED, None),
        (M.IN_TRANSIT, None),
        (M.OUT_FOR_DELIVERY, None),
        (M.DELIVERED, None),
    ]
    handover = events[7]
    assert handover.raw_code == "InTransit_Other/-"
    assert handover.occurred_at_local is not None
    assert handover.occurred_at_local.isoformat() == "2026-02-14T18:30:00-08:00"


def test_time_raw_alone_gives_the_instant_with_its_offset() -> None:
    # Given a China Post event with only time_raw {"date", "time", "timezone": "+08:00"}
    sorting = chronological(normalize("push_cross_border_two_providers.json"))[2]
    assert sorting.occurred_at == datetime(2026, 2, 10, 7, 30, tzinfo=UTC)
    assert sorting.time_source is TimeSource.CARRIER_OFFSET
    assert sorting.occurred_at_local is not None
    assert sorting.occurred_at_local.utcoffset() == timedelta(hours=8)
    # and its "GUANGZHOU, CN" line becomes the place
    assert sorting.location is not None
    assert (sorting.location.city, sorting.location.country) == ("GUANGZHOU", "CN")


def test_the_last_mile_provider_is_found_without_misc_info() -> None:
    # Given the same push where 17TRACK did not fill misc_info
    def no_misc(document: Any) -> None:
        document["data"]["track_info"]["misc_info"] = {"local_number": "", "local_provider": "", "local_key": 0}

    result = seventeentrack.normalize(edited("push_cross_border_two_providers.json", no_misc), received_at=RECEIVED)
    # Then the provider that started last is the last mile; its scans keep the only number
    usps = TrackingKey("usps", "UA998877665CN")
    assert result.legs == [LegLink(first=TrackingKey("china_post", "UA998877665CN"), last_mile=usps)]
    assert M.HANDED_TO_LAST_MILE in [e.milestone for e in result.events if e.carrier == "usps"]


def test_the_last_mile_provider_is_found_by_its_name() -> None:
    # Given misc_info naming the local provider and number, but no local_key
    def name_only(document: Any) -> None:
        document["data"]["track_info"]["misc_info"]["local_key"] = 0
        document["data"]["track_info"]["misc_info"]["local_provider"] = "usps"

    result = seventeentrack.normalize(edited("push_cross_border_two_providers.json", name_only), received_at=RECEIVED)
    assert {e.tracking_number for e in result.events if e.carrier == "usps"} == {"9400136105123456789012"}


def test_a_last_mile_number_known_before_its_carrier_scans_is_linked() -> None:
    # Given only China Post's events so far, and misc_info already naming the USPS number
    def china_post_only(document: Any) -> None:
        document["data"]["track_info"]["tracking"]["providers"].pop(0)

    result = seventeentrack.normalize(
        edited("push_cross_border_two_providers.json", china_post_only), received_at=RECEIVED
    )
    assert result.legs == [
        LegLink(TrackingKey("china_post", "UA998877665CN"), TrackingKey("usps", "9400136105123456789012"))
    ]
    assert {e.carrier for e in result.events} == {"china_post"}


def test_the_last_mile_provider_listed_before_the_first_one_has_events() -> None:
    # Given China Post listed but with no events yet, USPS (named local) already scanning
    def usps_only(document: Any) -> None:
        document["data"]["track_info"]["tracking"]["providers"][1]["events"] = []

    result = seventeentrack.normalize(edited("push_cross_border_two_providers.json", usps_only), received_at=RECEIVED)
    assert result.legs == [
        LegLink(TrackingKey("china_post", "UA998877665CN"), TrackingKey("usps", "9400136105123456789012"))
    ]
    assert {(e.carrier, e.tracking_number) for e in result.events} == {("usps", "9400136105123456789012")}


def test_a_local_number_no_carrier_could_print_is_left_out() -> None:
    def bad_local(document: Any) -> None:
        document["data"]["track_info"]["misc_info"]["local_number"] = "N/A"

    result = seventeentrack.normalize(edited("push_cross_border_two_providers.json", bad_local), received_at=RECEIVED)
    assert {e.tracking_number for e in result.events} == {"UA998877665CN"}
    assert result.legs == [LegLink(TrackingKey("china_post", "UA998877665CN"), TrackingKey("usps", "UA998877665CN"))]


def test_failed_attempt_then_delivery() -> None:
    result = normalize("push_failed_attempt_then_delivered.json")
    assert readings(chronological(result)) == [
        (M.PICKED_UP, None),
        (M.IN_TRANSIT, None),
        (M.OUT_FOR_DELIVERY, None),
        (M.DELIVERY_FAILED, X.DELIVERY_FAILED),  # DeliveryFailure_NoBody
        (M.OUT_FOR_DELIVERY, None),
        (M.DELIVERED, None),
    ]
    assert {e.carrier for e in result.events} == {"fedex"}


def test_invalid_address_then_return_to_sender() -> None:
    result = normalize("push_return_to_sender.json")
    assert readings(chronological(result)) == [
        (M.IN_TRANSIT, None),
        (M.DELIVERY_FAILED, X.ADDRESS_ISSUE),  # DeliveryFailure_InvalidAddress
        (M.RETURN_STARTED, X.RETURN_TO_SENDER),  # Exception_Other gives way to the stage "Returning"
        (M.RETURN_DELIVERED, None),  # Exception_Returned
    ]
    # The provider "DHL Paket" is DHL
    assert {e.carrier for e in result.events} == {"dhl"}


def test_exceptions_unknown_codes_and_codeless_events() -> None:
    result = normalize("push_exceptions.json")
    assert readings(result.events) == [
        (None, X.LOST),  # Exception_Destroyed
        (None, X.LOST),
        (None, X.DAMAGED),
        (None, X.HELD),  # Exception_Security: fees or security before delivery
        (None, X.CUSTOMS_HOLD),  # InTransit_CustomsRequiringInformation
        (None, None),  # unknown sub-status, no stage
        (M.ARRIVED_HUB, None),  # unknown sub-status: the stage "Arrival" decides
        (None, X.DELAYED),
        # no sub-status, no stage: information, even though its text says "Out for delivery"
        (None, None),
    ]
    assert result.unmapped == ["sub_status=InTransit_TransportArrived", "sub_status=InTransit_TransportUnloaded"]
    codeless = result.events[-1]
    assert codeless.raw_code == "-/-"
    assert codeless.description == "Out for delivery"
    london = result.events[0]
    assert london.location is not None
    assert (london.location.city, london.location.region, london.location.country) == ("LONDON", None, "GB")


def test_label_created_with_no_scan_yet() -> None:
    (label,) = normalize("push_info_received_only.json").events
    assert (label.carrier, label.tracking_number, label.milestone) == ("china_post", "LX551234567CN", M.LABEL_CREATED)
    assert label.occurred_at == datetime(2026, 10, 10, 0, 20, tzinfo=UTC)


def test_legacy_times_without_zone_are_wall_time_at_the_place() -> None:
    # Given an answer without time_utc and with zone-less local times (legacy 17TRACK)
    delivered, processed, posted = normalize("push_legacy_local_times.json").events
    # Then Singapore and Shanghai wall times are read in their zones
    assert processed.occurred_at == datetime(2026, 3, 2, 6, 5, tzinfo=UTC)
    assert processed.time_source is TimeSource.LOCATION_TZ
    assert posted.occurred_at == datetime(2026, 3, 1, 10, 30, tzinfo=UTC)  # from a plain time_raw string
    assert posted.time_source is TimeSource.LOCATION_TZ
    # and an event with no place at all is assumed UTC, and says so
    assert delivered.occurred_at == datetime(2026, 3, 3, 9, 40, tzinfo=UTC)
    assert delivered.time_source is TimeSource.ASSUMED_UTC
    # An unknown provider name becomes a carrier id of its own
    assert delivered.carrier == "singpost"


# ------------------------------------------------------------------------------ pull answers


def test_gettrackinfo_reads_accepted_numbers_and_skips_rejected_ones() -> None:
    result = normalize("pull_accepted_and_rejected.json")
    (picked_up,) = result.events
    assert (picked_up.carrier, picked_up.tracking_number, picked_up.milestone) == (
        "ups",
        "1Z84V2E80312345678",
        M.PICKED_UP,
    )
    assert result.ignored is None


def test_gettrackinfo_not_found_is_ignored_with_its_error_code() -> None:
    result = normalize("pull_not_found.json")
    assert result.events == []
    assert result.ignored is not None
    assert "-18019909" in result.ignored


def test_gettrackinfo_error_answer_is_ignored() -> None:
    body = b'{"code": -18010002, "data": {"errors": [{"code": -18010002, "message": "Invalid security key."}]}}'
    result = seventeentrack.normalize(body, received_at=RECEIVED)
    assert (result.events, result.ignored) == ([], "17TRACK answered with error code -18010002")


def test_builder_not_found_is_what_the_adapter_ignores() -> None:
    status, body = builder.not_found("9400100000000000000000")
    assert status == 200
    result = seventeentrack.normalize(body, received_at=RECEIVED)
    assert (result.events, result.ignored is not None) == ([], True)


# ------------------------------------------------------------------------------ nothing to store / errors


def test_tracking_stopped_is_ignored() -> None:
    result = normalize("push_tracking_stopped.json")
    assert result.events == []
    assert result.ignored is not None
    assert "TRACKING_STOPPED" in result.ignored


def test_a_push_with_no_events_yet_is_ignored() -> None:
    def no_events(document: Any) -> None:
        document["data"]["track_info"]["tracking"]["providers"][0]["events"] = []

    result = seventeentrack.normalize(edited("push_ups_domestic.json", no_events), received_at=RECEIVED)
    assert (result.events, result.ignored is not None) == ([], True)


@pytest.mark.parametrize("path", [("providers", 0, "events"), ("providers",)])
def test_null_lists_are_empty_lists(path: tuple[Any, ...]) -> None:
    def null(document: Any) -> None:
        target = document["data"]["track_info"]["tracking"]
        for step in path[:-1]:
            target = target[step]
        target[path[-1]] = None

    result = seventeentrack.normalize(edited("push_ups_domestic.json", null), received_at=RECEIVED)
    assert (result.events, result.ignored is not None) == ([], True)


def _no_time(document: Any) -> None:
    event = document["data"]["track_info"]["tracking"]["providers"][0]["events"][0]
    event["time_iso"] = event["time_utc"] = None


def _number_as_int(document: Any) -> None:
    document["data"]["number"] = 1234567890


def _events_not_a_list(document: Any) -> None:
    document["data"]["track_info"]["tracking"]["providers"][0]["events"] = "none"


def _bad_utc(document: Any) -> None:
    document["data"]["track_info"]["tracking"]["providers"][0]["events"][0]["time_utc"] = "04/09/2026"


def _provider_key_as_text(document: Any) -> None:
    document["data"]["track_info"]["tracking"]["providers"][0]["provider"]["key"] = "UPS"


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (_no_time, "time"),
        (_number_as_int, "number"),
        (_events_not_a_list, "events"),
        (_bad_utc, "timestamp"),
        (_provider_key_as_text, "key"),
    ],
)
def test_unreadable_fields_are_payload_errors_naming_the_field(edit: Edit, field: str) -> None:
    with pytest.raises(PayloadError, match=field):
        seventeentrack.normalize(edited("push_ups_domestic.json", edit), received_at=RECEIVED)


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b"{}",
        b'{"event": "TRACKING_UPDATED"}',
        b'{"event": "TRACKING_UPDATED", "data": {"carrier": 3011}}',
        b'{"code": "zero"}',
        b'{"code": 0, "data": {"accepted": "none"}}',
    ],
)
def test_bodies_that_are_not_17track_payloads_are_payload_errors(body: bytes) -> None:
    with pytest.raises(PayloadError):
        seventeentrack.normalize(body, received_at=RECEIVED)


# ------------------------------------------------------------------------------ codes


def test_sub_status_decides_and_other_gives_way_to_the_stage() -> None:
    assert seventeentrack.map_codes("InTransit_Departure", None) == (
        CodeMapping(M.DEPARTED_ORIGIN),
        [],
    )
    other, _ = seventeentrack.map_codes("InTransit_Other", "Arrival")
    assert other is not None
    assert other.milestone is M.ARRIVED_HUB
    alone, _ = seventeentrack.map_codes("InTransit_Other", None)
    assert alone is not None
    assert alone.milestone is M.IN_TRANSIT
    assert seventeentrack.map_codes(None, None) == (None, [])
    assert seventeentrack.map_codes(None, "Landed") == (None, ["stage=Landed"])


def test_every_documented_code_is_in_the_table() -> None:
    # The 30 documented sub-statuses and the 9 key stages, each mapped or explicitly nothing
    sub_statuses = (
        "NotFound_Other NotFound_InvalidCode InfoReceived InTransit_PickedUp InTransit_Other InTransit_Departure "
        "InTransit_Arrival InTransit_CustomsProcessing InTransit_CustomsReleased InTransit_CustomsRequiringInformation "
        "Expired_Other AvailableForPickup_Other OutForDelivery_Other DeliveryFailure_Other DeliveryFailure_NoBody "
        "DeliveryFailure_Security DeliveryFailure_Rejected DeliveryFailure_InvalidAddress Delivered_Other "
        "Exception_Other Exception_Returning Exception_Returned Exception_NoBody Exception_Security Exception_Damage "
        "Exception_Rejected Exception_Delayed Exception_Lost Exception_Destroyed Exception_Cancel"
    )
    stages = "InfoReceived PickedUp Departure Arrival AvailableForPickup OutForDelivery Delivered Returning Returned"
    table = MappingTable.load("seventeentrack")
    assert len(sub_statuses.split()) == 30
    assert set(sub_statuses.split()) == set(table.codes("sub_status"))
    assert set(stages.split()) == set(table.codes("stage"))


# ------------------------------------------------------------------------------ signatures

# `(cat push_ups_domestic.json; printf '/%s' 17T-SECURITY-KEY-41c8) | sha256sum`
SIGNED_BODY = event_bytes("seventeentrack", "push_ups_domestic.json")
KEY = "17T-SECURITY-KEY-41c8"
SIGN = "173bb83d84a6ce9924da454f5d3b71039028699884a99667fdae40cea200da53"


class TestSignature:
    def test_valid_signature_from_an_independent_computation(self) -> None:
        # Given the sign header sha256sum computed over the body + "/" + the security key
        # When the receiver verifies it
        # Then it is accepted
        SEVENTEENTRACK_SIGNATURE.verify({"sign": SIGN}, SIGNED_BODY, [KEY], now=0)

    def test_tampered_body_is_refused(self) -> None:
        tampered = SIGNED_BODY.replace(b"LENEXA", b"OLATHE", 1)
        with pytest.raises(Unauthorized, match="does not match"):
            SEVENTEENTRACK_SIGNATURE.verify({"sign": SIGN}, tampered, [KEY], now=0)

    def test_wrong_key_is_refused(self) -> None:
        with pytest.raises(Unauthorized, match="does not match"):
            SEVENTEENTRACK_SIGNATURE.verify({"sign": SIGN}, SIGNED_BODY, ["17T-SECURITY-KEY-0000"], now=0)

    def test_missing_header_is_refused(self) -> None:
        with pytest.raises(Unauthorized, match="missing sign"):
            SEVENTEENTRACK_SIGNATURE.verify({}, SIGNED_BODY, [KEY], now=0)

    def test_second_of_two_active_keys_is_accepted(self) -> None:
        SEVENTEENTRACK_SIGNATURE.verify({"sign": SIGN}, SIGNED_BODY, ["17T-NEW-KEY", KEY], now=0)

    def test_an_hmac_of_the_same_body_is_not_accepted(self) -> None:
        # 17TRACK signs with a plain hash of body + "/" + key, not an HMAC
        import hashlib
        import hmac

        as_hmac = hmac.new(KEY.encode(), SIGNED_BODY, hashlib.sha256).hexdigest()
        with pytest.raises(Unauthorized):
            SEVENTEENTRACK_SIGNATURE.verify({"sign": as_hmac}, SIGNED_BODY, [KEY], now=0)


# ------------------------------------------------------------------------------ round trip

SHENZHEN = Place("Shenzhen", "Guangdong", "518000", "CN", "Asia/Shanghai")
CHICAGO = Place("Chicago", "IL", "60607", "US", "America/Chicago")
PARCEL = Parcel(
    legs=(Leg("yunexpress", "YT2612345678901"), Leg("usps", "9400111899223456789012")),
    origin=SHENZHEN,
    destination=CHICAGO,
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
@pytest.mark.parametrize("channel", ["push", "poll"])
def test_round_trip_every_kind(kind: str, leg: int, channel: str) -> None:
    # Given a scan of this kind by either carrier, after a first scan by the other
    other = TrueScan("picked_up", T0, SHENZHEN, leg=1 - leg)
    scan = TrueScan(kind, T0 + timedelta(days=2, minutes=7), CHICAGO, leg=leg)
    render = builder.webhook_body if channel == "push" else builder.poll_response
    # When 17TRACK's push (or gettrackinfo answer) for it is normalized
    body = render(PARCEL, [other, scan], now=scan.at + timedelta(minutes=5))
    result = seventeentrack.normalize(body, received_at=RECEIVED)
    # Then the scan is one event of its carrier and number, at its instant, read as promised
    (event,) = _matching(result, scan)
    assert (event.milestone, event.exception) in builder.RENDERS[kind]
    assert result.unmapped == []
    assert result.legs == [
        LegLink(TrackingKey("yunexpress", "YT2612345678901"), TrackingKey("usps", "9400111899223456789012"))
    ]


def test_round_trip_the_handover_is_the_last_mile_carriers_first_scan() -> None:
    scans = [
        TrueScan("label_created", T0, SHENZHEN),
        TrueScan("picked_up", T0 + timedelta(hours=6), SHENZHEN),
        TrueScan("departed_origin", T0 + timedelta(days=1), SHENZHEN),
        TrueScan("customs_started", T0 + timedelta(days=3), CHICAGO),
        TrueScan("customs_cleared", T0 + timedelta(days=3, hours=4), CHICAGO),
        TrueScan("handed_to_last_mile", T0 + timedelta(days=4), CHICAGO, leg=1),
        TrueScan("out_for_delivery", T0 + timedelta(days=5), CHICAGO, leg=1),
        TrueScan("delivered", T0 + timedelta(days=5, hours=5), None, leg=1),
    ]
    result = seventeentrack.normalize(
        builder.webhook_body(PARCEL, scans, now=T0 + timedelta(days=6)), received_at=RECEIVED
    )
    assert [e.milestone for e in chronological(result)] == [CANONICAL[s.kind][0] for s in scans]


def test_builder_lists_events_newest_first_with_utc_and_local_twins() -> None:
    scans = [TrueScan("picked_up", T0, SHENZHEN), TrueScan("departed_origin", T0 + timedelta(hours=9), SHENZHEN)]
    document = json.loads(builder.webhook_body(PARCEL, scans, now=T0 + timedelta(days=1)))
    (provider,) = document["data"]["track_info"]["tracking"]["providers"]
    newest, oldest = provider["events"]
    assert (newest["sub_status"], oldest["sub_status"]) == ("InTransit_Departure", "InTransit_PickedUp")
    assert (oldest["time_utc"], oldest["time_iso"]) == ("2026-03-07T23:20:00Z", "2026-03-08T07:20:00+08:00")
    assert oldest["time_raw"] == {"date": "2026-03-08", "time": "07:20:00", "timezone": "+08:00"}
    assert provider["provider"]["name"] == "YunExpress"


def test_builder_renders_every_kind() -> None:
    assert set(builder.RENDERS) == set(builder.CODES) == set(CANONICAL)
    assert all(CANONICAL[kind] in readings for kind, readings in builder.RENDERS.items())


# ------------------------------------------------------------------------------ reference payloads
