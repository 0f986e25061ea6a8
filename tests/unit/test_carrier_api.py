"""The carriers' tracking APIs as the poller calls them: tokens, retries, Retry-After, failures
that must surface as typed errors, credential rotation, the worst case of one fetch.

These tests talk HTTP to a server on 127.0.0.1 (a scripted carrier host, or the fake carrier
API the local stack uses); every other host stays blocked.
"""

from __future__ import annotations

import email.utils
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import pytest
import urllib3.util.retry
from hypothesis import given, settings
from hypothesis import strategies as st
from pytest_socket import socket_allow_hosts

from infra.fake_carriers import FAKE_CREDENTIALS, CarrierWorld, FakeCarrierApi
from shared.dal.carrier_api import (
    BACKOFF_MAX,
    CONNECT_TIMEOUT,
    READ_TIMEOUT,
    RETRIES,
    CarrierClient,
    CredentialsMissing,
    CredentialsRefused,
    retry_after_seconds,
)
from shared.errors import DependencyUnavailable
from shared.logic.polling.ratelimit import TokenBucket

UPS = {"client_id": "ups-id", "client_secret": "ups-secret"}
FEDEX = {"client_id": "fedex-id", "client_secret": "fedex-secret"}
DHL = {"api_key": "dhl-key"}
NUMBER = "1Z4Y0A190348261953"


@pytest.fixture(autouse=True)
def no_network() -> None:
    """Overrides the unit tier's socket ban with a loopback-only one (pytest-socket lifts it
    after each test)."""
    socket_allow_hosts(["127.0.0.1"], allow_unix_socket=True)


@pytest.fixture(autouse=True)
def retry_pauses(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """urllib3's pauses between tries, recorded instead of slept."""
    pauses: list[float] = []
    monkeypatch.setattr(urllib3.util.retry.time, "sleep", pauses.append)
    return pauses


Reply = tuple[int, dict[str, str], bytes]


@dataclass
class Seen:
    kind: str  # "token" or "track"
    method: str
    path: str
    headers: dict[str, str]
    form: dict[str, str]


@dataclass
class CarrierHost:
    """A carrier on loopback that answers from a script (then a default) and records requests."""

    token_replies: list[Reply] = field(default_factory=list)
    track_replies: list[Reply] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)
    issued: int = 0

    def reply(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Reply:
        kind = "token" if "oauth" in path else "track"
        form = {k: v[0] for k, v in parse_qs(body.decode()).items()} if kind == "token" else {}
        self.seen.append(Seen(kind, method, path, headers, form))
        script = self.token_replies if kind == "token" else self.track_replies
        if script:
            return script.pop(0)
        if kind == "token":
            self.issued += 1
            document = {"access_token": f"token-{self.issued}", "expires_in": 3599}
            return 200, {"content-type": "application/json"}, json.dumps(document).encode()
        return 200, {"content-type": "application/json"}, b'{"trackResponse": {}}'

    def of(self, kind: str) -> list[Seen]:
        return [s for s in self.seen if s.kind == kind]


@pytest.fixture
def host() -> Iterator[tuple[CarrierHost, str]]:
    script = CarrierHost()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, reply_headers, payload = script.reply(self.command, self.path, headers, body)
            self.send_response(HTTPStatus(status))
            for key, value in reply_headers.items():
                self.send_header(key, value)
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = _serve

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield script, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def client_for(base: str, **credentials: dict[str, str]) -> CarrierClient:
    return CarrierClient({source: f"{base}/{source}" for source in ("ups", "fedex", "dhl")}, credentials)


def json_reply(status: int, document: object, **headers: str) -> Reply:
    return status, {"content-type": "application/json", **headers}, json.dumps(document).encode()


# ------------------------------------------------------------------------------ Retry-After


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("120", 120.0), (" 7 ", 7.0), ("0", 0.0), (None, None), ("", None), ("soon", None), ("-5", None), ("1.5", None)],
)
def test_retry_after_in_seconds_or_nothing(header: str | None, seconds: float | None) -> None:
    # Given a Retry-After header as a carrier may send it, When read, Then seconds, or None when unreadable
    assert retry_after_seconds(header) == seconds


def test_retry_after_as_an_http_date() -> None:
    # Given dates an hour ahead, in the past, and without a zone (unknowable)
    ahead = email.utils.format_datetime(datetime.now(UTC) + timedelta(hours=1), usegmt=True)
    past = email.utils.format_datetime(datetime.now(UTC) - timedelta(hours=1), usegmt=True)
    # Then an hour (give or take the test's own run), zero, and nothing
    seconds = retry_after_seconds(ahead)
    assert seconds is not None and 3000 < seconds <= 3600
    assert retry_after_seconds(past) == 0.0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 -0000") is None


