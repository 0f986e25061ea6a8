"""POST /v1/shipments input: every field is checked, and a refusal names the field and why
(never the value: it may be a customer's e-mail address or phone number)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from shared.errors import InvalidInput, MalformedPayload, PayloadTooLarge
from shared.logic.merchant.registration import parse_registration

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def payload(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "carrier": "ups",
        "tracking_number": "1Z999AA10123456784",
        "order_id": "ORD-1001",
        "origin": {"country": "US", "region": "KY", "city": "Louisville", "postal_code": "40201"},
        "destination": {"country": "US", "region": "IL", "city": "Chicago", "postal_code": "60601"},
        "customer": {"name": "Ann Lee", "email": "ann@example.com", "phone": "+13125550100"},
        "locale": "en-US",
        "time_zone": "America/Chicago",
        "promised_delivery_date": "2026-11-28",
        "label_created_at": "2026-11-24T09:00:00-05:00",
    }
    for path, value in changes.items():
        target = body
        *parents, leaf = path.split("__")
        for part in parents:
            target = target[part]
        if value is ...:
            target.pop(leaf, None)
        else:
            target[leaf] = value
    return body


def parse(body: dict[str, Any]):  # type: ignore[no-untyped-def]
    return parse_registration(json.dumps(body), now=NOW)


def test_a_complete_registration_is_read_and_normalised() -> None:
    # Given a registration written the way people write these fields
    body = payload(
        carrier="UPS",
        tracking_number="1z999 aa1 0123456784",
        origin={"country": "us"},
        destination={"country": "gb", "postal_code": "sw1a  1aa", "city": " London "},
        customer={"name": "Ann", "email": "Ann@Example.COM", "phone": "+44 (20) 7946-0958"},
        locale="zh_hant_tw",
        label_created_at="2026-11-24T09:00:00+01:00",
    )
    # When it is parsed
    request = parse(body)
    # Then every field is in its canonical form
    assert request.tracking_number == "1Z999AA10123456784"
    assert request.origin.country == "US"
    assert request.destination.country == "GB"
    assert request.destination.postal_code == "SW1A 1AA"
    assert request.destination.city == "London"
    assert request.customer is not None
    assert request.customer.email == "Ann@example.com"
    assert request.customer.phone == "+442079460958"
    assert request.locale == "zh-Hant-TW"
    assert request.promised_delivery_date == date(2026, 11, 28)
    assert request.label_created_at == datetime(2026, 11, 24, 8, 0, tzinfo=UTC)


def test_the_optional_fields_may_be_left_out() -> None:
    body = payload(customer=..., locale=..., time_zone=..., promised_delivery_date=..., label_created_at=...)
    request = parse(body)
    assert request.customer is None
    assert request.last_mile is None


GOOD = [
    ("carrier", "FedEx"),
    ("carrier", "DHL Express"),
    ("tracking_number", "9400-1118-9922-3344-5566-77"),
    ("order_id", "#1001/ä"),
    ("origin__country", "DE"),
    ("destination__region", "Île-de-France"),
    ("destination__postal_code", "75008"),
    ("customer__email", "o'brien+parcel@mail.example.co.uk"),
    ("customer__phone", "+8613800138000"),
    ("locale", "fr"),
    ("locale", "es-419"),
    ("locale", "sr-Latn-RS"),
    ("locale", "de-CH-1996"),
    ("time_zone", "Asia/Kolkata"),
    ("time_zone", "UTC"),
    ("promised_delivery_date", None),
    ("label_created_at", "2026-11-25T11:00:00Z"),  # within a day ahead: clocks and time zones differ
]


@pytest.mark.parametrize(("field", "value"), GOOD)
def test_accepted_values(field: str, value: Any) -> None:
    parse(payload(**{field: value}))


BAD = [
    # (field as the merchant wrote it, the value, the field named in the answer, words of the reason)
    ("carrier", "", "carrier", "not a carrier name"),
    ("carrier", "u", "carrier", "not a carrier name"),
    ("carrier", "ups<script>", "carrier", "not a carrier name"),
    ("carrier", 7, "carrier", "valid string"),
    ("carrier", ..., "carrier", "is required"),
    ("tracking_number", "1Z 999 ÄÖ", "tracking_number", "letters, digits or hyphens"),
    ("tracking_number", "X" * 65, "tracking_number", "letters, digits or hyphens"),
    ("tracking_number", ..., "tracking_number", "is required"),
    ("order_id", "", "order_id", "at least 1 character"),
    ("order_id", "   ", "order_id", "is blank"),
    ("order_id", "A" * 129, "order_id", "at most 128 characters"),
    ("order_id", "ORD\n1", "order_id", "control characters"),
    ("order_id", ..., "order_id", "is required"),
    ("origin", ..., "origin", "is required"),
    ("origin__country", "UK", "origin.country", "did you mean GB?"),
    ("origin__country", "USA", "origin.country", "did you mean US?"),
    ("origin__country", "ZZ", "origin.country", "ISO 3166-1 alpha-2"),
    ("origin__country", ..., "origin.country", "is required"),
    ("destination__postal_code", "60601!", "destination.postal_code", "postal code"),
    ("destination__postal_code", "1" * 21, "destination.postal_code", "at most 20 characters"),
    ("destination__city", "C" * 101, "destination.city", "at most 100 characters"),
    ("destination__street", "1 Main St", "destination.street", "not a field of this request"),
    ("customer__email", "ann@example", "customer.email", "not an e-mail address"),
    ("customer__email", "ann example.com", "customer.email", "not an e-mail address"),
    ("customer__email", "a@-example.com", "customer.email", "not an e-mail address"),
    ("customer__phone", "3125550100", "customer.phone", "E.164"),
    ("customer__phone", "+0125550100", "customer.phone", "E.164"),
    ("customer__phone", "+1234567890123456", "customer.phone", "E.164"),
    ("customer__name", "N" * 201, "customer.name", "at most 200 characters"),
    ("locale", "english", "locale", "BCP 47"),
    ("locale", "en-", "locale", "BCP 47"),
    ("locale", "e", "locale", "BCP 47"),
    ("time_zone", "Mars/Olympus_Mons", "time_zone", "IANA time zone"),
    ("time_zone", "../../etc/passwd", "time_zone", "IANA time zone"),
    ("time_zone", "localtime", "time_zone", "IANA time zone"),
    ("promised_delivery_date", "2026-02-30", "promised_delivery_date", "valid date"),
    ("promised_delivery_date", "28/11/2026", "promised_delivery_date", "valid date"),
    ("promised_delivery_date", 20261128, "promised_delivery_date", "valid date"),
    ("label_created_at", "2026-11-24T09:00:00", "label_created_at", "timezone"),
    ("label_created_at", "yesterday", "label_created_at", "valid datetime"),
    ("label_created_at", 1790000000, "label_created_at", "valid datetime"),
    ("label_created_at", "2026-11-26T12:00:00Z", "label_created_at", "more than a day in the future"),
    ("last_mile", {"carrier": "usps"}, "last_mile.tracking_number", "is required"),
    ("last_mile", {"carrier": "ups", "tracking_number": "1Z999AA10123456784"}, "last_mile", "same tracking number"),
    ("gift_wrap", True, "gift_wrap", "not a field of this request"),
]


@pytest.mark.parametrize(("field", "value", "named", "reason"), BAD)
def test_refused_values_name_the_field_and_the_reason(field: str, value: Any, named: str, reason: str) -> None:
    # Given a registration with one bad field
    body = payload(**{field: value})
    # When it is parsed
    with pytest.raises(InvalidInput) as refused:
        parse(body)
    # Then the answer names that field and why, and never echoes what was sent
    assert f"{named}: " in refused.value.detail
    assert reason in refused.value.detail
    if isinstance(value, str) and len(value) > 3:
        assert value not in refused.value.detail


def test_every_bad_field_is_named_at_once() -> None:
    body = payload(origin__country="ZZ", customer__email="nope", locale="?")
    with pytest.raises(InvalidInput) as refused:
        parse(body)
    assert refused.value.detail.count(": ") == 3
    for named in ("origin.country", "customer.email", "locale"):
        assert named in refused.value.detail


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ("", MalformedPayload),
        ("not json", MalformedPayload),
        ("[1, 2]", MalformedPayload),
        ('"a string"', MalformedPayload),
        ("{" + '"order_id": "' + "x" * 20_000 + '"}', PayloadTooLarge),
    ],
)
def test_a_body_that_is_not_a_json_object_is_refused(body: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        parse_registration(body, now=NOW)


def test_the_label_time_allows_a_day_of_clock_and_zone_confusion() -> None:
    ahead = (NOW + timedelta(hours=23)).isoformat()
    assert parse(payload(label_created_at=ahead)).label_created_at is not None
