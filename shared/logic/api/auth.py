"""Merchant authentication: API keys, the Lambda authorizer's verdict, and its enforcement.

What a deployed HTTP API answers (and the local gateway does the same):

==============================================  ======  ==========================================
request                                         status  answered by
==============================================  ======  ==========================================
no ``Authorization`` header (or an empty one)   401     API Gateway itself, ``{"message":
                                                        "Unauthorized"}``; the authorizer is not
                                                        invoked (an identity source is missing)
a header that is not ``Bearer <a Shiplight      401     the merchant function, ``{"error":
key>``, an unknown key, a wrong secret                  "unauthorized", ...}`` + WWW-Authenticate
a revoked key                                   403     the merchant function, ``{"error":
                                                        "forbidden", ...}``
the authorizer fails                            500     API Gateway, ``{"message":"Internal
                                                        Server Error"}``
==============================================  ======  ==========================================

An HTTP API authorizer with simple responses can only say allow (the route runs) or deny
(API Gateway answers 403), so a wrong key could never be a 401. The authorizer therefore
*authenticates* — it returns ``isAuthorized: true`` with a verdict in its context
(``valid``, ``unknown``, ``malformed``, ``revoked``) and the key id — and the merchant
functions *enforce*: one middleware (``shared.logic.api.merchant.new_merchant_resolver``)
refuses every request whose verdict is not ``valid`` before any route runs, and fails
closed when the context is missing. A test holds every route attached to the authorizer
to this. API Gateway caches the verdict per ``Authorization`` value for the authorizer's
TTL (300 s), so a revocation takes effect within five minutes.

Standard library and botocore only: this is the authorizer's whole import path.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from shared.clock import isoformat_z
from shared.errors import Conflict, Forbidden, InvalidInput, NotFound, Unauthorized
from shared.models.apikeys import KEY_PREFIX, LABEL_MAX, ApiKeyRecord, is_key_id, key_digest, parse_api_key
from shared.text import has_control_characters

VALID = "valid"
UNKNOWN = "unknown"  # well-formed, but no such key or a wrong secret
MALFORMED = "malformed"  # not "Bearer <a Shiplight key>"
REVOKED = "revoked"

# Compared against when the key id is unknown, so both refusals take the same path.
_NO_DIGEST = key_digest("shl_0000000000000000_" + "0" * 43)
CREATE_ATTEMPTS = 3


class ApiKeyStore(Protocol):
    def get(self, key_id: str) -> ApiKeyRecord | None: ...
    def create(self, record: ApiKeyRecord) -> None: ...
    def revoke(self, key_id: str, at: str) -> bool: ...
    def all(self) -> list[ApiKeyRecord]: ...


@dataclass(frozen=True)
class Verdict:
    outcome: str
    key_id: str | None = None

    def context(self) -> dict[str, str]:
        """The authorizer's context (reaches the route as ``requestContext.authorizer.lambda``)."""
        found = {"verdict": self.outcome}
        if self.key_id:
            found["key_id"] = self.key_id
        return found


def bearer_key(authorization: str | None) -> str | None:
    """The credentials of an ``Authorization: Bearer <key>`` header (RFC 6750 §2.1)."""
    if not authorization:
        return None
    scheme, _, credentials = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    credentials = credentials.strip()
    return credentials or None


def authenticate(authorization: str | None, store: ApiKeyStore) -> Verdict:
    """Who is calling: the verdict on an ``Authorization`` header value."""
    key = bearer_key(authorization)
    key_id = parse_api_key(key) if key else None
    if key is None or key_id is None:
        return Verdict(MALFORMED)
    record = store.get(key_id)
    expected = record.key_sha256 if record is not None else _NO_DIGEST
    # Constant time: how much of the digest matched must not show in the answer's timing.
    matches = hmac.compare_digest(expected.encode("ascii"), key_digest(key).encode("ascii"))
    if record is None or not matches:
        return Verdict(UNKNOWN, key_id)
    if record.revoked:
        return Verdict(REVOKED, key_id)
    return Verdict(VALID, key_id)


def authorizer_response(verdict: Verdict) -> dict[str, Any]:
    """The simple response (payload format 2.0) that lets the verdict reach the route."""
    return {"isAuthorized": True, "context": verdict.context()}


def identity_source(event: dict[str, Any]) -> str | None:
    """The ``Authorization`` value of an authorizer event (its identity source)."""
    sources = event.get("identitySource") or []
    if sources:
        return str(sources[0])
    headers = event.get("headers") or {}
    value = headers.get("authorization")
    return str(value) if value is not None else None


def require_merchant(event: dict[str, Any]) -> str:
    """The key id of a request the authorizer found valid; ``Unauthorized`` or ``Forbidden``
    otherwise (also when no verdict reached the function: fail closed)."""
    authorizer = (event.get("requestContext") or {}).get("authorizer") or {}
    context = authorizer.get("lambda") or {}
    outcome = context.get("verdict")
    if outcome == VALID and context.get("key_id"):
        return str(context["key_id"])
    if outcome == REVOKED:
        raise Forbidden("this API key was revoked")
    raise Unauthorized("an API key is required: Authorization: Bearer <key> (create one with shiplight api-key create)")


# ------------------------------------------------------------------------------ keys


def _label(label: str | None) -> str:
    text = (label or "").strip()
    if len(text) > LABEL_MAX or has_control_characters(text):
        raise InvalidInput(f"label: at most {LABEL_MAX} printable characters")
    return text


def create_api_key(store: ApiKeyStore, *, label: str | None, now: datetime) -> tuple[ApiKeyRecord, str]:
    """A new key: its stored record and the key itself (shown once, never stored)."""
    text = _label(label)
    for _ in range(CREATE_ATTEMPTS):
        key_id = secrets.token_hex(8)
        key = f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
        record = ApiKeyRecord(key_id=key_id, label=text, key_sha256=key_digest(key), created_at=isoformat_z(now))
        try:
            store.create(record)
        except Conflict:
            continue
        return record, key
    raise Conflict("could not draw an unused key id")


def revoke_api_key(store: ApiKeyStore, key_id: str, *, now: datetime) -> ApiKeyRecord:
    """Revoke a key (idempotent: a second revocation keeps the first time)."""
    if not is_key_id(key_id) or not store.revoke(key_id, isoformat_z(now)):
        raise NotFound(f"no API key with id {key_id!r}" if is_key_id(key_id) else "no API key with this id")
    record = store.get(key_id)
    if record is None:
        raise NotFound(f"no API key with id {key_id!r}")
    return record
