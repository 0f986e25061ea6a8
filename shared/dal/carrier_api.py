"""Carriers' tracking APIs, as the poller calls them.

One ``requests`` session per process, with urllib3 ``Retry`` (backoff on 429 and 5xx,
``Retry-After`` honoured up to a few seconds — a longer one is handed back to the poller,
which rests the carrier), timeouts well under the function's, no redirects followed (a
tracking API has no business sending us elsewhere), and OAuth client-credentials tokens
cached until shortly before they expire. ``worst_case_seconds`` says how long one fetch can
take, so the poller starts none it could not finish. Base URLs are configuration
(``CARRIER_API_URLS``), so the local stack and tests point the poller at the fake carrier
API. Credentials come from the ``CarrierCredentials`` secret; whatever is wrong with them or
with a carrier's answer surfaces as ``CredentialsMissing``, ``CredentialsRefused`` or
``DependencyUnavailable``, never as another exception that would end the run for every carrier.
"""

from __future__ import annotations

import email.utils
import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import requests
import urllib3.exceptions
from requests.adapters import HTTPAdapter
from urllib3.connectionpool import ConnectionPool
from urllib3.response import BaseHTTPResponse
from urllib3.util.retry import Retry

from shared.dal.aws import aws_call, client
from shared.errors import DependencyUnavailable

CONNECT_TIMEOUT = 3.05
READ_TIMEOUT = 10.0
RETRIES = 2  # after the first try of a request
BACKOFF_MAX = 4.0
TOKEN_MARGIN_SECONDS = 60

DEFAULT_BASE_URLS = {
    "ups": "https://onlinetools.ups.com",
    "fedex": "https://apis.fedex.com",
    "usps": "https://apis.usps.com",
    "dhl": "https://api-eu.dhl.com",
    "seventeentrack": "https://api.17track.net",
}


def retry_after_seconds(value: str | None) -> float | None:
    """A ``Retry-After`` header in seconds from now (delay-seconds or an HTTP date); ``None``
    when absent or unreadable (a carrier's malformed header is no reason to fail the request)."""
    if not value or not value.strip():
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        at = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return max(at.timestamp() - time.time(), 0.0) if at.tzinfo else None


class _BoundedRetry(Retry):
    """Honours ``Retry-After`` but never sleeps past a few seconds: a carrier asking for a
    minute gets its answer back at once (the poller rests it), not a blocked function and
    not two more requests it asked us not to send."""

    MAX_RETRY_AFTER = 5.0

    def get_retry_after(self, response: BaseHTTPResponse) -> float | None:
        value = retry_after_seconds(response.headers.get("Retry-After"))
        return None if value is None else min(value, self.MAX_RETRY_AFTER)

    def increment(
        self,
        method: str | None = None,
        url: str | None = None,
        response: BaseHTTPResponse | None = None,
        error: Exception | None = None,
        _pool: ConnectionPool | None = None,
        _stacktrace: TracebackType | None = None,
    ) -> Self:
        if (
            response is not None
            and self.respect_retry_after_header
            and response.status in self.RETRY_AFTER_STATUS_CODES
        ):
            wait = retry_after_seconds(response.headers.get("Retry-After"))
            if wait is not None and wait > self.MAX_RETRY_AFTER:
                # "Retries exhausted": with raise_on_status off, urllib3 returns this response.
                reason = urllib3.exceptions.ResponseError(f"Retry-After {wait:.0f} s")
                raise urllib3.exceptions.MaxRetryError(_pool, url, reason)  # type: ignore[arg-type]
        return super().increment(method, url, response, error, _pool, _stacktrace)


def _request_worst_case_seconds() -> float:
    """The longest one request can take: every try connecting and reading up to its timeouts,
    with the longest pause between tries (a capped ``Retry-After`` or the capped backoff)."""
    tries = RETRIES + 1
    return tries * (CONNECT_TIMEOUT + READ_TIMEOUT) + RETRIES * max(_BoundedRetry.MAX_RETRY_AFTER, BACKOFF_MAX)


@dataclass(frozen=True)
class Answer:
    """A carrier's answer to one tracking request."""

    status: int
    body: bytes
    retry_after: float | None = None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


class CredentialsMissing(DependencyUnavailable):
    """No credentials are configured for a source: it cannot be polled."""


class CredentialsRefused(DependencyUnavailable):
    """The carrier's token endpoint refused the configured credentials."""


@dataclass(frozen=True)
class _Request:
    method: str
    path: str
    headers: dict[str, str]
    json: Any = None
    params: dict[str, str] | None = None


