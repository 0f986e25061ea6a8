"""Merchant authentication: API keys, the authorizer's verdicts, their enforcement by the
merchant routes, and the local gateway's authorizer (API Gateway's answers and cache)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from infra.local.authorizers import LocalAuthorizers
from infra.local.functions import InvocationError
from infra.local.gateway import http_event
from infra.local.template import HttpAuthorizer, Route, Template
from shared.clock import FrozenClock
from shared.errors import Forbidden, InvalidInput, NotFound, Unauthorized
from shared.logic.api.auth import (
    MALFORMED,
    REVOKED,
    UNKNOWN,
    VALID,
    Verdict,
    authenticate,
    authorizer_response,
    create_api_key,
    require_merchant,
    revoke_api_key,
)
from shared.logic.api.merchant import new_merchant_resolver
from shared.models.apikeys import key_digest, parse_api_key
from tests.builders import T0
from tests.fakes import InMemoryApiKeyStore

# ------------------------------------------------------------------------------ keys


@pytest.fixture
def store() -> InMemoryApiKeyStore:
    return InMemoryApiKeyStore()


def test_a_new_key_is_shown_once_and_stored_only_as_a_digest(store: InMemoryApiKeyStore) -> None:
    # When a key is created
    record, key = create_api_key(store, label="shop frontend", now=T0)
    # Then the key names its id, carries 256 random bits, and only its SHA-256 is kept
    assert key.startswith(f"shl_{record.key_id}_")
    assert parse_api_key(key) == record.key_id
    assert len(key.removeprefix(f"shl_{record.key_id}_")) == 43  # 43 URL-safe characters: 256 bits
    stored = store.records[record.key_id]
    assert stored.key_sha256 == key_digest(key)
    assert key not in repr(stored)
    assert "key_sha256" not in stored.listing()
    assert stored.listing() == {
        "key_id": record.key_id,
        "label": "shop frontend",
        "created_at": "2026-11-02T12:00:00Z",
        "revoked_at": None,
    }


def test_two_keys_are_different(store: InMemoryApiKeyStore) -> None:
    keys = {create_api_key(store, label=None, now=T0)[1] for _ in range(20)}
    assert len(keys) == 20


@pytest.mark.parametrize("label", ["x" * 101, "tab\there", "bell\x07"])
def test_a_label_is_short_printable_text(store: InMemoryApiKeyStore, label: str) -> None:
    with pytest.raises(InvalidInput):
        create_api_key(store, label=label, now=T0)


def test_revoking_keeps_the_first_revocation_time(store: InMemoryApiKeyStore) -> None:
    record, _ = create_api_key(store, label="old", now=T0)
    first = revoke_api_key(store, record.key_id, now=T0 + timedelta(hours=1))
    again = revoke_api_key(store, record.key_id, now=T0 + timedelta(hours=2))
    assert first.revoked_at == again.revoked_at == "2026-11-02T13:00:00Z"


@pytest.mark.parametrize("key_id", ["0123456789abcdef", "not-an-id", ""])
def test_revoking_an_unknown_key_is_not_found(store: InMemoryApiKeyStore, key_id: str) -> None:
    with pytest.raises(NotFound):
        revoke_api_key(store, key_id, now=T0)


# ------------------------------------------------------------------------------ verdicts


def test_verdicts_on_every_kind_of_header(store: InMemoryApiKeyStore) -> None:
    # Given a live key and a revoked one
    live_record, live = create_api_key(store, label="live", now=T0)
    old_record, old = create_api_key(store, label="old", now=T0)
    revoke_api_key(store, old_record.key_id, now=T0)
    wrong_secret = live[:-4] + ("AAAA" if not live.endswith("AAAA") else "BBBB")
    unknown = "shl_0123456789abcdef_" + "A" * 43
    # Then each header gets its verdict
    assert authenticate(f"Bearer {live}", store) == Verdict(VALID, live_record.key_id)
    assert authenticate(f"bearer   {live} ", store) == Verdict(VALID, live_record.key_id)
    assert authenticate(f"Bearer {old}", store) == Verdict(REVOKED, old_record.key_id)
    assert authenticate(f"Bearer {wrong_secret}", store) == Verdict(UNKNOWN, live_record.key_id)
    assert authenticate(f"Bearer {unknown}", store) == Verdict(UNKNOWN, "0123456789abcdef")
    for header in (None, "", "Bearer", "Bearer ", live, f"Basic {live}", "Bearer not-a-key", f"Bearer {live}x"):
        assert authenticate(header, store).outcome == MALFORMED, header


def test_a_malformed_header_costs_no_lookup(store: InMemoryApiKeyStore) -> None:
    authenticate("Bearer whatever", store)
    assert store.reads == 0


def test_the_authorizer_hands_the_verdict_to_the_route() -> None:
    assert authorizer_response(Verdict(VALID, "0123456789abcdef")) == {
        "isAuthorized": True,
        "context": {"verdict": "valid", "key_id": "0123456789abcdef"},
    }
    assert authorizer_response(Verdict(MALFORMED)) == {"isAuthorized": True, "context": {"verdict": "malformed"}}


def route_event(context: dict[str, Any] | None) -> dict[str, Any]:
    event = http_event(
        route=Route("GET", "/v1/shipments/{id}", "MerchantApiFunction", "MerchantApiKey"),
        method="GET",
        raw_path="/v1/shipments/shp_1",
        query="",
        headers=[("authorization", "Bearer x")],
        body=b"",
        path_parameters={"id": "shp_1"},
        source_ip="203.0.113.9",
        now=T0,
    )
    if context is not None:
        event["requestContext"]["authorizer"] = {"lambda": context}
    return event


@pytest.mark.parametrize(
    ("context", "refusal"),
    [
        (None, Unauthorized),  # no verdict reached the function: fail closed
        ({}, Unauthorized),
        ({"verdict": "malformed"}, Unauthorized),
        ({"verdict": "unknown", "key_id": "0123456789abcdef"}, Unauthorized),
        ({"verdict": "valid"}, Unauthorized),  # a valid verdict names its key
        ({"verdict": "revoked", "key_id": "0123456789abcdef"}, Forbidden),
    ],
)
def test_merchant_routes_refuse_all_but_a_valid_verdict(context: dict[str, Any] | None, refusal: type) -> None:
    with pytest.raises(refusal):
        require_merchant(route_event(context))


def test_the_merchant_resolver_answers_401_and_403_before_any_route_runs() -> None:
    # Given a merchant route
    app = new_merchant_resolver()
    ran: list[str] = []

    @app.get("/v1/shipments/<shipment_id>")
    def get_one(shipment_id: str) -> dict[str, str]:
        ran.append(shipment_id)
        return {"id": shipment_id}

    # When it is called with each verdict
    unknown = app.resolve(route_event({"verdict": "unknown", "key_id": "0123456789abcdef"}), {})
    revoked = app.resolve(route_event({"verdict": "revoked", "key_id": "0123456789abcdef"}), {})
    valid = app.resolve(route_event({"verdict": "valid", "key_id": "0123456789abcdef"}), {})
    # Then only the valid key reaches the route; refusals say why in the error shape
    assert unknown["statusCode"] == 401
    assert json.loads(unknown["body"])["error"] == "unauthorized"
    assert unknown["headers"]["www-authenticate"] == 'Bearer realm="shiplight"'
    assert revoked["statusCode"] == 403
    assert json.loads(revoked["body"])["error"] == "forbidden"
    assert valid["statusCode"] == 200
    assert ran == ["shp_1"]


# ------------------------------------------------------------------------------ the local gateway

SPEC = HttpAuthorizer(
    name="MerchantApiKey",
    function="AuthorizerFunction",
    identity_headers=("authorization",),
    ttl_seconds=300,
    payload_version="2.0",
    simple_responses=True,
)
ROUTE = Route("GET", "/v1/shipments/{id}", "MerchantApiFunction", "MerchantApiKey")


class FakeAuthorizer:
    def __init__(self, answer: Any = None, fails: bool = False) -> None:
        self.answer = answer if answer is not None else {"isAuthorized": True, "context": {"verdict": "valid"}}
        self.fails = fails
        self.events: list[dict[str, Any]] = []

    def __call__(self, function: str, event: dict[str, Any]) -> Any:
        assert function == "AuthorizerFunction"
        self.events.append(event)
        if self.fails:
            raise InvocationError("boom")
        return self.answer


def request(authorization: str | None = "Bearer k1") -> dict[str, Any]:
    headers = [("Authorization", authorization)] if authorization is not None else []
    return http_event(
        route=ROUTE,
        method="GET",
        raw_path="/v1/shipments/shp_1",
        query="",
        headers=headers,
        body=b'{"a":1}',
        path_parameters={"id": "shp_1"},
        source_ip="203.0.113.9",
        now=T0,
    )


@pytest.mark.parametrize("header", [None, "", "   "])
def test_without_the_identity_header_api_gateway_answers_401_itself(header: str | None) -> None:
    authorizer = FakeAuthorizer()
    gateway = LocalAuthorizers({"MerchantApiKey": SPEC}, authorizer, now=FrozenClock(T0).now)
    assert gateway.authorize(ROUTE, request(header)) == (
        401,
        {"content-type": "application/json"},
        b'{"message":"Unauthorized"}',
    )
    assert authorizer.events == []


def test_the_authorizer_sees_the_request_and_its_context_reaches_the_route() -> None:
    authorizer = FakeAuthorizer({"isAuthorized": True, "context": {"verdict": "valid", "key_id": "k"}})
    gateway = LocalAuthorizers({"MerchantApiKey": SPEC}, authorizer, now=FrozenClock(T0).now)
    event = request()
    assert gateway.authorize(ROUTE, event) is None
    assert event["requestContext"]["authorizer"] == {"lambda": {"verdict": "valid", "key_id": "k"}}
    (seen,) = authorizer.events
    assert seen["type"] == "REQUEST"
    assert seen["identitySource"] == ["Bearer k1"]
    assert seen["routeArn"].endswith("/$default/GET/v1/shipments/shp_1")
    assert "body" not in seen


def test_results_are_cached_per_header_value_for_the_ttl() -> None:
    # Given a gateway whose authorizer allowed a key
    moment = FrozenClock(T0)
    authorizer = FakeAuthorizer()
    gateway = LocalAuthorizers({"MerchantApiKey": SPEC}, authorizer, now=moment.now)
    gateway.authorize(ROUTE, request("Bearer k1"))
    # When the same key comes back within five minutes, and another key
    moment.advance(timedelta(seconds=299))
    gateway.authorize(ROUTE, request("Bearer k1"))
    gateway.authorize(ROUTE, request("Bearer k2"))
    # Then the first is not asked again, the second is
    assert [e["identitySource"] for e in authorizer.events] == [["Bearer k1"], ["Bearer k2"]]
    # and once the TTL has passed the first is asked again
    moment.advance(timedelta(seconds=2))
    gateway.authorize(ROUTE, request("Bearer k1"))
    assert len(authorizer.events) == 3
    assert all("k1" not in key and "k2" not in key for _, key in gateway._cache)  # only digests are kept


def test_a_deny_is_a_403_and_is_cached_too() -> None:
    authorizer = FakeAuthorizer({"isAuthorized": False})
    gateway = LocalAuthorizers({"MerchantApiKey": SPEC}, authorizer, now=FrozenClock(T0).now)
    for _ in range(2):
        assert gateway.authorize(ROUTE, request()) == (
            403,
            {"content-type": "application/json"},
            b'{"message":"Forbidden"}',
        )
    assert len(authorizer.events) == 1


@pytest.mark.parametrize(
    "authorizer",
    [
        FakeAuthorizer(fails=True),
        FakeAuthorizer({"isAuthorized": "true"}),
        FakeAuthorizer({"context": {}}),
        FakeAuthorizer({"isAuthorized": True, "context": ["no"]}),
    ],
)
def test_a_failing_authorizer_is_a_500_and_is_not_cached(authorizer: FakeAuthorizer) -> None:
    gateway = LocalAuthorizers({"MerchantApiKey": SPEC}, authorizer, now=FrozenClock(T0).now)
    for _ in range(2):
        assert gateway.authorize(ROUTE, request())[0] == 500  # type: ignore[index]
    assert len(authorizer.events) == 2


def test_a_route_naming_an_undeclared_authorizer_fails_closed() -> None:
    gateway = LocalAuthorizers({}, FakeAuthorizer(), now=FrozenClock(T0).now)
    assert gateway.authorize(ROUTE, request())[0] == 500  # type: ignore[index]


def test_the_template_guards_every_merchant_route_with_the_cached_key_authorizer() -> None:
    template = Template.load()
    (spec,) = template.http_authorizers().values()
    assert spec == HttpAuthorizer(
        name="MerchantApiKey",
        function="AuthorizerFunction",
        identity_headers=("authorization",),
        ttl_seconds=300,
        payload_version="2.0",
        simple_responses=True,
    )
    public = ("/webhooks/", "/v1/track/", "/t/")
    for route in template.http_routes():
        if route.path.startswith(public):
            assert route.authorizer is None, route
        else:
            assert route.authorizer == "MerchantApiKey", f"{route.route_key} is not behind the API key authorizer"
