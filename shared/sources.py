"""The one registry of tracking sources.

Adding a source is one entry here, one adapter module and one mapping table; the
receiver, the processor and the CLI all read this table. Standard library only: the
webhook receiver imports it, and adapters are named by module path so that nothing
here imports pydantic.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from shared.errors import NotFound, Unauthorized
from shared.signatures import (
    HmacSignature,
    KeySuffixSha256,
    SignatureScheme,
    StaticToken,
    TimestampedHmacSignature,
)

Ingest = Literal["push", "poll", "both"]
Kind = Literal["aggregator", "carrier", "partner"]

GENERIC_SIGNATURE = TimestampedHmacSignature(header="shiplight-signature", tolerance_seconds=300)
EASYPOST_SIGNATURE = HmacSignature(
    header="x-hmac-signature",
    encoding="hex",
    prefix="hmac-sha256-hex=",
    secret_normalization="NFKD",  # noqa: S106 - a Unicode normal form, not a secret
)
AFTERSHIP_SIGNATURE = HmacSignature(header="aftership-hmac-sha256", encoding="base64")
SHIPPO_SIGNATURE = TimestampedHmacSignature(header="shippo-auth-signature", tolerance_seconds=300)
SEVENTEENTRACK_SIGNATURE = KeySuffixSha256(header="sign")
FEDEX_SIGNATURE = HmacSignature(header="fdx-signature", encoding="base64")
UPS_CREDENTIAL = StaticToken(headers=(("authorization", "Bearer "), ("x-api-key", "")))
DHL_CREDENTIAL = StaticToken(headers=(("shiplight-webhook-token", ""),))


@dataclass(frozen=True)
class Source:
    name: str  # the {carrier} path segment of POST /webhooks/{carrier}
    title: str
    kind: Kind
    ingest: Ingest
    adapter: str  # module path, imported lazily
    signature: SignatureScheme | None  # None: poll only, no webhook route

    @property
    def accepts_webhooks(self) -> bool:
        return self.signature is not None and self.ingest in ("push", "both")

    def verify(self, headers: Mapping[str, str], body: bytes, secrets: Sequence[str], now: float) -> None:
        """Check a delivery's signature (``Unauthorized`` if it fails or none is possible)."""
        if self.signature is None:
            raise Unauthorized(f"source {self.name!r} does not sign webhooks")
        self.signature.verify(headers, body, secrets, now)


SOURCES: dict[str, Source] = {
    source.name: source
    for source in (
        Source(
            "generic",
            "Shiplight generic (warehouses, 3PLs, merchant systems)",
            "partner",
            "push",
            "shared.adapters.generic",
            GENERIC_SIGNATURE,
        ),
        Source("easypost", "EasyPost", "aggregator", "push", "shared.adapters.easypost", EASYPOST_SIGNATURE),
        Source("aftership", "AfterShip", "aggregator", "push", "shared.adapters.aftership", AFTERSHIP_SIGNATURE),
        Source("shippo", "Shippo", "aggregator", "push", "shared.adapters.shippo", SHIPPO_SIGNATURE),
        Source(
            "seventeentrack",
            "17TRACK",
            "aggregator",
            "both",
            "shared.adapters.seventeentrack",
            SEVENTEENTRACK_SIGNATURE,
        ),
        Source("ups", "UPS (Track API, Track Alert)", "carrier", "both", "shared.adapters.ups", UPS_CREDENTIAL),
        Source(
            "fedex",
            "FedEx (Track API, Advanced Integrated Visibility)",
            "carrier",
            "both",
            "shared.adapters.fedex",
            FEDEX_SIGNATURE,
        ),
        # USPS's tracking subscriptions document no verifiable signature: polled only.
        Source("usps", "USPS (Tracking v3)", "carrier", "poll", "shared.adapters.usps", None),
        Source("dhl", "DHL (Shipment Tracking - Unified)", "carrier", "both", "shared.adapters.dhl", DHL_CREDENTIAL),
    )
}


def get_source(name: str) -> Source:
    try:
        return SOURCES[name]
    except KeyError:
        raise NotFound(f"unknown source {name[:40]!r}; see `shiplight carriers`") from None


def webhook_source(name: str) -> Source:
    """The source behind ``POST /webhooks/{name}``: ``NotFound`` unless it accepts pushes."""
    source = get_source(name)
    if not source.accepts_webhooks:
        raise NotFound(f"source {name!r} does not accept webhooks (it is polled)")
    return source
