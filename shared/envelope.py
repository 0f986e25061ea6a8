"""The message on the ingest queue: one verified payload and where it came from.

Webhooks (``webhook_receiver``) and polls (``carrier_poller``) enqueue the same envelope,
so there is one processing path. The raw payload is always archived in S3 first; the
body also travels inline unless it is too large for a queue message, in which case the
processor reads it back from the archive (claim check). Standard library only.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Literal

from shared.clock import isoformat_z

# Keep a message well inside SQS's size limit whatever the envelope adds.
MAX_INLINE_BODY_BYTES = 192 * 1024
ENVELOPE_VERSION = 1

Channel = Literal["webhook", "poll", "replay"]


class EnvelopeError(ValueError):
    pass


@dataclass(frozen=True)
class IngestEnvelope:
    source: str
    channel: Channel
    received_at: str  # RFC 3339 UTC
    delivery_id: str  # API Gateway request id, poll id or replay id
    content_sha256: str
    archive_bucket: str
    archive_key: str
    body: str | None  # the raw UTF-8 body, or None when it must be read from the archive
    version: int = ENVELOPE_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> IngestEnvelope:
        try:
            data: Any = json.loads(text)
        except json.JSONDecodeError as error:
            raise EnvelopeError(f"ingest message is not JSON: {error.msg}") from None
        if not isinstance(data, dict) or data.get("version") != ENVELOPE_VERSION:
            raise EnvelopeError("ingest message is not a version-1 envelope")
        try:
            return cls(**data)
        except TypeError as error:
            raise EnvelopeError(f"ingest message has the wrong fields: {error}") from None


def archive_key(source: str, received_at: datetime, body: bytes) -> tuple[str, str]:
    """Content-addressed key of a raw payload: a redelivery of the same body on the same
    day overwrites the same object, so retries never multiply the archive."""
    digest = hashlib.sha256(body).hexdigest()
    day = received_at.strftime("%Y/%m/%d")
    return digest, f"raw/{source}/{day}/{digest}.json"


def build_envelope(
    *,
    source: str,
    channel: Channel,
    received_at: datetime,
    delivery_id: str,
    body: bytes,
    archive_bucket: str,
) -> IngestEnvelope:
    digest, key = archive_key(source, received_at, body)
    inline = body.decode("utf-8") if len(body) <= MAX_INLINE_BODY_BYTES else None
    return IngestEnvelope(
        source=source,
        channel=channel,
        received_at=isoformat_z(received_at),
        delivery_id=delivery_id,
        content_sha256=digest,
        archive_bucket=archive_bucket,
        archive_key=key,
        body=inline,
    )