def test_a_long_retry_after_is_handed_back_at_once(host: tuple[CarrierHost, str], retry_pauses: list[float]) -> None:
    # Given UPS answers 429 asking for two minutes
    script, base = host
    script.track_replies = [json_reply(429, {"error": "slow down"}, **{"Retry-After": "120"})]
    # When the poller fetches
    answer = client_for(base, ups=UPS).fetch("ups", NUMBER)
    # Then the 429 comes back with its Retry-After, after one request and no wait
    assert (answer.status, answer.retry_after) == (429, 120.0)
    assert len(script.of("track")) == 1
    assert retry_pauses == []


def test_a_short_retry_after_is_waited_for_then_retried(
    host: tuple[CarrierHost, str], retry_pauses: list[float]
) -> None:
    # Given UPS answers 429 "retry in 3 s", then the answer
    script, base = host
    script.track_replies = [json_reply(429, {}, **{"Retry-After": "3"})]
    # When the poller fetches
    answer = client_for(base, ups=UPS).fetch("ups", NUMBER)
    # Then the client waited the 3 s once and got the answer on the second request
    assert answer.status == 200
    assert len(script.of("track")) == 2
    assert retry_pauses == [3.0]


def test_retries_are_bounded_and_the_last_answer_comes_back(
    host: tuple[CarrierHost, str], retry_pauses: list[float]
) -> None:
    # Given UPS keeps answering 503
    script, base = host
    script.track_replies = [json_reply(503, {"error": "down"}) for _ in range(10)]
    # When the poller fetches
    answer = client_for(base, ups=UPS).fetch("ups", NUMBER)
    # Then it asked 1 + RETRIES times, pausing between tries, and hands back the 503 (no exception)
    assert answer.status == 503
    assert len(script.of("track")) == 1 + RETRIES
    assert retry_pauses and all(0 < p <= BACKOFF_MAX for p in retry_pauses)


# ------------------------------------------------------------------------------ tokens


def test_a_token_is_fetched_once_and_reused(host: tuple[CarrierHost, str]) -> None:
    # Given a UPS client
    script, base = host
    client = client_for(base, ups=UPS)
    # When it fetches two parcels
    client.fetch("ups", NUMBER)
    client.fetch("ups", "1Z4Y0A190348261954")
    # Then one token request (UPS: client id and secret as basic auth), two track calls bearing it
    (token_request,) = script.of("token")
    assert token_request.headers["authorization"].startswith("Basic ")
    assert token_request.form == {"grant_type": "client_credentials"}
    assert [s.headers["authorization"] for s in script.of("track")] == ["Bearer token-1"] * 2


def test_a_revoked_token_is_replaced_once(host: tuple[CarrierHost, str]) -> None:
    # Given the carrier revoked the cached token early (401 on the track call)
    script, base = host
    client = client_for(base, ups=UPS)
    client.fetch("ups", NUMBER)
    script.track_replies = [json_reply(401, {"errors": [{"code": "250002"}]})]
    # When the poller fetches again
    answer = client.fetch("ups", NUMBER)
    # Then one fresh token and one more try answered
    assert answer.status == 200
    assert len(script.of("token")) == 2
    assert script.of("track")[-1].headers["authorization"] == "Bearer token-2"


def test_a_token_refused_twice_is_the_carriers_answer_not_a_loop(host: tuple[CarrierHost, str]) -> None:
    # Given the track endpoint refuses every token
    script, base = host
    script.track_replies = [json_reply(401, {}) for _ in range(5)]
    # When the poller fetches
    answer = client_for(base, ups=UPS).fetch("ups", NUMBER)
    # Then the 401 comes back after two tokens and two tries, no more
    assert answer.status == 401
    assert (len(script.of("token")), len(script.of("track"))) == (2, 2)


@pytest.mark.parametrize("status", [400, 401, 403])
def test_credentials_the_token_endpoint_refuses(host: tuple[CarrierHost, str], status: int) -> None:
    # Given FedEx's token endpoint refuses the client id and secret
    script, base = host
    script.token_replies = [json_reply(status, {"error": "invalid_client"})]
    # When the poller fetches, Then CredentialsRefused, and no track call was made
    with pytest.raises(CredentialsRefused) as raised:
        client_for(base, fedex=FEDEX).fetch("fedex", "794611111111")
    assert str(status) in raised.value.detail
    assert script.of("track") == []
    # and FedEx got the credentials in the form
    assert script.of("token")[0].form == {"grant_type": "client_credentials", **FEDEX}


