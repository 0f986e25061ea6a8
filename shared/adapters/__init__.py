"""Source adapters: one small module plus one mapping table (data) per source.

An adapter module exposes ``normalize(body: bytes, *, received_at: datetime) ->
NormalizeResult`` and nothing else the processor needs. Adapters are registered in one
place, ``shared.sources``, and imported lazily by name, so a function pays only for the
sources it meets and adding a source never touches the processor.
"""

from __future__ import annotations

import importlib
from typing import Protocol, cast

from shared.adapters.base import NormalizeResult
from shared.sources import get_source


class Adapter(Protocol):
    def normalize(self, body: bytes, *, received_at: object) -> NormalizeResult: ...


def load_adapter(source: str) -> Adapter:
    """The adapter module of a registered source (``NotFound`` for an unknown one)."""
    module = importlib.import_module(get_source(source).adapter)
    return cast(Adapter, module)
