"""The public tracking view without pydantic: the JSON a customer's browser reads is byte for
byte the JSON of ``TrackingView``, the documented contract, for the items the ``ByToken``
index holds; unknown and malformed tokens all get the same answer."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from infra.local.template import Template
from shared.dal.items import event_item, shipment_item
from shared.errors import NotFound
from shared.http import json_response, match_route
from shared.labels import STATUS_LABELS
from shared.logic.views.tracking import NOT_FOUND, token_reference, tracking_link_target, tracking_view
from shared.models.canonical import CanonicalEvent, IncidentType, Location, Milestone, TimeSource
from shared.models.shipment import Shipment
from shared.models.views import PublicEvent, PublicLeg, PublicPlace, TrackingView

T0 = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
TOKEN = "tok_" + "A" * 20
OTHER_TOKEN = "tok_" + "B" * 20
_INDEX = next(
    index
    for index in Template.load().properties("ShipmentsTable")["GlobalSecondaryIndexes"]
    if index["IndexName"] == "ByToken"
)
PROJECTED = {"pk", "sk", "public_token", *_INDEX["Projection"]["NonKeyAttributes"]}


class TokenIndexOfItems:
    """The ``ByToken`` index over a list of stored items: each token's items, projected as
    template.yaml declares, in the index's sort-key order."""

    def __init__(self, items: list[dict[str, Any]]) -> None:
        self.items = items
        self.reads: list[str] = []

    def public_items(self, token: str) -> list[dict[str, Any]]:
        self.reads.append(token)
        found = [item for item in self.items if item.get("public_token") == token]
        return [{k: v for k, v in item.items() if k in PROJECTED} for item in sorted(found, key=lambda i: i["sk"])]


def shipment(token: str = TOKEN, **changes: Any) -> Shipment:
    fields: dict[str, Any] = {
        "shipment_id": "shp_" + token[-8:],
        "carrier": "ups",
        "tracking_number": "1Z4Y0A190348261953",
        "public_token": token,
        "created_at": T0,
        "updated_at": T0 + timedelta(days=2, seconds=5),
        "first_source": "easypost",
        "order_id": "ORD-1001",
        **changes,
    }
    return Shipment(**fields)


def scan(
    number: int,
    at: datetime,
    *,
    milestone: Milestone | None = None,
    exception: IncidentType | None = None,
    local: datetime | None = None,
    place: Location | None = None,
    description: str | None = None,
) -> CanonicalEvent:
    return CanonicalEvent(
        event_id=f"{number:032x}",
        carrier="ups",
        tracking_number="1Z4Y0A190348261953",
        milestone=milestone,
        exception=exception,
        occurred_at=at,
        occurred_at_local=local,
        time_source=TimeSource.CARRIER_OFFSET if local else TimeSource.ASSUMED_UTC,
        location=place,
        description=description,
        raw_code="X",
        received_at=at + timedelta(minutes=1),
    )


def stored(record: Shipment, events: list[CanonicalEvent]) -> list[dict[str, Any]]:
    """The items the write path stores for ``record`` and its events."""
    return [shipment_item(record), *(event_item(event, shipment=record, source="easypost") for event in events)]


def contract_view(items: list[dict[str, Any]]) -> TrackingView:
    """The view as the pydantic models build it from one shipment's index items (how the
    route built it before it stopped importing pydantic)."""
    meta = next(item for item in items if item.get("entity") == "shipment")
    events = sorted((item for item in items if item.get("entity") == "event"), key=lambda i: i["sk"], reverse=True)
    status = Milestone(meta["status"]) if meta.get("status") else None
    return TrackingView(
        carrier=meta["carrier"],
        tracking_number=meta["tracking_number"],
        tracking_numbers=[
            PublicLeg(carrier=text.partition(":")[0], tracking_number=text.partition(":")[2])
            for text in meta.get("tracking_keys") or []
        ],
        status=status,
        status_label=STATUS_LABELS[status],
        status_since=meta.get("status_since"),
        last_event_at=meta.get("last_event_at"),
        updated_at=meta["updated_at"],
        events=[
            PublicEvent(
                milestone=item.get("milestone"),
                exception=item.get("exception"),
                occurred_at=item["occurred_at"],
                occurred_at_local=item.get("occurred_at_local"),
                location=PublicPlace(
                    city=item["location"].get("city"),
                    region=item["location"].get("region"),
                    country=item["location"].get("country"),
                )
                if item.get("location")
                else None,
                description=item.get("description"),
            )
            for item in events
        ],
    )


def served_body(token: str, index: TokenIndexOfItems) -> str:
    """The body the public route sends for ``token``."""
    return str(json_response(200, tracking_view(token, index))["body"])


