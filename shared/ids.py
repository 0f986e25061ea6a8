"""Where new identifiers get their random bits (like ``shared.clock`` for time).

Lambda always draws from the operating system (``secrets``): a public token is then as
unguessable as its length says. The local simulator installs a seeded source with
:func:`use_ids`, because ids are not only names there: a shipment id spreads its poll times
and picks its due-index shard (``shared.logic.polling.cadence``) and orders work in a batch,
so random ids would give two runs of the same seed different outcomes.
"""

from __future__ import annotations

import base64
import random
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol


class IdSource(Protocol):
    def token_bytes(self, size: int) -> bytes:
        """``size`` random bytes."""
        ...


class SystemIds:
    """The operating system's randomness (``secrets``): what production uses."""

    def token_bytes(self, size: int) -> bytes:
        return secrets.token_bytes(size)


class SeededIds:
    """The same bytes, in the same order, for the same seed: for the simulator and tests only
    (anyone who knows the seed can guess every id)."""

    def __init__(self, seed: int | str) -> None:
        self._random = random.Random(f"shiplight-ids:{seed}")  # noqa: S311 - reproducible on purpose
        self._lock = threading.Lock()

    def token_bytes(self, size: int) -> bytes:
        with self._lock:
            return self._random.randbytes(size)


_SYSTEM = SystemIds()
_current: IdSource = _SYSTEM


def token_hex(size: int) -> str:
    """``size`` random bytes from the installed source, as hex."""
    return _current.token_bytes(size).hex()


def token_urlsafe(size: int) -> str:
    """``size`` random bytes from the installed source, URL-safe base64 without padding."""
    return base64.urlsafe_b64encode(_current.token_bytes(size)).rstrip(b"=").decode("ascii")


def current() -> IdSource:
    return _current


def install(source: IdSource | None) -> None:
    """Install ``source`` process-wide (``None`` restores the operating system's randomness)."""
    global _current
    _current = source if source is not None else _SYSTEM


@contextmanager
def use_ids(source: IdSource) -> Iterator[IdSource]:
    """Install ``source`` for the duration of a ``with`` block."""
    previous = _current
    install(source)
    try:
        yield source
    finally:
        install(previous)
