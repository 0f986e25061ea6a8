"""Merchant policy: silence thresholds, playbooks, refund rules (docs/incidents.md).

Each policy is a TOML file beside this module holding the documented defaults. A deployment
overrides any part of them with the ``SHIPLIGHT_POLICY`` environment variable (the template's
``PolicyOverrides`` parameter): a JSON object ``{"<policy>": {...}}`` merged key by key over the
defaults, so an override names only what it changes. ``policy("refunds")`` returns the merged
document; a malformed override is a configuration error that names the variable, raised on first
use rather than silently ignored.
"""

from __future__ import annotations

import json
import os
import tomllib
from functools import cache
from pathlib import Path
from typing import Any

OVERRIDES_VARIABLE = "SHIPLIGHT_POLICY"
_HERE = Path(__file__).parent


class PolicyError(ValueError):
    """The policy defaults or the deployment's overrides cannot be used."""


def merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``changes`` applied key by key (nested tables merge, other values replace)."""
    merged = dict(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _overrides() -> dict[str, Any]:
    text = os.environ.get(OVERRIDES_VARIABLE, "").strip()
    if not text:
        return {}
    try:
        document = json.loads(text)
    except ValueError as error:
        raise PolicyError(f"{OVERRIDES_VARIABLE} is not JSON: {error}") from None
    if not isinstance(document, dict):
        raise PolicyError(f'{OVERRIDES_VARIABLE} must be a JSON object {{"<policy>": {{...}}}}')
    return document


@cache
def _cached(name: str, overrides_text: str) -> dict[str, Any]:
    path = _HERE / f"{name}.toml"
    if not path.is_file():
        raise PolicyError(f"no policy named {name!r} (expected {path.name} in shared/config)")
    defaults = tomllib.loads(path.read_text(encoding="utf-8"))
    change = _overrides().get(name, {})
    if not isinstance(change, dict):
        raise PolicyError(f"{OVERRIDES_VARIABLE}.{name} must be a JSON object")
    return merge(defaults, change)


def policy(name: str) -> dict[str, Any]:
    """The ``name`` policy (``shared/config/<name>.toml``) with this deployment's overrides."""
    return _cached(name, os.environ.get(OVERRIDES_VARIABLE, ""))
