"""A fake of the carriers' tracking APIs (UPS, FedEx, USPS, DHL, 17TRACK) for the local stack
and tests.

It answers the same requests the poller makes to the real hosts (`shared/dal/carrier_api.py`),
with each carrier's own response shapes — built by `infra/formats/<source>.py` from the true
scans it was given — and only what is known at the simulated now: a scan shows up once it has
happened and its carrier's reporting latency has passed. Like the real APIs it wants a valid
OAuth token (or API key), answers "not found" in each carrier's own way, and answers 429 when
called faster than its rate limit — counted on the wait clock (``shared.clock.monotonic``), so
in the simulator a limit is so many calls per *simulated* second and a run repeats exactly.
"""

from __future__ import annotations

import importlib
import json
import random
import secrets
import threading
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import ModuleType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from infra.formats.scan import Parcel, TrueScan
from shared import clock
from shared.logic.polling.ratelimit import TokenBucket

POLLED_SOURCES = ("ups", "fedex", "usps", "dhl", "seventeentrack")

# The credentials the fake accepts (the local stack writes them into CarrierCredentials).
FAKE_CREDENTIALS: dict[str, dict[str, str]] = {
    "ups": {"client_id": "fake-ups-client", "client_secret": "fake-ups-secret"},
    "fedex": {"client_id": "fake-fedex-client", "client_secret": "fake-fedex-secret"},
    "usps": {"client_id": "fake-usps-client", "client_secret": "fake-usps-secret"},
    "dhl": {"api_key": "fake-dhl-key"},
    "seventeentrack": {"token": "fake-17track-token"},
}


@dataclass
class _Known:
    parcel: Parcel
    scans: list[TrueScan]
    latency: timedelta  # how long after a scan the carrier's API shows it


@dataclass
class CarrierWorld:
    """What the fake carriers know, shared with whoever drives the simulation."""

    now: Callable[[], datetime] = clock.now
    _parcels: dict[tuple[str, str], _Known] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, parcel: Parcel, scans: list[TrueScan], latency: timedelta = timedelta(0)) -> None:
        """Make a parcel known under each of its legs' tracking numbers (and to 17TRACK)."""
        known = _Known(parcel, sorted(scans, key=lambda s: s.at), latency)
        with self._lock:
            for leg in parcel.legs:
                self._parcels[(leg.carrier, leg.tracking_number)] = known
                self._parcels[("seventeentrack", leg.tracking_number)] = known

    def visible(self, source: str, number: str) -> tuple[Parcel, list[TrueScan]] | None:
        """The parcel and the scans ``source``'s API would show now (its own leg's only)."""
        with self._lock:
            known = self._parcels.get((source, number))
        if known is None:
            return None
        cutoff = self.now() - known.latency
        shown = [s for s in known.scans if s.at <= cutoff]
        if source != "seventeentrack":
            legs = [
                i for i, leg in enumerate(known.parcel.legs) if leg.carrier == source and leg.tracking_number == number
            ]
            shown = [s for s in shown if s.leg in legs]
        return known.parcel, shown


@dataclass
class _Limits:
    rate: float = 20.0
    burst: float = 20.0


