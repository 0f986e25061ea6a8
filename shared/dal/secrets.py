"""Webhook secrets from Secrets Manager, cached across invocations.

The secret is one JSON object ``{"<source>": ["secret", ...]}`` (a single string is
accepted for one secret). Several secrets per source are all valid at once, which is
how a source's secret rotates without rejecting a delivery. The value is cached for
``ttl_seconds`` (on the monotonic clock) so a warm function calls Secrets Manager at
most once per TTL, and a rotation is picked up within one TTL. Secrets never reach
environment variables or logs.
"""

from __future__ import annotations

import json
import threading
import time

from shared.dal.aws import aws_call, client
from shared.errors import DependencyUnavailable

_lock = threading.Lock()
_cache: dict[str, tuple[float, dict[str, tuple[str, ...]]]] = {}


def parse_secret_document(text: str) -> dict[str, tuple[str, ...]]:
    try:
        document = json.loads(text)
    except json.JSONDecodeError:
        raise DependencyUnavailable("webhook secrets document is not JSON") from None
    if not isinstance(document, dict):
        raise DependencyUnavailable("webhook secrets document must be a JSON object")
    secrets: dict[str, tuple[str, ...]] = {}
    for source, value in document.items():
        values = [value] if isinstance(value, str) else value
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise DependencyUnavailable(f"webhook secrets for {source!r} must be a string or a list of strings")
        secrets[source] = tuple(v for v in values if v)
    return secrets


def webhook_secrets(secret_id: str, source: str, ttl_seconds: int) -> tuple[str, ...]:
    """The active secrets of ``source`` (empty when none is configured)."""
    now = time.monotonic()
    with _lock:
        cached = _cache.get(secret_id)
    if cached is None or now - cached[0] > ttl_seconds:
        with aws_call("read webhook secrets"):
            response = client("secretsmanager").get_secret_value(SecretId=secret_id)
        document = parse_secret_document(response.get("SecretString") or "{}")
        cached = (now, document)
        with _lock:
            _cache[secret_id] = cached
    return cached[1].get(source, ())


def forget_cached_secrets() -> None:
    with _lock:
        _cache.clear()
