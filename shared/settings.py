"""Typed settings read from the environment at invocation time, never at import.

Standard-library dataclasses rather than pydantic so the webhook receiver can use them
without paying pydantic's import cost (docs/architecture.md). A required setting that is missing
or malformed raises :class:`SettingsError` naming it on first use; there are no silent
defaults for required values. The cache is keyed by the environment values themselves,
so tests and the local runtime (which switches environments between in-process
invocations) never see stale settings.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Hashable
from functools import lru_cache
from typing import Any, TypeVar, cast, get_type_hints

T = TypeVar("T")


class SettingsError(RuntimeError):
    pass


@dataclasses.dataclass(frozen=True)
class IngressSettings:
    """webhook_receiver (and carrier_poller, which enqueues the same way)."""

    ingest_queue_url: str
    raw_archive_bucket: str
    webhook_secrets_arn: str
    max_webhook_bytes: int = 256 * 1024
    secrets_cache_seconds: int = 300


@dataclasses.dataclass(frozen=True)
class ProcessorSettings:
    """event_processor."""

    shipments_table: str
    event_bus_name: str
    raw_archive_bucket: str
    poll_sources: str = ""  # comma list of sources the poller may call (POLL_SOURCES)


@dataclasses.dataclass(frozen=True)
class PollerSettings:
    """carrier_poller."""

    shipments_table: str
    ingest_queue_url: str
    raw_archive_bucket: str
    carrier_credentials_arn: str
    carrier_api_urls: str = ""  # JSON {"<source>": "<base URL>"}: overrides the carriers' production hosts
    carrier_rate_limits: str = ""  # JSON {"<source>": [requests per second, burst]}


@dataclasses.dataclass(frozen=True)
class SilenceCheckerSettings:
    """silence_checker."""

    shipments_table: str
    event_bus_name: str


@dataclasses.dataclass(frozen=True)
class PublicApiSettings:
    """public_api: reads only the public token index."""

    shipments_table: str


@dataclasses.dataclass(frozen=True)
class MerchantApiSettings:
    """merchant_api: registration, shipment views (and the routes others add)."""

    shipments_table: str
    event_bus_name: str
    poll_sources: str = ""  # comma list, as the processor's: a registration may start polling
    # Where tracking links point: a base URL (``/t/{token}`` is appended) or a template
    # holding ``{token}``; empty: the address the merchant called the API on.
    public_base_url: str = ""


@dataclasses.dataclass(frozen=True)
class AuthorizerSettings:
    """authorizer: reads the ApiKeys table only."""

    api_keys_table: str


def load(settings_type: type[T]) -> T:
    """Build ``settings_type`` from environment variables named after its fields, upper-cased."""
    fields = dataclasses.fields(settings_type)  # type: ignore[arg-type]
    snapshot = tuple(os.environ.get(field.name.upper()) for field in fields)
    settings: T = _load_cached(cast(Hashable, settings_type), snapshot)
    return settings


@lru_cache(maxsize=32)
def _load_cached(settings_type: Any, snapshot: tuple[str | None, ...]) -> Any:
    hints = get_type_hints(settings_type)
    values: dict[str, Any] = {}
    for field, raw in zip(dataclasses.fields(settings_type), snapshot, strict=True):
        name = field.name.upper()
        if raw is None or raw == "":
            if field.default is dataclasses.MISSING:
                raise SettingsError(f"environment variable {name} is required")
            continue
        if hints[field.name] is int:
            try:
                values[field.name] = int(raw)
            except ValueError:
                raise SettingsError(f"environment variable {name} must be an integer, got {raw!r}") from None
        else:
            values[field.name] = raw
    return settings_type(**values)