def _ups(number: str, token: str | None, credentials: dict[str, str]) -> _Request:
    return _Request(
        "GET",
        f"/api/track/v1/details/{number}",
        {"Authorization": f"Bearer {token}", "transId": uuid.uuid4().hex[:32], "transactionSrc": "shiplight"},
        params={"locale": "en_US", "returnSignature": "false"},
    )


def _fedex(number: str, token: str | None, credentials: dict[str, str]) -> _Request:
    return _Request(
        "POST",
        "/track/v1/trackingnumbers",
        {"Authorization": f"Bearer {token}", "X-locale": "en_US"},
        json={"includeDetailedScans": True, "trackingInfo": [{"trackingNumberInfo": {"trackingNumber": number}}]},
    )


def _usps(number: str, token: str | None, credentials: dict[str, str]) -> _Request:
    return _Request(
        "GET", f"/tracking/v3/tracking/{number}", {"Authorization": f"Bearer {token}"}, params={"expand": "DETAIL"}
    )


def _dhl(number: str, token: str | None, credentials: dict[str, str]) -> _Request:
    return _Request(
        "GET", "/track/shipments", {"DHL-API-Key": credentials["api_key"]}, params={"trackingNumber": number}
    )


def _seventeentrack(number: str, token: str | None, credentials: dict[str, str]) -> _Request:
    return _Request("POST", "/track/v2.2/gettrackinfo", {"17token": credentials["token"]}, json=[{"number": number}])


_OAUTH = ("client_id", "client_secret")


@dataclass(frozen=True)
class CarrierApi:
    source: str
    build: Callable[[str, str | None, dict[str, str]], _Request]
    required: tuple[str, ...]  # the credential fields the API cannot be called without
    token_path: str | None = None  # OAuth client-credentials endpoint, when the API needs a token
    basic_auth: bool = False  # client id/secret as HTTP basic auth (UPS) rather than in the form


APIS: dict[str, CarrierApi] = {
    api.source: api
    for api in (
        CarrierApi("ups", _ups, _OAUTH, "/security/v1/oauth/token", basic_auth=True),
        CarrierApi("fedex", _fedex, _OAUTH, "/oauth/token"),
        CarrierApi("usps", _usps, _OAUTH, "/oauth2/v3/token"),
        CarrierApi("dhl", _dhl, ("api_key",)),
        CarrierApi("seventeentrack", _seventeentrack, ("token",)),
    )
}


