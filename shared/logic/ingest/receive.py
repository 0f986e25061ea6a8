"""Accepting a webhook: verify, archive, enqueue — and nothing else (docs/architecture.md, "A webhook, hop by hop").

The order of checks is the contract: an unknown source is 404, an oversized body 413
before any parsing, a missing or wrong signature 401 (checked on the raw bytes, before
the body is parsed, so an unauthenticated sender learns nothing about parsing), a body
that is not a UTF-8 JSON object 400. Every rejection happens before the first write.
A 202 means the raw body is in the archive and its envelope on the ingest queue.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass

from shared import clock
from shared.dal.ingress import archive_raw, enqueue
from shared.dal.secrets import webhook_secrets
from shared.envelope import build_envelope
from shared.errors import MalformedPayload, PayloadTooLarge
from shared.settings import IngressSettings
from shared.sources import webhook_source


@dataclass(frozen=True)
class Accepted:
    source: str
    message_id: str
    archive_key: str
    content_sha256: str


def request_body(raw: str | None, is_base64: bool, max_bytes: int) -> bytes:
    """The body of an API Gateway request, refusing oversized bodies before decoding them."""
    text = raw or ""
    # A base64 text of n characters decodes to at least 3n/4 - 2 bytes, a text of n characters
    # encodes to at least n bytes: an oversized body is refused before any decoding work.
    smallest_possible = (len(text) * 3) // 4 - 2 if is_base64 else len(text)
    if smallest_possible > max_bytes:
        raise PayloadTooLarge(f"body is larger than {max_bytes} bytes")
    if is_base64:
        try:
            body = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise MalformedPayload("body is not valid base64") from None
    else:
        body = text.encode("utf-8", "surrogatepass")
    if len(body) > max_bytes:
        raise PayloadTooLarge(f"body is larger than {max_bytes} bytes")
    return body


def _require_json_object(body: bytes) -> None:
    try:
        document = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError:
        raise MalformedPayload("body is not UTF-8") from None
    except json.JSONDecodeError as error:
        raise MalformedPayload(f"body is not well-formed JSON (line {error.lineno}, column {error.colno})") from None
    if not isinstance(document, dict):
        raise MalformedPayload("body must be a JSON object")


def receive_webhook(
    *,
    source_name: str,
    headers: Mapping[str, str],
    raw_body: str | None,
    is_base64: bool,
    request_id: str,
    settings: IngressSettings,
) -> Accepted:
    """Verify one delivery and make it durable; raises a ``ServiceError`` to reject it."""
    source = webhook_source(source_name)
    body = request_body(raw_body, is_base64, settings.max_webhook_bytes)
    secrets = webhook_secrets(settings.webhook_secrets_arn, source.name, settings.secrets_cache_seconds)
    received_at = clock.now()
    source.verify(headers, body, secrets, received_at.timestamp())
    _require_json_object(body)
    envelope = build_envelope(
        source=source.name,
        channel="webhook",
        received_at=received_at,
        delivery_id=request_id,
        body=body,
        archive_bucket=settings.raw_archive_bucket,
    )
    archive_raw(envelope, body)
    message_id = enqueue(settings.ingest_queue_url, envelope)
    return Accepted(
        source=source.name,
        message_id=message_id,
        archive_key=envelope.archive_key,
        content_sha256=envelope.content_sha256,
    )