def rich_parcel() -> tuple[Shipment, list[CanonicalEvent]]:
    record = shipment(
        tracking_keys=["ups:1Z4Y0A190348261953", "usps:92419900000033499522966220"],
        status=Milestone.OUT_FOR_DELIVERY,
        status_since=T0 + timedelta(days=2),
        last_event_at=T0 + timedelta(days=2, microseconds=250_000),
    )
    events = [
        scan(
            1,
            T0,
            milestone=Milestone.PICKED_UP,
            local=T0.astimezone(timezone(timedelta(hours=-5))),
            place=Location(city="Reno", region="NV", postal_code="89501", country="US"),
            description='Picked up "on time" — café ✓',
        ),
        scan(2, T0 + timedelta(hours=20), exception=IncidentType.DELAYED, description="Weather\ndelay"),
        scan(
            3,
            T0 + timedelta(days=1),
            milestone=Milestone.ARRIVED_HUB,
            local=(T0 + timedelta(days=1, microseconds=123_456)).astimezone(UTC),
            place=Location(postal_code="10115", country="DE"),
        ),
        scan(
            4,
            T0 + timedelta(days=2, microseconds=250_000),
            milestone=Milestone.OUT_FOR_DELIVERY,
            local=(T0 + timedelta(days=2, microseconds=250_000)).astimezone(timezone(timedelta(hours=5, minutes=30))),
            description="Out for delivery",
        ),
    ]
    return record, events


def test_the_served_json_is_the_contract_s_json_byte_for_byte() -> None:
    # Given a parcel with two legs, events with and without places and local times, and a
    # second shipment merged into it (a link sent before the merge)
    record, events = rich_parcel()
    merged = shipment(
        OTHER_TOKEN, carrier="usps", tracking_number="92419900000033499522966220", merged_into_token=TOKEN
    )
    index = TokenIndexOfItems([*stored(record, events), *stored(merged, [])])
    # When the customer opens either link
    body = served_body(TOKEN, index)
    through_merge = served_body(OTHER_TOKEN, index)
    # Then the answer is TrackingView's JSON of the same items, byte for byte, and valid against it
    expected = contract_view(index.public_items(TOKEN)).model_dump_json()
    assert body == expected
    assert through_merge == expected
    assert TrackingView.model_validate_json(body).model_dump_json() == body
    view = json.loads(body)
    assert [e["milestone"] for e in view["events"]] == ["out_for_delivery", "arrived_hub", None, "picked_up"]
    assert view["status_label"] == "Out for delivery"
    assert view["events"][3]["occurred_at_local"] == "2026-12-01T04:30:00-05:00"
    assert view["events"][1]["location"] == {"city": None, "region": None, "country": "DE"}
    # and no postal code, order or internal identifier is shown
    for private in ("89501", "10115", "postal_code", "ORD-1001", "shp_", "public_token", "easypost"):
        assert private not in body


def test_a_parcel_without_status_or_events_waits_for_its_first_update() -> None:
    # Given a shipment known to Shiplight with no scan yet
    index = TokenIndexOfItems(stored(shipment(carrier="dhl", tracking_number="1234567890"), []))
    # When the customer opens the link
    body = served_body(TOKEN, index)
    # Then the page says so, in the contract's JSON
    assert body == contract_view(index.public_items(TOKEN)).model_dump_json()
    assert json.loads(body)["status_label"] == "Waiting for the first update"
    assert json.loads(body)["events"] == []


offsets = st.integers(min_value=-12 * 4, max_value=14 * 4).map(
    lambda quarters: timezone(timedelta(minutes=15 * quarters))
)
instants = st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC)).map(
    lambda at: at.replace(microsecond=at.microsecond if at.microsecond % 2 else 0)
)
places = st.none() | st.builds(
    Location,
    city=st.none() | st.text(max_size=30),
    region=st.none() | st.text(max_size=10),
    postal_code=st.none() | st.text(max_size=10),
    country=st.none() | st.sampled_from(["US", "DE", "IN", "NZ"]),
)


@st.composite
def parcels(draw: st.DrawFn) -> list[dict[str, Any]]:
    events = [
        scan(
            number,
            at,
            milestone=draw(st.none() | st.sampled_from(Milestone)),
            exception=draw(st.none() | st.sampled_from(IncidentType)),
            local=draw(st.none() | offsets.map(at.astimezone)),
            place=draw(places),
            description=draw(st.none() | st.text(max_size=40)),
        )
        for number, at in enumerate(draw(st.lists(instants, max_size=6)))
    ]
    status = draw(st.none() | st.sampled_from(Milestone))
    record = shipment(
        status=status,
        status_since=draw(instants) if status else None,
        last_event_at=max((e.occurred_at for e in events), default=None),
        updated_at=draw(instants),
        tracking_keys=draw(st.lists(st.sampled_from(["ups:1Z4Y0A190348261953", "dhl:1234567890"]), max_size=2)),
    )
    return stored(record, events)


