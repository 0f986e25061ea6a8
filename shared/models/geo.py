"""Places: ISO country codes and the time zone of a scan location.

Countries: carriers write ISO alpha-2, alpha-3 or a name; we store alpha-2.
Time zones: IANA zone names from a maintained mapping (``timezones.toml``) and the IANA
``zone.tab`` in the ``tzdata`` package; ``zoneinfo`` turns them into offsets with DST and
history, so no offsets are hand-kept anywhere.
"""

from __future__ import annotations

from datetime import datetime
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

# csv, tomllib, importlib.resources and zoneinfo are imported on first use: the data files
# are read once per process, and a cold start that meets no local time never pays for them.

_HERE = Path(__file__).parent


@cache
def _countries() -> dict[str, str]:
    """Upper-cased alpha-2, alpha-3 and names → alpha-2."""
    import csv

    index: dict[str, str] = {}
    with open(_HERE / "countries.csv", encoding="utf-8", newline="") as handle:
        rows = csv.reader(line for line in handle if not line.startswith("#"))
        next(rows)
        for alpha2, alpha3, names in rows:
            index[alpha2] = alpha2
            index[alpha3] = alpha2
            for name in names.split("|"):
                index[name.upper()] = alpha2
    return index


def normalize_country(value: str | None) -> str | None:
    """ISO 3166-1 alpha-2 for an alpha-2, alpha-3 or country name; ``None`` if unknown."""
    if not value:
        return None
    return _countries().get(value.strip().upper())


@cache
def _zone_tab() -> dict[str, tuple[str, ...]]:
    from importlib import resources

    zones: dict[str, list[str]] = {}
    text = resources.files("tzdata").joinpath("zoneinfo", "zone.tab").read_text(encoding="utf-8")
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        code, _coordinates, zone, *_ = line.split("\t")
        zones.setdefault(code, []).append(zone)
    return {code: tuple(names) for code, names in zones.items()}


@cache
def _mapping() -> dict[str, dict[str, object]]:
    import tomllib

    with open(_HERE / "timezones.toml", "rb") as handle:
        return tomllib.load(handle)


@cache
def zone(name: str) -> ZoneInfo:
    from zoneinfo import ZoneInfo

    return ZoneInfo(name)


def zone_for(country: str | None, region: str | None, postal_code: str | None, at: datetime) -> ZoneInfo | None:
    """The time zone of a scan at ``country``/``region``/``postal_code`` around instant ``at``.

    ``None`` when the place does not determine one zone (a US scan with no state, say):
    the caller then records that it assumed UTC instead of guessing.
    """
    if not country:
        return None
    entry = _mapping().get(country, {})
    if postal_code and isinstance(entry.get("postal"), dict):
        postal = postal_code.strip().upper()
        overrides: dict[str, str] = entry["postal"]  # type: ignore[assignment]
        for length in range(min(len(postal), 6), 0, -1):
            if postal[:length] in overrides:
                return zone(overrides[postal[:length]])
    if region and isinstance(entry.get("regions"), dict):
        regions: dict[str, str] = entry["regions"]  # type: ignore[assignment]
        found = regions.get(region.strip().upper())
        if found:
            return zone(found)
    if isinstance(entry.get("default"), str):
        return zone(str(entry["default"]))
    candidates = _zone_tab().get(country, ())
    if not candidates or "regions" in entry:
        return None
    first = zone(candidates[0])
    # Several zones that all keep the same offset at this instant are one zone in practice.
    offset = at.astimezone(first).utcoffset()
    if all(at.astimezone(zone(name)).utcoffset() == offset for name in candidates[1:]):
        return first
    return None