class FakeCarrierApi:
    """An HTTP server on loopback; ``base_url(source)`` is what the poller is configured with."""

    def __init__(
        self,
        world: CarrierWorld | None = None,
        *,
        port: int = 0,
        rate_limits: dict[str, tuple[float, float]] | None = None,
        error_rate: float = 0.0,
        seed: int | str = 0,
    ) -> None:
        self.world = world or CarrierWorld()
        self.error_rate = error_rate
        self.requests: dict[str, list[float]] = defaultdict(list)  # source → wait-clock times of track calls
        self.answers: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
        self._tokens: dict[str, str] = {}
        self._credentials = {source: dict(fields) for source, fields in FAKE_CREDENTIALS.items()}
        self._buckets = {  # on the wait clock (TokenBucket's default), like the poller's own
            source: TokenBucket(*(rate_limits or {}).get(source, (_Limits.rate, _Limits.burst)))
            for source in POLLED_SOURCES
        }
        self._lock = threading.Lock()
        self._random = random.Random(f"fake-carriers:{seed}")  # noqa: S311 - which answers fail repeats
        self.server = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self.server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def base_url(self, source: str) -> str:
        return f"{self.url}/{source}"

    def base_urls(self) -> dict[str, str]:
        return {source: self.base_url(source) for source in POLLED_SOURCES}

    def start(self) -> FakeCarrierApi:
        self._thread = threading.Thread(target=self.server.serve_forever, name="fake-carriers", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def rotate_credentials(self, source: str, credentials: dict[str, str]) -> None:
        """The carrier rotates a source's credentials: only the new ones are accepted from now
        on, and the tokens issued under the old ones stop working."""
        with self._lock:
            self._credentials[source] = dict(credentials)
            self._tokens = {token: owner for token, owner in self._tokens.items() if owner != source}

    # -- the carriers' endpoints -----------------------------------------------------------

    def _builder(self, source: str) -> ModuleType:
        return importlib.import_module(f"infra.formats.{source}")

    def _issue_token(self, source: str, form: dict[str, str], basic: str | None) -> tuple[int, dict[str, Any]]:
        with self._lock:
            expected = self._credentials[source]
        if basic is not None:
            import base64

            client_id, _, client_secret = base64.b64decode(basic).decode().partition(":")
        else:
            client_id, client_secret = form.get("client_id", ""), form.get("client_secret", "")
        if (client_id, client_secret) != (expected["client_id"], expected["client_secret"]) or form.get(
            "grant_type"
        ) != "client_credentials":
            return 401, {"error": "invalid_client"}
        token = secrets.token_urlsafe(24)
        with self._lock:
            self._tokens[token] = source
        return 200, {"access_token": token, "token_type": "Bearer", "expires_in": 3599}

    def _authorized(self, source: str, headers: dict[str, str]) -> bool:
        bearer = headers.get("authorization", "")
        with self._lock:
            if source == "dhl":
                return headers.get("dhl-api-key") == self._credentials["dhl"]["api_key"]
            if source == "seventeentrack":
                return headers.get("17token") == self._credentials["seventeentrack"]["token"]
            return bearer.startswith("Bearer ") and self._tokens.get(bearer[7:]) == source

    def _track(self, source: str, number: str) -> tuple[int, bytes]:
        builder = self._builder(source)
        found = self.world.visible(source, number)
        if found is None:
            status, body = builder.not_found(number)
            return int(status), body
        parcel, scans = found
        return 200, builder.poll_response(parcel, scans, now=self.world.now())

    def handle(
        self, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        parts = urlsplit(target)
        source, _, path = parts.path.lstrip("/").partition("/")
        path = "/" + path
        if source not in POLLED_SOURCES:
            return 404, {}, b'{"message":"no such carrier"}'
        form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
        token_paths = {"ups": "/security/v1/oauth/token", "fedex": "/oauth/token", "usps": "/oauth2/v3/token"}
        if method == "POST" and path == token_paths.get(source):
            basic = headers.get("authorization", "")
            status, document = self._issue_token(
                source, form, basic[6:] if source == "ups" and basic.startswith("Basic ") else None
            )
            return status, {"content-type": "application/json"}, json.dumps(document).encode()
        number = self._number(source, method, path, parts.query, body)
        if number is None:
            return 404, {"content-type": "application/json"}, b'{"message":"unknown endpoint"}'
        if not self._authorized(source, headers):
            return 401, {"content-type": "application/json"}, b'{"errors":[{"code":"UNAUTHORIZED"}]}'
        with self._lock:
            self.requests[source].append(clock.monotonic())
            bucket = self._buckets[source]
            limited = bucket.wait_time() > 0
            if not limited:
                bucket.take()
        if limited:
            self.answers[source][429] += 1
            return 429, {"content-type": "application/json", "retry-after": "1"}, b'{"error":"rate limit exceeded"}'
        if self.error_rate and self._random.random() < self.error_rate:
            self.answers[source][503] += 1
            return 503, {"content-type": "application/json"}, b'{"error":"service unavailable"}'
        status, payload = self._track(source, number)
        self.answers[source][status] += 1
        return status, {"content-type": "application/json"}, payload

    @staticmethod
    def _number(source: str, method: str, path: str, query: str, body: bytes) -> str | None:
        if source == "ups" and method == "GET" and path.startswith("/api/track/v1/details/"):
            return path.rsplit("/", 1)[1]
        if source == "usps" and method == "GET" and path.startswith("/tracking/v3/tracking/"):
            return path.rsplit("/", 1)[1]
        if source == "dhl" and method == "GET" and path == "/track/shipments":
            numbers = parse_qs(query).get("trackingNumber")
            return numbers[0] if numbers else None
        if source == "fedex" and method == "POST" and path == "/track/v1/trackingnumbers":
            try:
                return str(json.loads(body)["trackingInfo"][0]["trackingNumberInfo"]["trackingNumber"])
            except (ValueError, KeyError, IndexError, TypeError):
                return None
        if source == "seventeentrack" and method == "POST" and path == "/track/v2.2/gettrackinfo":
            try:
                return str(json.loads(body)[0]["number"])
            except (ValueError, KeyError, IndexError, TypeError):
                return None
        return None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body are two writes (see infra.local.gateway)

            def _serve(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {key.lower(): value for key, value in self.headers.items()}
                status, reply_headers, payload = api.handle(self.command, self.path, headers, body)
                self.send_response(HTTPStatus(status))
                for key, value in reply_headers.items():
                    self.send_header(key, value)
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = _serve

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
                return

        return Handler