@pytest.mark.parametrize(
    "reply",
    [
        json_reply(501, {"error": "not implemented"}),
        (200, {"content-type": "text/html"}, b"<html>maintenance</html>"),
        json_reply(200, {"token_type": "Bearer"}),
        json_reply(200, {"access_token": ""}),
        json_reply(200, ["token"]),
    ],
    ids=["server error", "not json", "no access_token", "empty access_token", "not an object"],
)
def test_a_misbehaving_token_endpoint_is_unavailable_not_a_refusal(host: tuple[CarrierHost, str], reply: Reply) -> None:
    # Given the token endpoint answers something that is not a token and not a refusal
    script, base = host
    script.token_replies = [reply]
    # When the poller fetches, Then DependencyUnavailable — the credentials may well be fine
    with pytest.raises(DependencyUnavailable) as raised:
        client_for(base, ups=UPS).fetch("ups", NUMBER)
    assert not isinstance(raised.value, CredentialsRefused)
    assert "ups token endpoint" in raised.value.detail
    assert script.of("track") == []


def test_a_token_without_a_readable_lifetime_is_still_used(host: tuple[CarrierHost, str]) -> None:
    # Given a token whose expires_in is not a number
    script, base = host
    script.token_replies = [json_reply(200, {"access_token": "odd", "expires_in": "soon"})]
    # When the poller fetches, Then the answer comes, made with that token
    assert client_for(base, ups=UPS).fetch("ups", NUMBER).status == 200
    assert script.of("track")[0].headers["authorization"] == "Bearer odd"


def test_an_unreachable_carrier_is_dependency_unavailable(host: tuple[CarrierHost, str]) -> None:
    # Given DHL's host is a closed port (the scripted host is stopped after this test; take a free one)
    _, base = host
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    client = CarrierClient({"dhl": closed, "ups": closed}, {"dhl": DHL, "ups": UPS})
    # When the poller fetches, Then DependencyUnavailable naming the carrier (not a requests error)
    with pytest.raises(DependencyUnavailable, match="dhl unreachable"):
        client.fetch("dhl", "00340434292135100186")
    with pytest.raises(DependencyUnavailable, match="ups token endpoint unreachable"):
        client.fetch("ups", NUMBER)


def test_missing_credentials_are_known_before_any_request(host: tuple[CarrierHost, str]) -> None:
    # Given UPS credentials without a secret, and no FedEx credentials at all
    script, base = host
    client = client_for(base, ups={"client_id": "only-an-id"})
    # Then neither can be polled, and asking says CredentialsMissing without a request
    assert not client.has_credentials("ups") and not client.has_credentials("fedex")
    assert not client.has_credentials("nosuchcarrier")
    for source in ("ups", "fedex", "nosuchcarrier"):
        with pytest.raises(CredentialsMissing):
            client.fetch(source, NUMBER)
    assert script.seen == []


# ------------------------------------------------------------------------------ rotation


def test_rotation_drops_only_the_changed_sources_tokens(host: tuple[CarrierHost, str]) -> None:
    # Given tokens cached for UPS and FedEx
    script, base = host
    client = client_for(base, ups=UPS, fedex=FEDEX)
    client.fetch("ups", NUMBER)
    client.fetch("fedex", "794611111111")
    # When UPS's secret is rotated (FedEx's unchanged) and DHL's key is added
    changed = client.use_credentials({"ups": {**UPS, "client_secret": "rotated"}, "fedex": dict(FEDEX), "dhl": DHL})
    # Then UPS and DHL changed; UPS asks for a token with the new secret, FedEx keeps its token
    assert changed == {"ups", "dhl"}
    client.fetch("ups", NUMBER)
    client.fetch("fedex", "794611111111")
    token_requests = script.of("token")
    assert len(token_requests) == 3
    assert token_requests[-1].path.startswith("/ups/")
    assert client.has_credentials("dhl")
    # and removing a source's credentials reports it as changed and makes it unpollable
    assert client.use_credentials({"ups": UPS}) == {"ups", "fedex", "dhl"}
    assert not client.has_credentials("fedex")


