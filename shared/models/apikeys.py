"""Merchant API keys: their shape, and what is stored of them (never the key itself).

A key reads ``shl_<key id>_<secret>``: the key id (16 hex digits) names the key in
listings, logs and ``shiplight api-key revoke`` and is not secret; the secret is 256
random bits. The ApiKeys table keeps the SHA-256 of the whole key. A fast hash is enough
here: the key is a random 256-bit string, not a password, so there is nothing to guess
from a stolen digest, and a slow hash (bcrypt, scrypt) would only add latency to every
uncached authorization.

Standard library only: the authorizer's cold start imports this.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

KEY_PREFIX = "shl_"
_KEY = re.compile(r"^shl_(?P<key_id>[0-9a-f]{16})_(?P<secret>[A-Za-z0-9_-]{43})$")
_KEY_ID = re.compile(r"^[0-9a-f]{16}$")
LABEL_MAX = 100


@dataclass(frozen=True)
class ApiKeyRecord:
    """An API key as stored: its id, label, digest and life."""

    key_id: str
    label: str
    key_sha256: str  # hex digest of the whole key
    created_at: str  # RFC 3339 UTC
    revoked_at: str | None = None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    def listing(self) -> dict[str, str | None]:
        """What a listing may show: never the digest."""
        return {
            "key_id": self.key_id,
            "label": self.label,
            "created_at": self.created_at,
            "revoked_at": self.revoked_at,
        }


def parse_api_key(text: str) -> str | None:
    """The key id of a well-formed key, ``None`` otherwise."""
    found = _KEY.fullmatch(text)
    return found.group("key_id") if found else None


def is_key_id(text: str) -> bool:
    return bool(_KEY_ID.fullmatch(text))


def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()
