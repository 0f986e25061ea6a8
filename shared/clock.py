"""The one clock every part of Shiplight reads (DESIGN §4.4).

Lambda code uses the system clock. Tests and the local runtime install their own
(a frozen or an accelerated clock) with :func:`use_clock`, so weeks of carrier time
can run in seconds. Nothing calls ``datetime.now()`` directly.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current instant, timezone-aware UTC."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class FrozenClock:
    """A clock that moves only when told to (tests)."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("FrozenClock needs a timezone-aware start")
        self._now = start.astimezone(UTC)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, delta: timedelta) -> datetime:
        with self._lock:
            self._now += delta
            return self._now

    def set(self, instant: datetime) -> None:
        with self._lock:
            self._now = instant.astimezone(UTC)


class AcceleratedClock:
    """Simulated time that runs ``speed`` times faster than the wall clock.

    The local runtime owns one of these; ``jump`` moves simulated time forward at once
    (the simulator uses it to skip quiet nights).
    """

    def __init__(self, start: datetime, speed: float = 1.0) -> None:
        if start.tzinfo is None:
            raise ValueError("AcceleratedClock needs a timezone-aware start")
        if speed <= 0:
            raise ValueError("speed must be positive")
        self._origin = start.astimezone(UTC)
        self._wall_origin = time.monotonic()
        self._speed = speed
        self._lock = threading.Lock()

    @property
    def speed(self) -> float:
        return self._speed

    def now(self) -> datetime:
        with self._lock:
            elapsed = (time.monotonic() - self._wall_origin) * self._speed
            return self._origin + timedelta(seconds=elapsed)

    def jump(self, delta: timedelta) -> datetime:
        with self._lock:
            self._origin += delta
            elapsed = (time.monotonic() - self._wall_origin) * self._speed
            return self._origin + timedelta(seconds=elapsed)


_SYSTEM = SystemClock()
_current: Clock = _SYSTEM


def now() -> datetime:
    """The current instant (UTC) from the installed clock."""
    return _current.now()


def current() -> Clock:
    return _current


def install(clock: Clock | None) -> None:
    """Install ``clock`` process-wide (``None`` restores the system clock)."""
    global _current
    _current = clock if clock is not None else _SYSTEM


@contextmanager
def use_clock(clock: Clock) -> Iterator[Clock]:
    """Install ``clock`` for the duration of a ``with`` block."""
    previous = _current
    install(clock)
    try:
        yield clock
    finally:
        install(previous)


def isoformat_z(instant: datetime) -> str:
    """RFC 3339 UTC with a ``Z`` suffix, seconds precision unless sub-second is present."""
    utc = instant.astimezone(UTC)
    text = utc.isoformat(timespec="microseconds" if utc.microsecond else "seconds")
    return text.replace("+00:00", "Z")


def parse_instant(text: str) -> datetime:
    """The instant an RFC 3339 text names (``Z`` or an offset), as timezone-aware UTC.

    The one parser for instants Shiplight wrote itself (records, envelopes, index keys);
    ``ValueError`` for anything else, including a text without an offset.
    """
    parsed = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
    if parsed.tzinfo is None:
        raise ValueError(f"an instant needs an offset or Z: {text!r}")
    return parsed.astimezone(UTC)
