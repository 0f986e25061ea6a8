"""A process-wide implementation of a port, swappable by tests and the local runtime.

Lambda code always uses the default (the system clock, real seconds, the operating system's
randomness); the local runtime and tests install their own for a while. The clock
(``shared.clock``), the wait clock (``shared.clock``) and the id source (``shared.ids``) are
held this way: one mechanism, so each is installed and restored the same way.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

T = TypeVar("T")


class Installed(Generic[T]):
    """The implementation of one port in use in this process."""

    def __init__(self, default: T) -> None:
        self.default = default
        self.current = default

    def install(self, implementation: T | None) -> None:
        """Use ``implementation`` from now on (``None`` restores the default)."""
        self.current = implementation if implementation is not None else self.default

    @contextmanager
    def use(self, implementation: T) -> Iterator[T]:
        """Use ``implementation`` for the duration of a ``with`` block."""
        previous = self.current
        self.install(implementation)
        try:
            yield implementation
        finally:
            self.install(previous)
