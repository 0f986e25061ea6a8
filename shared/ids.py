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
from contextlib import AbstractContextManager
from typing import Protocol

from shared.installed import Installed


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


_ids: Installed[IdSource] = Installed(SystemIds())


def token_hex(size: int) -> str:
    """``size`` random bytes from the installed source, as hex."""
    return _ids.current.token_bytes(size).hex()


def token_urlsafe(size: int) -> str:
    """``size`` random bytes from the installed source, URL-safe base64 without padding."""
    return base64.urlsafe_b64encode(_ids.current.token_bytes(size)).rstrip(b"=").decode("ascii")


def current() -> IdSource:
    return _ids.current


def install(source: IdSource | None) -> None:
    """Install ``source`` process-wide (``None`` restores the operating system's randomness)."""
    _ids.install(source)


def use_ids(source: IdSource) -> AbstractContextManager[IdSource]:
    """Install ``source`` for the duration of a ``with`` block."""
    return _ids.use(source)
