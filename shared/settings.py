"""Typed settings read from the environment at invocation time, never at import.

Standard-library named tuples rather than pydantic so the webhook receiver can use them
without paying pydantic's import cost (docs/architecture.md); named tuples rather than frozen
dataclasses because every function imports this module and a frozen dataclass costs several
times more to define (immutable all the same). A required setting that is missing
or malformed raises :class:`SettingsError` naming it on first use; there are no silent
defaults for required values. The cache is keyed by the environment values themselves,
so tests and the local runtime (which switches environments between in-process
invocations) never see stale settings.
"""

from __future__ import annotations

import os
from collections.abc import Hashable
from functools import lru_cache
from typing import Any, NamedTuple, TypeVar, cast, get_type_hints

T = TypeVar("T")


class SettingsError(RuntimeError):
    pass


class IngressSettings(NamedTuple):
    """webhook_receiver (and carrier_poller, which enqueues the same way)."""

    ingest_queue_url: str
    raw_archive_bucket: str
    webhook_secrets_arn: str
    max_webhook_bytes: int = 256 * 1024
    secrets_cache_seconds: int = 300


class ProcessorSettings(NamedTuple):
    """event_processor."""

    shipments_table: str
    event_bus_name: str
    raw_archive_bucket: str
    poll_sources: str = ""  # comma list of sources the poller may call (POLL_SOURCES)


class PollerSettings(NamedTuple):
    """carrier_poller."""

    shipments_table: str
    ingest_queue_url: str
    raw_archive_bucket: str
    carrier_credentials_arn: str
    carrier_api_urls: str = ""  # JSON {"<source>": "<base URL>"}: overrides the carriers' production hosts
    carrier_rate_limits: str = ""  # JSON {"<source>": [requests per second, burst]}


class SilenceCheckerSettings(NamedTuple):
    """silence_checker."""

    shipments_table: str
    event_bus_name: str


class PublicApiSettings(NamedTuple):
    """public_api: reads only the public token index."""

    shipments_table: str


class MerchantApiSettings(NamedTuple):
    """merchant_api: registration, shipment views (and the routes others add)."""

    shipments_table: str
    event_bus_name: str
    poll_sources: str = ""  # comma list, as the processor's: a registration may start polling
    # Where tracking links point: a base URL (``/t/{token}`` is appended) or a template
    # holding ``{token}``; empty: the address the merchant called the API on.
    public_base_url: str = ""


class AuthorizerSettings(NamedTuple):
    """authorizer: reads the ApiKeys table only."""

    api_keys_table: str


def load(settings_type: type[T]) -> T:
    """Build ``settings_type`` from environment variables named after its fields, upper-cased."""
    fields: tuple[str, ...] = getattr(settings_type, "_fields")  # noqa: B009 - a NamedTuple's fields
    snapshot = tuple(os.environ.get(name.upper()) for name in fields)
    settings: T = _load_cached(cast(Hashable, settings_type), snapshot)
    return settings


@lru_cache(maxsize=32)
def _load_cached(settings_type: Any, snapshot: tuple[str | None, ...]) -> Any:
    hints = get_type_hints(settings_type)
    defaults: dict[str, Any] = settings_type._field_defaults
    values: dict[str, Any] = {}
    for field, raw in zip(settings_type._fields, snapshot, strict=True):
        name = field.upper()
        if raw is None or raw == "":
            if field not in defaults:
                raise SettingsError(f"environment variable {name} is required")
            continue
        if hints[field] is int:
            try:
                values[field] = int(raw)
            except ValueError:
                raise SettingsError(f"environment variable {name} must be an integer, got {raw!r}") from None
        else:
            values[field] = raw
    return settings_type(**values)