def test_rotation_against_the_fake_carrier_api() -> None:
    # Given the fake carrier API the local stack uses, and a client with its credentials
    api = FakeCarrierApi(CarrierWorld()).start()
    try:
        client = CarrierClient(api.base_urls(), {k: dict(v) for k, v in FAKE_CREDENTIALS.items()})
        # Then an unknown parcel is UPS's own "not found" (a 200 with a warning), not an error
        assert b"Tracking Information Not Found" in client.fetch("ups", NUMBER).body
        # When UPS's secret is rotated to one UPS does not know, Then the token is refused
        client.use_credentials({**FAKE_CREDENTIALS, "ups": {**FAKE_CREDENTIALS["ups"], "client_secret": "old"}})
        with pytest.raises(CredentialsRefused):
            client.fetch("ups", NUMBER)
        # and a wrong DHL API key is DHL's 401 answer (an API key has no token endpoint to refuse it)
        client.use_credentials({**FAKE_CREDENTIALS, "dhl": {"api_key": "wrong"}})
        assert client.fetch("dhl", "00340434292135100186").status == 401
        # When the right credentials come back, Then both answer again
        client.use_credentials({k: dict(v) for k, v in FAKE_CREDENTIALS.items()})
        assert client.fetch("ups", NUMBER).ok
        assert client.fetch("dhl", "00340434292135100186").status == 404
    finally:
        api.stop()


# ------------------------------------------------------------------------------ worst case


def test_worst_case_of_one_fetch(host: tuple[CarrierHost, str]) -> None:
    # Given a UPS client without a token yet, and DHL (an API key, no token)
    _, base = host
    client = client_for(base, ups=UPS, dhl=DHL)
    one_request = client.worst_case_seconds("dhl")
    # Then one request's worst case covers every try timing out on connect and read
    assert one_request >= (1 + RETRIES) * (CONNECT_TIMEOUT + READ_TIMEOUT)
    # and a UPS fetch may first need a token: two requests
    assert client.worst_case_seconds("ups") == 2 * one_request
    # When a token is cached, Then one request
    client.fetch("ups", NUMBER)
    assert client.worst_case_seconds("ups") == one_request
    # When UPS's credentials rotate, Then a token is needed again
    client.use_credentials({"ups": {**UPS, "client_secret": "rotated"}, "dhl": DHL})
    assert client.worst_case_seconds("ups") == 2 * one_request


# ------------------------------------------------------------------------------ token bucket


def test_sleeping_exactly_the_wait_yields_a_token_despite_float_rounding() -> None:
    # Given a clock far from zero, where (earlier + wait) - earlier is not quite the wait
    now = [123456.789]
    bucket = TokenBucket(rate=3.0, burst=1.0, now=lambda: now[0])
    bucket.take()
    wait = bucket.wait_time()
    assert ((now[0] + wait) - now[0]) * 3.0 < 1  # the rounding this is about
    # When the poller sleeps exactly the wait
    now[0] += wait
    # Then the token is there
    assert bucket.wait_time() == 0.0
    bucket.take()


def test_the_tolerance_never_grants_a_token_early() -> None:
    # Given an empty bucket refilling at 3 per second
    now = [123456.789]
    bucket = TokenBucket(rate=3.0, burst=1.0, now=lambda: now[0])
    bucket.take()
    # When only 99% of the wait has passed, Then there is still no token
    now[0] += bucket.wait_time() * 0.99
    assert bucket.wait_time() > 0
    with pytest.raises(RuntimeError):
        bucket.take()


@settings(max_examples=200, deadline=None)
@given(
    start=st.floats(min_value=0, max_value=1e7),
    rate=st.floats(min_value=0.05, max_value=100),
    burst=st.integers(min_value=1, max_value=10),
    calls=st.integers(min_value=1, max_value=40),
)
def test_a_caller_that_waits_as_told_is_never_refused_and_never_too_fast(
    start: float, rate: float, burst: int, calls: int
) -> None:
    # Given a caller that sleeps exactly wait_time() before each take
    now = [start]
    bucket = TokenBucket(rate=rate, burst=float(burst), now=lambda: now[0])
    times = []
    for _ in range(calls):
        now[0] += bucket.wait_time()
        bucket.take()  # Then it is never refused
        times.append(now[0])
    # and in any window of t seconds there are at most burst + rate·t calls
    for i, first in enumerate(times):
        for j in range(i, len(times)):
            assert j - i + 1 <= burst + rate * (times[j] - first) + 1e-3


def test_a_bucket_needs_a_rate_and_a_burst() -> None:
    for rate, burst in ((0.0, 1.0), (-1.0, 5.0), (1.0, 0.5)):
        with pytest.raises(ValueError, match="positive rate"):
            TokenBucket(rate=rate, burst=burst)


def test_the_scripted_host_records_in_order(host: tuple[CarrierHost, str]) -> None:
    # (the helper above is what the other tests trust: it must see requests in the order made)
    script, base = host
    client = client_for(base, dhl=DHL)
    for number in ("A1", "B2", "C3"):
        client.fetch("dhl", number)
    assert [parse_qs(s.path.partition("?")[2])["trackingNumber"][0] for s in script.of("track")] == ["A1", "B2", "C3"]
    assert all(s.headers["dhl-api-key"] == "dhl-key" for s in script.of("track"))