@settings(max_examples=150, deadline=None)
@given(items=parcels())
def test_any_stored_parcel_is_served_as_the_contract_s_json(items: list[dict[str, Any]]) -> None:
    # Given any parcel the write path may store (instants with and without fractions,
    # local times at any offset, partial places, free text)
    index = TokenIndexOfItems(items)
    # When it is served
    body = served_body(TOKEN, index)
    # Then the bytes are those TrackingView writes for the same items
    assert body == contract_view(index.public_items(TOKEN)).model_dump_json()


def test_a_timeline_longer_than_the_contract_allows_shows_its_newest_events() -> None:
    # Given a parcel with more events than TrackingView admits
    events = [scan(n, T0 + timedelta(minutes=n), milestone=Milestone.IN_TRANSIT) for n in range(1001)]
    index = TokenIndexOfItems(stored(shipment(status=Milestone.IN_TRANSIT), events))
    # When it is served
    view = TrackingView.model_validate_json(served_body(TOKEN, index))
    # Then the newest 1000 are shown, newest first, and the answer is valid
    assert len(view.events) == 1000
    assert view.events[0].occurred_at == T0 + timedelta(minutes=1000)
    assert view.events[-1].occurred_at == T0 + timedelta(minutes=1)


@pytest.mark.parametrize(
    ("token", "well_formed"),
    [
        ("tok_" + "Z" * 20, True),
        ("1Z4Y0A190348261953", False),  # a tracking number never addresses a public resource
        ("x", False),
        ("../../etc/passwd", False),
        ("%2e%2e", False),
        ("A" * 65, False),
        ("tok_" + "A" * 19 + "!", False),
    ],
)
def test_unknown_and_malformed_tokens_get_the_same_answer(token: str, well_formed: bool) -> None:
    # Given a table holding one parcel
    record, events = rich_parcel()
    index = TokenIndexOfItems(stored(record, events))
    # When anything else is asked for
    with pytest.raises(NotFound) as refused:
        tracking_view(token, index)
    # Then the answer does not tell a well-formed guess from a malformed one
    assert refused.value.detail == NOT_FOUND
    # and a token no link could hold never reaches the table
    assert index.reads == ([token] if well_formed else [])


def test_the_tracking_link_forwards_to_the_view_of_the_same_token() -> None:
    # Given the customer's link; When it is followed; Then it leads to the JSON view
    assert tracking_link_target(TOKEN) == f"/v1/track/{TOKEN}"
    # and a link no token could be refuses like an unknown one
    with pytest.raises(NotFound) as refused:
        tracking_link_target("bad!")
    assert refused.value.detail == NOT_FOUND


def test_every_status_has_a_label_and_logs_name_a_token_only_by_a_short_hash() -> None:
    # Given every status a shipment can have; Then each has words for the customer
    assert set(STATUS_LABELS) == {None, *Milestone}
    # and what a log line carries for a token does not contain it
    reference = token_reference(TOKEN)
    assert len(reference) == 12
    assert TOKEN not in reference and reference == token_reference(TOKEN) != token_reference(OTHER_TOKEN)


def http_event(method: str, raw_path: str, route_key: str = "$default", **parameters: str) -> dict[str, Any]:
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": raw_path,
        "requestContext": {"http": {"method": method, "path": raw_path}},
    }
    if parameters:
        event["pathParameters"] = parameters
    return event


ROUTES = ("GET /v1/track/{token}", "GET /t/{token}")


def test_routes_are_found_by_route_key_or_by_method_and_path() -> None:
    # Given the events API Gateway sends for the public routes, and for a $default route
    by_key = http_event("GET", f"/t/{TOKEN}", "GET /t/{token}", token=TOKEN)
    by_path = http_event("GET", "/v1/track/tok%5Fabc")
    # When they are routed; Then each finds its route and the token
    assert match_route(by_key, ROUTES) == ("GET /t/{token}", {"token": TOKEN})
    assert match_route(by_path, ROUTES) == ("GET /v1/track/{token}", {"token": "tok_abc"})
    # and another method, path or an empty token finds none
    assert match_route(http_event("POST", f"/t/{TOKEN}", "GET /t/{token}", token=TOKEN), ROUTES) is None
    assert match_route(http_event("GET", f"/t/{TOKEN}/more"), ROUTES) is None
    assert match_route(http_event("GET", "/t/"), ROUTES) is None
    assert match_route(http_event("GET", "/v1/shipments/x"), ROUTES) is None
