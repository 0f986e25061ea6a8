"""The one clock every part of Shiplight reads (docs/architecture.md).

Lambda code uses the system clock. Tests and the local runtime install their own
(a frozen or an accelerated clock) with :func:`use_clock`, so weeks of carrier time
can run in seconds. Nothing calls ``datetime.now()`` directly.

A run also measures and spends time of its own: a token bucket refills, a poller waits for
it, a function watches how long it has left. That is the *wait clock* (:func:`monotonic`,
:func:`sleep`): real seconds in Lambda and ``shiplight serve``; the simulator installs one on
its frozen clock with :func:`use_wait_clock`, so a wait moves simulated time on by exactly the
wait and the same seed gives the same run, however fast the machine is.
"""

from __future__ import annotations

import math
import threading
import time
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from typing import Protocol

from shared.installed import Installed


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


_clock: Installed[Clock] = Installed(SystemClock())


def now() -> datetime:
    """The current instant (UTC) from the installed clock."""
    return _clock.current.now()


def current() -> Clock:
    return _clock.current


def install(clock: Clock | None) -> None:
    """Install ``clock`` process-wide (``None`` restores the system clock)."""
    _clock.install(clock)


def use_clock(clock: Clock) -> AbstractContextManager[Clock]:
    """Install ``clock`` for the duration of a ``with`` block."""
    return _clock.use(clock)


def isoformat_z(instant: datetime) -> str:
    """RFC 3339 UTC with a ``Z`` suffix, seconds precision unless sub-second is present."""
    utc = instant.astimezone(UTC)
    text = utc.isoformat(timespec="microseconds" if utc.microsecond else "seconds")
    return text.replace("+00:00", "Z")


class WaitClock(Protocol):
    """The seconds a run measures and waits: a monotonic reading and a sleep."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (only differences mean anything)."""
        ...

    def sleep(self, seconds: float) -> None:
        """Let ``seconds`` pass."""
        ...


class SystemWaitClock:
    """Real seconds: what Lambda and ``shiplight serve`` use."""

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


class FrozenWaitClock:
    """Waits on a :class:`FrozenClock`: sleeping advances it (to the next whole microsecond, so a
    token bucket waited for is full, not a rounding short) and the reading is the clock's
    seconds since this wait clock was made. Nothing else moves it, so a run takes the same
    simulated time on any machine."""

    def __init__(self, frozen: FrozenClock) -> None:
        self._clock = frozen
        self._origin = frozen.now()

    def monotonic(self) -> float:
        return (self._clock.now() - self._origin).total_seconds()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self._clock.advance(timedelta(microseconds=math.ceil(seconds * 1_000_000)))


_waits: Installed[WaitClock] = Installed(SystemWaitClock())


def monotonic() -> float:
    """A monotonic reading in seconds from the installed wait clock."""
    return _waits.current.monotonic()


def sleep(seconds: float) -> None:
    """Wait ``seconds`` on the installed wait clock."""
    _waits.current.sleep(seconds)


def current_wait_clock() -> WaitClock:
    return _waits.current


def install_wait_clock(waits: WaitClock | None) -> None:
    """Install ``waits`` process-wide (``None`` restores real seconds)."""
    _waits.install(waits)


def use_wait_clock(waits: WaitClock) -> AbstractContextManager[WaitClock]:
    """Install ``waits`` for the duration of a ``with`` block."""
    return _waits.use(waits)


def parse_instant(text: str) -> datetime:
    """The instant an RFC 3339 text names (``Z`` or an offset), as timezone-aware UTC.

    The one parser for instants Shiplight wrote itself (records, envelopes, index keys);
    ``ValueError`` for anything else, including a text without an offset.
    """
    parsed = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
    if parsed.tzinfo is None:
        raise ValueError(f"an instant needs an offset or Z: {text!r}")
    return parsed.astimezone(UTC)
