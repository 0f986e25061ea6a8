"""Carriers' tracking APIs, as the poller calls them.

One ``requests`` session per process, with urllib3 ``Retry`` (backoff on 429 and 5xx,
``Retry-After`` honoured, bounded so a poll never outlives the function), timeouts well
under the function's, no redirects followed (a tracking API has no business sending us
elsewhere), and OAuth client-credentials tokens cached until shortly before they expire.
Base URLs are configuration (``CARRIER_API_URLS``), so the local stack and tests point the
poller at the fake carrier API. Credentials come from the ``CarrierCredentials`` secret.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from shared.dal.aws import aws_call, client
from shared.errors import DependencyUnavailable

CONNECT_TIMEOUT = 3.05
READ_TIMEOUT = 10.0
TOKEN_MARGIN_SECONDS = 60

DEFAULT_BASE_URLS = {
    "ups": "https://onlinetools.ups.com",
    "fedex": "https://apis.fedex.com",
    "usps": "https://apis.usps.com",
    "dhl": "https://api-eu.dhl.com",
    "seventeentrack": "https://api.17track.net",
}


class _BoundedRetry(Retry):
    """Honours ``Retry-After`` but never sleeps past a few seconds: a carrier asking for a
    minute gets it from the poller's back-off instead, not from a blocked function."""

    MAX_RETRY_AFTER = 5.0

    def get_retry_after(self, response: Any) -> float | None:
        value = super().get_retry_after(response)
        return None if value is None else min(float(value), self.MAX_RETRY_AFTER)


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


@dataclass(frozen=True)
class CarrierApi:
    source: str
    build: Callable[[str, str | None, dict[str, str]], _Request]
    token_path: str | None = None  # OAuth client-credentials endpoint, when the API needs a token
    basic_auth: bool = False  # client id/secret as HTTP basic auth (UPS) rather than in the form


APIS: dict[str, CarrierApi] = {
    api.source: api
    for api in (
        CarrierApi("ups", _ups, "/security/v1/oauth/token", basic_auth=True),
        CarrierApi("fedex", _fedex, "/oauth/token"),
        CarrierApi("usps", _usps, "/oauth2/v3/token"),
        CarrierApi("dhl", _dhl),
        CarrierApi("seventeentrack", _seventeentrack),
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
            total=2,
            connect=2,
            read=1,
            status=2,
            backoff_factor=0.5,
            backoff_max=4,
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
        return source in APIS and bool(self.credentials.get(source))

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
        except requests.RequestException as error:
            raise DependencyUnavailable(f"{api.source} token endpoint unreachable: {type(error).__name__}") from None
        if response.status_code in (400, 401, 403):
            raise CredentialsRefused(f"{api.source} refused our credentials (HTTP {response.status_code})")
        if response.status_code != 200:
            raise DependencyUnavailable(f"{api.source} token endpoint answered HTTP {response.status_code}")
        document = response.json()
        token = str(document["access_token"])
        lifetime = float(document.get("expires_in", 3600))
        with self._lock:
            self._tokens[api.source] = (token, time.monotonic() + max(lifetime - TOKEN_MARGIN_SECONDS, 0))
        return token

    def fetch(self, source: str, number: str) -> Answer:
        """The carrier's raw answer for one tracking number (retries already spent)."""
        api = APIS.get(source)
        if api is None or not self.has_credentials(source):
            raise CredentialsMissing(f"no credentials are configured for {source}")
        credentials = self.credentials[source]
        for attempt in (1, 2):
            request = api.build(number, self._token(api, refresh=attempt == 2), credentials)
            try:
                response = self.session.request(
                    request.method,
                    self.base_urls[source] + request.path,
                    headers=request.headers,
                    json=request.json,
                    params=request.params,
                    timeout=(CONNECT_TIMEOUT, READ_TIMEOUT),
                    allow_redirects=False,
                )
            except requests.RequestException as error:
                raise DependencyUnavailable(f"{source} unreachable: {type(error).__name__}") from None
            if response.status_code == 401 and api.token_path and attempt == 1:
                continue  # the cached token was revoked early: one fresh token, one more try
            retry_after = response.headers.get("Retry-After")
            return Answer(
                response.status_code,
                response.content,
                float(retry_after) if retry_after and retry_after.isdigit() else None,
            )
        raise DependencyUnavailable(f"{source} keeps refusing a fresh token")


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
