"""Shippo webhooks → canonical events."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from infra.formats import shippo as builder
from infra.formats.scan import CANONICAL, Leg, Parcel, Place, TrueScan
from shared.adapters import shippo
from shared.adapters.base import CodeMapping, MappingTable, NormalizeResult
from shared.errors import PayloadError, Unauthorized
from shared.models.canonical import CanonicalEvent, IncidentType, Milestone, TimeSource
from shared.sources import SHIPPO_SIGNATURE
from tests.conftest import event_bytes

RECEIVED = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
M, X = Milestone, IncidentType
Edit = Callable[[Any], object]


def normalize(name: str) -> NormalizeResult:
    return shippo.normalize(event_bytes("shippo", name), received_at=RECEIVED)


def edited(name: str, edit: Edit) -> bytes:
    """A fixture changed by ``edit(document)`` (which mutates the parsed JSON)."""
    document = json.loads(event_bytes("shippo", name))
    edit(document)
    return json.dumps(document).encode()


def readings(result: NormalizeResult) -> list[tuple[Milestone | None, IncidentType | None]]:
    return [(e.milestone, e.exception) for e in result.events]


# ------------------------------------------------------------------------------ journeys


def test_domestic_journey_reads_the_history_oldest_first() -> None:
    # Given a track_updated for a USPS parcel, Austin TX → Boulder CO
    result = normalize("track_updated_usps_delivered.json")
    # Then each history entry is one event of the physical carrier, in canonical terms
    assert readings(result) == [
        (M.LABEL_CREATED, None),
        (M.PICKED_UP, None),
        (M.IN_TRANSIT, None),  # package_departed: from any intermediate location
        (M.ARRIVED_HUB, None),
        (M.ARRIVED_HUB, None),
        (M.OUT_FOR_DELIVERY, None),  # a TRANSIT substatus
        (M.DELIVERED, None),
    ]
    assert {(e.carrier, e.tracking_number) for e in result.events} == {("usps", "9405536106193012345670")}
    accepted = result.events[1]
    # status_date is UTC; the local time comes from the place (Austin: Central daylight time)
    assert accepted.occurred_at == datetime(2026, 10, 5, 23, 48, tzinfo=UTC)
    assert accepted.time_source is TimeSource.CARRIER_OFFSET
    assert accepted.occurred_at_local is not None
    assert accepted.occurred_at_local.isoformat() == "2026-10-05T18:48:00-05:00"
    assert accepted.location is not None
    assert (accepted.location.city, accepted.location.region, accepted.location.postal_code) == (
        "Austin",
        "TX",
        "78744",
    )
    assert accepted.location.country == "US"
    assert accepted.raw_code == "TRANSIT/package_accepted"
    assert accepted.description == "USPS in possession of item."
    assert (result.unmapped, result.legs, result.ignored) == ([], [], None)


def test_the_same_event_sent_twice_keeps_one_identity() -> None:
    # Given the arrival twice in one history (Shippo's webhooks are not idempotent)
    first, second = normalize("track_updated_usps_delivered.json").events[3:5]
    # Then both are emitted and recognised downstream as one scan
    assert first.event_id == second.event_id


def test_failed_attempt_then_delivery() -> None:
    result = normalize("track_updated_ups_failed_attempt.json")
    assert readings(result) == [
        (M.PICKED_UP, None),
        (M.IN_TRANSIT, None),  # TRANSIT with "substatus": null
        (M.OUT_FOR_DELIVERY, None),
        (M.DELIVERY_FAILED, X.DELIVERY_FAILED),
        (M.OUT_FOR_DELIVERY, None),
        (M.DELIVERED, None),
    ]
    on_the_way = result.events[1]
    assert on_the_way.raw_code == "TRANSIT/-"
    assert on_the_way.location is None
    assert on_the_way.occurred_at_local is None  # a UTC instant with no place to localise it


def test_address_issue_then_return_to_sender() -> None:
    result = normalize("track_updated_fedex_returned.json")
    assert readings(result) == [
        (M.PICKED_UP, None),
        (None, X.ADDRESS_ISSUE),  # a notice under TRANSIT, not a movement
        (M.RETURN_STARTED, X.RETURN_TO_SENDER),
        # Shippo's RETURNED cannot tell a return on its way from one received: never
        # claimed as delivered back
        (M.RETURN_STARTED, X.RETURN_TO_SENDER),
    ]


def test_cross_border_problems_each_keep_their_meaning() -> None:
    # Given a DHL Express parcel Germany → Canada with delays, a hold, damage and a loss
    result = normalize("track_updated_dhl_international_exceptions.json")
    assert readings(result) == [
        (M.PICKED_UP, None),
        (M.ARRIVED_HUB, None),  # package_processed
        (None, X.DELAYED),
        (None, X.HELD),  # package_held (Shippo has no customs substatus)
        (M.IN_TRANSIT, None),  # unknown substatus: the TRANSIT status decides
        (None, X.DAMAGED),
        (None, X.LOST),  # FAILURE + package_lost is a loss, not a failed attempt
        (None, X.LOST),  # FAILURE + package_disposed
        (None, None),  # unknown status
    ]
    # Shippo's token dhl_express is DHL
    assert {e.carrier for e in result.events} == {"dhl"}
    # A Mississauga scan is read in Eastern time
    held = result.events[3]
    assert held.occurred_at_local is not None
    assert held.occurred_at_local.isoformat() == "2026-01-15T11:40:00-05:00"
    assert held.location is not None
    assert held.location.country == "CA"


def test_unknown_codes_are_kept_and_reported() -> None:
    result = normalize("track_updated_dhl_international_exceptions.json")
    assert result.unmapped == ["substatus=drone_transfer", "status=IN_LIMBO"]
    assert [e.raw_code for e in result.events][4] == "TRANSIT/drone_transfer"
    assert result.events[-1].raw_code == "IN_LIMBO/-"


def test_test_mode_times_without_zone_are_wall_time_at_the_place() -> None:
    # Given a test-mode webhook: carrier "shippo", SHIPPO_TRANSIT, times with no zone at all
    result = normalize("track_updated_test_mode.json")
    unknown, departed = result.events
    # Then the number is accepted (its underscore becomes a hyphen) under the test carrier
    assert (departed.carrier, departed.tracking_number) == ("shippo", "SHIPPO-TRANSIT")
    # and 16:44:42 in San Francisco is Pacific standard time
    assert departed.occurred_at == datetime(2026, 11, 30, 0, 44, 42, 589000, tzinfo=UTC)
    assert departed.time_source is TimeSource.LOCATION_TZ
    assert departed.milestone is M.IN_TRANSIT
    # The UNKNOWN status first in the history is kept as information
    assert (unknown.milestone, unknown.exception, unknown.raw_code) == (None, None, "UNKNOWN/-")
    assert result.unmapped == []


def test_test_mode_time_without_a_place_assumes_utc() -> None:
    def no_place(document: Any) -> None:
        document["data"]["tracking_history"][1]["location"] = None

    result = shippo.normalize(edited("track_updated_test_mode.json", no_place), received_at=RECEIVED)
    departed = result.events[1]
    assert departed.occurred_at == datetime(2026, 11, 29, 16, 44, 42, 589000, tzinfo=UTC)
    assert departed.time_source is TimeSource.ASSUMED_UTC


def test_label_created_with_an_empty_history() -> None:
    # Given a fresh label: the current status only, no history yet
    result = normalize("track_updated_pre_transit_only.json")
    (label,) = result.events
    assert (label.carrier, label.tracking_number, label.milestone) == (
        "usps",
        "9205590221582798765432",
        M.LABEL_CREATED,
    )
    assert label.occurred_at == datetime(2026, 12, 1, 17, 28, tzinfo=UTC)


# ------------------------------------------------------------------------------ nothing to store


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("transaction_created.json", "transaction_created"),
        ("track_updated_unknown_no_history.json", "no tracking events"),
    ],
)
def test_payloads_without_tracking_are_ignored(name: str, reason: str) -> None:
    result = normalize(name)
    assert result.events == []
    assert result.ignored is not None
    assert reason in result.ignored


def _drop_status_date(document: Any) -> None:
    del document["data"]["tracking_history"][2]["status_date"]


def _drop_number(document: Any) -> None:
    del document["data"]["tracking_number"]


def _history_not_a_list(document: Any) -> None:
    document["data"]["tracking_history"] = {"status": "TRANSIT"}


def _bad_date(document: Any) -> None:
    document["data"]["tracking_history"][0]["status_date"] = "23/07/2016"


def _substatus_as_text(document: Any) -> None:
    document["data"]["tracking_history"][0]["substatus"] = "delivered"


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (_drop_status_date, "status_date"),
        (_drop_number, "tracking_number"),
        (_history_not_a_list, "tracking_history"),
        (_bad_date, "timestamp"),
        (_substatus_as_text, "substatus"),
    ],
)
def test_unreadable_fields_are_payload_errors_naming_the_field(edit: Edit, field: str) -> None:
    with pytest.raises(PayloadError, match=field):
        shippo.normalize(edited("track_updated_usps_delivered.json", edit), received_at=RECEIVED)


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[1, 2]",
        b"{}",
        b'{"event": "track_updated"}',
        b'{"event": "track_updated", "data": "SHIPPO_TRANSIT"}',
        b'{"event": "track_updated", "data": {"carrier": "usps"}}',
        b'{"event": "track_updated", "data": {"carrier": "usps", "tracking_number": "9405 5361 0619 3012"}, "test": "x"}',
    ],
)
def test_bodies_that_are_not_shippo_webhooks_are_payload_errors(body: bytes) -> None:
    with pytest.raises(PayloadError):
        shippo.normalize(body, received_at=RECEIVED)


def test_an_empty_history_with_no_current_status_is_ignored() -> None:
    def empty(document: Any) -> None:
        document["data"]["tracking_history"] = []
        document["data"]["tracking_status"] = None

    result = shippo.normalize(edited("track_updated_usps_delivered.json", empty), received_at=RECEIVED)
    assert (result.events, result.ignored is not None) == ([], True)


def test_a_null_history_falls_back_to_the_current_status() -> None:
    body = edited("track_updated_pre_transit_only.json", lambda d: d["data"].update(tracking_history=None))
    (label,) = shippo.normalize(body, received_at=RECEIVED).events
    assert label.milestone is M.LABEL_CREATED


# ------------------------------------------------------------------------------ codes


def test_substatus_decides_and_a_decisive_status_is_not_weakened() -> None:
    assert shippo.map_codes("TRANSIT", "pickup_available")[0] == CodeMapping(M.AVAILABLE_FOR_PICKUP)
    # a delay under TRANSIT is a notice; under DELIVERED the delivery stands
    assert shippo.map_codes("TRANSIT", "delayed")[0] == CodeMapping(None, X.DELAYED)
    delivered, _ = shippo.map_codes("DELIVERED", "delayed")
    assert delivered is not None
    assert (delivered.milestone, delivered.exception) == (M.DELIVERED, X.DELAYED)
    # "other" is Shippo saying it does not know: the status decides
    other, unmapped = shippo.map_codes("TRANSIT", "other")
    assert other is not None
    assert (other.milestone, unmapped) == (M.IN_TRANSIT, [])
    # an unclaimed parcel is on its way back
    unclaimed, _ = shippo.map_codes("RETURNED", "package_unclaimed")
    assert unclaimed is not None
    assert (unclaimed.milestone, unclaimed.exception) == (M.RETURN_STARTED, X.RETURN_TO_SENDER)


def test_every_documented_code_is_in_the_table() -> None:
    # Shippo's "Event definitions": every status and substatus, mapped or explicitly nothing
    statuses = "PRE_TRANSIT TRANSIT DELIVERED RETURNED FAILURE UNKNOWN"
    substatuses = (
        "information_received address_issue contact_carrier delayed delivery_attempted delivery_rescheduled "
        "delivery_scheduled location_inaccessible notice_left out_for_delivery package_accepted package_arrived "
        "package_damaged package_departed package_forwarded package_held package_processed package_processing "
        "pickup_available reschedule_delivery delivered return_to_sender package_unclaimed package_undeliverable "
        "package_disposed package_lost other"
    )
    table = MappingTable.load("shippo")
    assert set(statuses.split()) == set(table.codes("status"))
    assert set(substatuses.split()) == set(table.codes("substatus"))


# ------------------------------------------------------------------------------ signatures

# `(printf '%s.' 1791486600; cat track_updated_usps_delivered.json) | openssl dgst -sha256 -hmac shippo-hmac-key-2b9e`
SIGNED_BODY = event_bytes("shippo", "track_updated_usps_delivered.json")
SECRET = "shippo-hmac-key-2b9e"
T = 1791486600
V1 = "1c0fdbe088ac054d668eb2394e5b87f6ad39643d256cc6c0b8a73cd0dcb30e4c"
HEADER = {"shippo-auth-signature": f"t={T},v1={V1}"}


class TestSignature:
    def test_valid_signature_from_an_independent_computation(self) -> None:
        # Given the header openssl computed over "<t>." + the fixture bytes
        # When the receiver verifies it ten seconds later with the shared secret
        # Then it is accepted
        SHIPPO_SIGNATURE.verify(HEADER, SIGNED_BODY, [SECRET], now=T + 10)

    def test_tampered_body_is_refused(self) -> None:
        tampered = SIGNED_BODY.replace(b"Boulder", b"Bowlder", 1)
        with pytest.raises(Unauthorized, match="does not match"):
            SHIPPO_SIGNATURE.verify(HEADER, tampered, [SECRET], now=T)

    def test_wrong_secret_is_refused(self) -> None:
        with pytest.raises(Unauthorized, match="does not match"):
            SHIPPO_SIGNATURE.verify(HEADER, SIGNED_BODY, ["shippo-hmac-key-0000"], now=T)

    def test_missing_header_is_refused(self) -> None:
        with pytest.raises(Unauthorized, match="missing shippo-auth-signature"):
            SHIPPO_SIGNATURE.verify({}, SIGNED_BODY, [SECRET], now=T)

    @pytest.mark.parametrize("skew", [-301, 301, 3600])
    def test_stale_or_future_timestamp_is_refused(self, skew: int) -> None:
        # Given a correctly signed delivery replayed later (or from a clock far ahead)
        with pytest.raises(Unauthorized, match="tolerance"):
            SHIPPO_SIGNATURE.verify(HEADER, SIGNED_BODY, [SECRET], now=T + skew)

    def test_second_of_two_active_secrets_is_accepted(self) -> None:
        SHIPPO_SIGNATURE.verify(HEADER, SIGNED_BODY, ["shippo-hmac-key-new", SECRET], now=T)

    def test_timestamp_is_part_of_the_signature(self) -> None:
        moved = {"shippo-auth-signature": f"t={T + 60},v1={V1}"}
        with pytest.raises(Unauthorized, match="does not match"):
            SHIPPO_SIGNATURE.verify(moved, SIGNED_BODY, [SECRET], now=T + 60)


# ------------------------------------------------------------------------------ round trip

CHICAGO = Place("Chicago", "IL", "60607", "US", "America/Chicago")
PARCEL = Parcel(
    legs=(Leg("dhl", "5813904627"), Leg("usps", "9400136105123456789012")),
    origin=CHICAGO,
    destination=CHICAGO,
    service="Express",
)
T0 = datetime(2026, 3, 7, 23, 20, 41, tzinfo=UTC)


def _matching(result: NormalizeResult, scan: TrueScan) -> list[CanonicalEvent]:
    # A Track is one carrier and one number: partner scans come under the shipper's.
    return [
        e
        for e in result.events
        if (e.carrier, e.tracking_number) == ("dhl", "5813904627")
        and e.occurred_at.replace(second=0) == scan.at.replace(second=0)
    ]


@pytest.mark.parametrize("kind", sorted(CANONICAL))
@pytest.mark.parametrize("place", [CHICAGO, None])
def test_round_trip_every_kind(kind: str, place: Place | None) -> None:
    # Given a scan of this kind after a pickup
    scans = [TrueScan("picked_up", T0, CHICAGO), TrueScan(kind, T0 + timedelta(days=1, minutes=3), place)]
    # When Shippo's webhook for it is normalized
    body = builder.webhook_body(PARCEL, scans, now=T0 + timedelta(days=1, minutes=10))
    result = shippo.normalize(body, received_at=RECEIVED)
    # Then the scan is one event of the carrier and number, at its instant, read as promised
    (event,) = _matching(result, scans[1])
    assert (event.milestone, event.exception) in builder.RENDERS[kind]
    assert result.unmapped == []


def test_round_trip_last_mile_scans_come_under_the_shipper_number() -> None:
    scans = [TrueScan("picked_up", T0, CHICAGO), TrueScan("delivered", T0 + timedelta(days=2), CHICAGO, leg=1)]
    result = shippo.normalize(builder.webhook_body(PARCEL, scans, now=T0 + timedelta(days=2)), received_at=RECEIVED)
    assert [(e.carrier, e.tracking_number, e.milestone) for e in result.events] == [
        ("dhl", "5813904627", M.PICKED_UP),
        ("dhl", "5813904627", M.DELIVERED),
    ]


def test_builder_renders_a_parcel_with_no_scan_as_unknown() -> None:
    result = shippo.normalize(builder.webhook_body(PARCEL, [], now=T0), received_at=RECEIVED)
    assert (result.events, result.ignored is not None) == ([], True)
    document = json.loads(builder.webhook_body(PARCEL, [], now=T0))
    assert (document["data"]["carrier"], document["data"]["tracking_status"]["status"]) == ("dhl_express", "UNKNOWN")


def test_builder_renders_every_kind() -> None:
    assert set(builder.RENDERS) == set(builder.CODES) == set(CANONICAL)


# ------------------------------------------------------------------------------ reference payloads
