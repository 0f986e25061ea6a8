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
from shared.signatures import HmacSignature, SignatureScheme, TimestampedHmacSignature

Ingest = Literal["push", "poll", "both"]
Kind = Literal["aggregator", "carrier", "partner"]

GENERIC_SIGNATURE = TimestampedHmacSignature(header="shiplight-signature", tolerance_seconds=300)
EASYPOST_SIGNATURE = HmacSignature(
    header="x-hmac-signature",
    encoding="hex",
    prefix="hmac-sha256-hex=",
    secret_normalization="NFKD",  # noqa: S106 - a Unicode normal form, not a secret
)


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
            name="generic",
            title="Shiplight generic (warehouses, 3PLs, merchant systems)",
            kind="partner",
            ingest="push",
            adapter="shared.adapters.generic",
            signature=GENERIC_SIGNATURE,
        ),
        Source(
            name="easypost",
            title="EasyPost",
            kind="aggregator",
            ingest="push",
            adapter="shared.adapters.easypost",
            signature=EASYPOST_SIGNATURE,
        ),
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
