"""Countries and time zones of scan locations."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from shared.adapters import load_adapter
from shared.errors import PayloadError
from shared.models.geo import normalize_country, zone_for
from tests.conftest import event_bytes

SUMMER = datetime(2026, 7, 1, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("US", "US"),
        ("usa", "US"),
        ("United States of America", "US"),
        ("GBR", "GB"),
        ("Great Britain", "GB"),
        ("Deutschland", "DE"),
        ("Viet Nam", "VN"),
        ("Türkiye", "TR"),
        ("XK", "XK"),
        ("Atlantis", None),
        ("", None),
    ],
)
def test_countries_become_iso_alpha_2(given: str, expected: str | None) -> None:
    assert normalize_country(given) == expected


@pytest.mark.parametrize(
    ("country", "region", "postal", "zone"),
    [
        ("US", "TX", "78701", "America/Chicago"),
        ("US", "TX", "79901", "America/Denver"),  # El Paso keeps Mountain time
        ("US", "Florida", "32501", "America/Chicago"),  # Pensacola, the panhandle
        ("US", "AZ", None, "America/Phoenix"),
        ("CA", "QC", None, "America/Toronto"),
        ("AU", "Western Australia", None, "Australia/Perth"),
        ("CN", None, None, "Asia/Shanghai"),  # Beijing time nationwide
        ("FR", None, None, "Europe/Paris"),
        ("JP", None, None, "Asia/Tokyo"),  # one zone in zone.tab
        ("AR", None, None, "America/Argentina/Buenos_Aires"),  # many zones, one offset
    ],
)
def test_scan_places_resolve_to_their_zone(country: str, region: str | None, postal: str | None, zone: str) -> None:
    found = zone_for(country, region, postal, SUMMER)
    assert found is not None
    assert found.key == zone


@pytest.mark.parametrize(("country", "region"), [("US", None), ("AU", None), ("RU", None), (None, "TX")])
def test_places_that_do_not_determine_a_zone_stay_unresolved(country: str | None, region: str | None) -> None:
    assert zone_for(country, region, None, SUMMER) is None


@pytest.mark.parametrize(
    ("source", "placeholder"),
    [
        ("generic", "0001-01-01T00:00:00+05:00"),
        ("generic", "9999-12-31T23:59:59-05:00"),
        ("easypost", "0001-01-01T00:00:00+05:00"),
    ],
)
def test_a_placeholder_date_at_the_edge_of_the_calendar_is_a_payload_error(source: str, placeholder: str) -> None:
    # Some APIs send the calendar's first or last day for "no date"; converting it to UTC overflows
    document = json.loads(event_bytes(source, FIXTURE[source]))
    _set_first_time(document, placeholder)
    with pytest.raises(PayloadError, match="outside the calendar"):
        load_adapter(source).normalize(json.dumps(document).encode(), received_at=datetime(2026, 11, 24, tzinfo=UTC))


FIXTURE = {"generic": "warehouse_packed_and_handed.json", "easypost": "tracker_updated_usps_in_transit.json"}


def _set_first_time(document: dict, value: str) -> None:  # type: ignore[type-arg]
    if "events" in document:
        document["events"][0]["occurred_at"] = value
    else:
        document["result"]["tracking_details"][0]["datetime"] = value
