"""The generic source: Shiplight's own schema for warehouses, 3PLs and merchant systems."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from shared.adapters import generic
from shared.errors import PayloadError
from shared.models.canonical import IncidentType, Milestone, TimeSource
from tests.conftest import event_bytes

RECEIVED = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


def normalize(name: str) -> generic.NormalizeResult:
    return generic.normalize(event_bytes("generic", name), received_at=RECEIVED)


def test_warehouse_reports_packed_and_handed_to_carrier() -> None:
    result = normalize("warehouse_packed_and_handed.json")
    packed, handed = result.events
    assert (packed.milestone, handed.milestone) == (Milestone.LABEL_CREATED, Milestone.PICKED_UP)
    # the tracking number is the carrier's, however the warehouse spaced it
    assert packed.tracking_number == handed.tracking_number == "1Z4Y0A190348261953"
    assert packed.carrier == "ups"
    assert packed.occurred_at == datetime(2026, 11, 2, 14, 48, tzinfo=UTC)
    assert packed.occurred_at_local is not None
    assert packed.occurred_at_local.isoformat() == "2026-11-02T06:48:00-08:00"
    assert packed.time_source is TimeSource.CARRIER_OFFSET
    # "USA" and "United States" are both the ISO code US
    assert packed.location is not None
    assert packed.location.country == "US"
    assert handed.location is not None
    assert handed.location.country == "US"
    assert packed.raw_code == "packed"


def test_own_fleet_failed_delivery_with_address_issue_note_and_unknown_code() -> None:
    result = normalize("own_fleet_with_exception.json")
    ofd, failed, note, wrapped = result.events
    assert ofd.milestone is Milestone.OUT_FOR_DELIVERY
    assert ofd.location
    assert ofd.location.country == "FR"
    assert (failed.milestone, failed.exception) == (Milestone.DELIVERY_FAILED, IncidentType.ADDRESS_ISSUE)
    assert failed.raw_code == "delivery_failed/address_issue"
    assert (note.milestone, note.exception) == (None, None)
    assert wrapped.milestone is None
    assert wrapped.raw_code == "gift_wrapped"
    assert result.unmapped == ["code=gift_wrapped"]


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("missing_offset.json", "timezone"),
        ("unknown_field.json", "recipient_name"),
        ("empty_events.json", "events"),
    ],
)
def test_payloads_off_the_schema_are_payload_errors_naming_the_field(name: str, problem: str) -> None:
    with pytest.raises(PayloadError, match=problem):
        normalize(name)