class CarrierClient:
    """Fetches tracking answers from the carriers' APIs (one instance per process)."""

    def __init__(self, base_urls: dict[str, str], credentials: dict[str, dict[str, str]]) -> None:
        self.base_urls = {**DEFAULT_BASE_URLS, **base_urls}
        self.credentials = credentials
        self._tokens: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()
        retry = _BoundedRetry(
            total=RETRIES,
            connect=RETRIES,
            read=1,
            status=RETRIES,
            backoff_factor=0.5,
            backoff_max=BACKOFF_MAX,
            status_forcelist=(429, 500, 502, 503, 504),
            allowed_methods=frozenset({"GET", "POST"}),
            respect_retry_after_header=True,
            raise_on_status=False,
        )
        self.session = requests.Session()
        adapter = HTTPAdapter(max_retries=retry, pool_maxsize=8)
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)

    def has_credentials(self, source: str) -> bool:
        """Whether the source's API is known and every credential field it needs is set."""
        api = APIS.get(source)
        configured = self.credentials.get(source) or {}
        return api is not None and all(configured.get(name) for name in api.required)

    def use_credentials(self, credentials: dict[str, dict[str, str]]) -> set[str]:
        """Replace the credentials (a rotation); returns the sources whose credentials changed,
        whose cached tokens are dropped so the next fetch asks for one with the new ones."""
        with self._lock:
            changed = {
                s for s in credentials.keys() | self.credentials.keys() if credentials.get(s) != self.credentials.get(s)
            }
            self.credentials = credentials
            for source in changed:
                self._tokens.pop(source, None)
        return changed

    def worst_case_seconds(self, source: str) -> float:
        """The longest the next ``fetch`` for ``source`` can take when the carrier stops answering:
        one request, and one more when an OAuth token has to be fetched first. (A token the
        carrier revokes early costs two more requests, but only after it answered promptly.)"""
        api = APIS.get(source)
        requests_needed = 1
        if api is not None and api.token_path is not None:
            with self._lock:
                cached = self._tokens.get(source)
            if cached is None or cached[1] <= time.monotonic():
                requests_needed += 1
        return requests_needed * _request_worst_case_seconds()

    def _token(self, api: CarrierApi, refresh: bool = False) -> str | None:
        if api.token_path is None:
            return None
        with self._lock:
            cached = self._tokens.get(api.source)
            if cached and not refresh and cached[1] > time.monotonic():
                return cached[0]
        credentials = self.credentials.get(api.source) or {}
        form = {"grant_type": "client_credentials"}
        auth: tuple[str, str] | None = None
        if api.basic_auth:
            auth = (credentials.get("client_id", ""), credentials.get("client_secret", ""))
        else:
            form |= {
                "client_id": credentials.get("client_id", ""),
                "client_secret": credentials.get("client_secret", ""),
            }
        try:
            response = self.session.post(
                self.base_urls[api.source] + api.token_path,
                data=form,
                auth=auth,
                timeout=(CONNECT_TIMEOUT, READ_TIMEOUT),
                allow_redirects=False,
            )
        except (requests.RequestException, urllib3.exceptions.HTTPError) as error:
            raise DependencyUnavailable(f"{api.source} token endpoint unreachable: {type(error).__name__}") from None
        if response.status_code in (400, 401, 403):
            raise CredentialsRefused(f"{api.source} refused our credentials (HTTP {response.status_code})")
        if response.status_code != 200:
            raise DependencyUnavailable(f"{api.source} token endpoint answered HTTP {response.status_code}")
        token, lifetime = _read_token(api.source, response.content)
        with self._lock:
            self._tokens[api.source] = (token, time.monotonic() + max(lifetime - TOKEN_MARGIN_SECONDS, 0))
        return token

    def fetch(self, source: str, number: str) -> Answer:
        """The carrier's raw answer for one tracking number (retries already spent)."""
        api = APIS.get(source)
        if api is None or not self.has_credentials(source):
            raise CredentialsMissing(f"no usable credentials are configured for {source}")
        answer = self._ask(api, number, fresh_token=False)
        if answer.status == 401 and api.token_path:
            # The cached token was revoked early: one fresh token, one more try.
            answer = self._ask(api, number, fresh_token=True)
        return answer

    def _ask(self, api: CarrierApi, number: str, *, fresh_token: bool) -> Answer:
        request = api.build(number, self._token(api, refresh=fresh_token), self.credentials[api.source])
        try:
            response = self.session.request(
                request.method,
                self.base_urls[api.source] + request.path,
                headers=request.headers,
                json=request.json,
                params=request.params,
                timeout=(CONNECT_TIMEOUT, READ_TIMEOUT),
                allow_redirects=False,
            )
        except (requests.RequestException, urllib3.exceptions.HTTPError) as error:
            raise DependencyUnavailable(f"{api.source} unreachable: {type(error).__name__}") from None
        return Answer(response.status_code, response.content, retry_after_seconds(response.headers.get("Retry-After")))


def _read_token(source: str, content: bytes) -> tuple[str, float]:
    """The access token and its lifetime (seconds) from a token endpoint's 200 answer. An answer
    without one is the endpoint misbehaving (a proxy's page, an outage), not a refusal."""
    try:
        document = json.loads(content)
    except ValueError:
        raise DependencyUnavailable(f"{source} token endpoint answered 200 without JSON") from None
    token = document.get("access_token") if isinstance(document, dict) else None
    if not isinstance(token, str) or not token:
        raise DependencyUnavailable(f"{source} token endpoint answered 200 without an access_token")
    try:
        lifetime = float(document.get("expires_in", 3600))
    except (TypeError, ValueError):
        lifetime = 3600.0  # a token we cannot date is still a token; a 401 replaces it early
    return token, lifetime


def carrier_credentials(secret_id: str) -> dict[str, dict[str, str]]:
    """The ``CarrierCredentials`` secret: ``{"<source>": {"client_id": …, "client_secret": …}}``."""
    with aws_call("read carrier credentials"):
        response = client("secretsmanager").get_secret_value(SecretId=secret_id)
    try:
        document = json.loads(response.get("SecretString") or "{}")
    except json.JSONDecodeError:
        raise DependencyUnavailable("carrier credentials document is not JSON") from None
    if not isinstance(document, dict):
        raise DependencyUnavailable("carrier credentials document must be a JSON object")
    return {str(k): {str(a): str(b) for a, b in v.items()} for k, v in document.items() if isinstance(v, dict)}
