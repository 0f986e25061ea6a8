"""Small builders for canonical events and ingest messages (instead of inline dicts)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from infra.formats.generic import generic_body, generic_event
from shared.adapters.base import CodeMapping, ResolvedTime, build_event, location
from shared.envelope import build_envelope
from shared.models.canonical import CanonicalEvent, IncidentType, Milestone, TimeSource

T0 = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)


def scan(
    milestone: Milestone | None,
    hours: float,
    *,
    carrier: str = "ups",
    tracking_number: str = "1Z4Y0A190348261953",
    exception: IncidentType | None = None,
    raw_code: str | None = None,
    city: str = "LOUISVILLE",
) -> CanonicalEvent:
    """A canonical event ``hours`` after T0."""
    at = T0 + timedelta(hours=hours)
    return build_event(
        carrier=carrier,
        tracking_number=tracking_number,
        mapping=CodeMapping(milestone=milestone, exception=exception),
        when=ResolvedTime(at, None, TimeSource.CARRIER_OFFSET),
        place=location(city=city, region="KY", country="US"),
        description=f"{milestone.value if milestone else 'note'} at {city}",
        raw_code=raw_code or (milestone.value if milestone else "note"),
        received_at=at + timedelta(minutes=5),
    )


def generic_scans(*scans: tuple[str, float], tracking_number: str = "1Z4Y0A190348261953") -> bytes:
    """A generic webhook body with one UPS scan per ``(code, hours after T0)``."""
    return generic_body(
        [
            generic_event(
                carrier="ups",
                tracking_number=tracking_number,
                code=code,
                occurred_at=T0 + timedelta(hours=hours),
                city="Reno",
                region="NV",
                country="US",
            )
            for code, hours in scans
        ]
    )


def envelope_json(source: str, body: bytes, received_at: datetime = T0, bucket: str = "archive") -> str:
    return build_envelope(
        source=source, channel="webhook", received_at=received_at, delivery_id="req-1", body=body, archive_bucket=bucket
    ).to_json()
