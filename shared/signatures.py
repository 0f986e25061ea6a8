"""Webhook signature schemes, as each sender documents them.

Standard library only (the webhook receiver imports this). Every comparison is
constant-time (``hmac.compare_digest``); every scheme accepts several active secrets
so a source's secret can be rotated without rejecting a single delivery; every
failure raises :class:`~shared.errors.Unauthorized` with a detail that names the
problem without revealing anything secret. Headers are looked up lower-cased, as
API Gateway HTTP APIs deliver them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from shared.errors import Unauthorized

Encoding = Literal["hex", "base64"]


class SignatureScheme(Protocol):
    """How one source proves a delivery came from it."""

    @property
    def description(self) -> str: ...

    def verify(self, headers: Mapping[str, str], body: bytes, secrets: Sequence[str], now: float) -> None:
        """Return if ``body`` was signed with one of ``secrets``; raise ``Unauthorized`` otherwise."""
        ...


def _digest(secret: bytes, message: bytes, encoding: Encoding) -> str:
    mac = hmac.new(secret, message, hashlib.sha256).digest()
    return mac.hex() if encoding == "hex" else base64.b64encode(mac).decode("ascii")


def _matches(expected: str, presented: str, encoding: Encoding) -> bool:
    # Hex digests compare case-insensitively; base64 is case-sensitive.
    if encoding == "hex":
        expected, presented = expected.lower(), presented.strip().lower()
    return hmac.compare_digest(expected.encode("ascii"), presented.strip().encode("ascii", "replace"))


def _header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name)
    if not value:
        raise Unauthorized(f"missing {name} header")
    return value


def _require_secrets(secrets: Sequence[str]) -> None:
    if not secrets:
        raise Unauthorized("no webhook secret is configured for this source")


@dataclass(frozen=True)
class HmacSignature:
    """HMAC-SHA256 of the raw body in one header, optionally prefixed.

    EasyPost: ``X-Hmac-Signature: hmac-sha256-hex=<hex>`` keyed with the NFKD-normalised
    secret. AfterShip and FedEx use the same shape with base64 digests.
    """

    header: str
    encoding: Encoding = "hex"
    prefix: str = ""
    secret_normalization: Literal["NFKD", "NFC"] | None = None

    @property
    def description(self) -> str:
        norm = f", {self.secret_normalization}-normalised secret" if self.secret_normalization else ""
        return f"HMAC-SHA256 ({self.encoding}) of the raw body in {self.header}{norm}"

    def sign(self, body: bytes, secret: str) -> str:
        """The header value a sender holding ``secret`` would send (for tests and simulators)."""
        return self.prefix + _digest(self._key(secret), body, self.encoding)

    def _key(self, secret: str) -> bytes:
        if self.secret_normalization:
            secret = unicodedata.normalize(self.secret_normalization, secret)
        return secret.encode("utf-8")

    def verify(self, headers: Mapping[str, str], body: bytes, secrets: Sequence[str], now: float) -> None:
        value = _header(headers, self.header)
        _require_secrets(secrets)
        if self.prefix:
            if not value.startswith(self.prefix):
                raise Unauthorized(f"{self.header} must start with {self.prefix!r}")
            value = value[len(self.prefix) :]
        matched = False
        for secret in secrets:
            # No early exit: the work done does not depend on which secret matched.
            matched |= _matches(_digest(self._key(secret), body, self.encoding), value, self.encoding)
        if not matched:
            raise Unauthorized(f"{self.header} does not match the body")


@dataclass(frozen=True)
class TimestampedHmacSignature:
    """``<header>: t=<unix seconds>,v1=<hex>[,v1=<hex>…]`` over ``"{t}." + body``.

    Shiplight's own scheme for the ``generic`` source (the Stripe / Standard Webhooks
    shape): the signed timestamp bounds replays to ``tolerance_seconds`` either way, and
    a sender rotating its secret may send one ``v1`` per secret.
    """

    header: str
    tolerance_seconds: int = 300
    encoding: Encoding = "hex"

    @property
    def description(self) -> str:
        return f"{self.header}: t=<unix>,v1=<HMAC-SHA256 {self.encoding} of '<t>.' + body>, ±{self.tolerance_seconds} s"

    def sign(self, body: bytes, secret: str, timestamp: int) -> str:
        message = f"{timestamp}.".encode() + body
        return f"t={timestamp},v1={_digest(secret.encode('utf-8'), message, self.encoding)}"

    def verify(self, headers: Mapping[str, str], body: bytes, secrets: Sequence[str], now: float) -> None:
        value = _header(headers, self.header)
        _require_secrets(secrets)
        timestamp: str | None = None
        signatures: list[str] = []
        for part in value.split(","):
            key, _, item = part.strip().partition("=")
            if key == "t":
                timestamp = item
            elif key == "v1" and item:
                signatures.append(item)
        if timestamp is None or not timestamp.isdigit() or not signatures:
            raise Unauthorized(f"{self.header} must look like t=<unix seconds>,v1=<signature>")
        if abs(now - int(timestamp)) > self.tolerance_seconds:
            raise Unauthorized(f"{self.header} timestamp is outside the ±{self.tolerance_seconds} s tolerance")
        message = f"{timestamp}.".encode() + body
        matched = False
        for secret in secrets:
            expected = _digest(secret.encode("utf-8"), message, self.encoding)
            for presented in signatures:
                matched |= _matches(expected, presented, self.encoding)
        if not matched:
            raise Unauthorized(f"{self.header} does not match the body")


@dataclass(frozen=True)
class KeySuffixSha256:
    """``<header>: <hex>`` = SHA-256 (a plain hash, not an HMAC) of ``body + "/" + key``.

    17TRACK's push notifications sign this way (header ``sign``).
    """

    header: str

    @property
    def description(self) -> str:
        return f"{self.header}: SHA-256 hex of the raw body + '/' + key (not an HMAC)"

    def sign(self, body: bytes, secret: str) -> str:
        return hashlib.sha256(body + b"/" + secret.encode("utf-8")).hexdigest()

    def verify(self, headers: Mapping[str, str], body: bytes, secrets: Sequence[str], now: float) -> None:
        value = _header(headers, self.header)
        _require_secrets(secrets)
        matched = False
        for secret in secrets:
            matched |= _matches(self.sign(body, secret), value, "hex")
        if not matched:
            raise Unauthorized(f"{self.header} does not match the body")


@dataclass(frozen=True)
class StaticToken:
    """A configured credential sent as is, in one of several headers (no payload signature).

    UPS Track Alert sends ``Authorization: Bearer <token>`` and/or ``x-api-key``; DHL's push
    API sends the token the subscription named, in the header it named. Anyone holding the
    token can post, so these sources rely on TLS and on the processor's idempotency.
    """

    headers: tuple[tuple[str, str], ...]  # (header, prefix before the token)

    @property
    def description(self) -> str:
        forms = " or ".join(f"{header}: {prefix}<token>" for header, prefix in self.headers)
        return f"static credential ({forms}) compared with the configured tokens"

    def verify(self, headers: Mapping[str, str], body: bytes, secrets: Sequence[str], now: float) -> None:
        presented = [
            (value[len(prefix) :] if value.lower().startswith(prefix.lower()) else None)
            for header, prefix in self.headers
            if (value := headers.get(header))
        ]
        if not presented:
            raise Unauthorized("missing " + " or ".join(header for header, _ in self.headers) + " header")
        _require_secrets(secrets)
        matched = False
        for token in presented:
            for secret in secrets:
                matched |= token is not None and hmac.compare_digest(
                    token.strip().encode("utf-8", "replace"), secret.encode("utf-8")
                )
        if not matched:
            raise Unauthorized("the webhook credential is not one of the configured tokens")
