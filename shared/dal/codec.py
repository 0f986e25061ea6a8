"""DynamoDB AttributeValue encoding for the low-level client (no boto3 resource layer)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any


def encode(value: Any) -> dict[str, Any]:
    if value is None:
        return {"NULL": True}
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, int | Decimal):
        return {"N": str(value)}
    if isinstance(value, float):
        return {"N": repr(value)}
    if isinstance(value, dict):
        return {"M": {str(k): encode(v) for k, v in value.items()}}
    if isinstance(value, list | tuple):
        return {"L": [encode(v) for v in value]}
    if isinstance(value, set | frozenset) and all(isinstance(v, str) for v in value):
        return {"SS": sorted(value)}
    raise TypeError(f"cannot store {type(value).__name__} in DynamoDB")


def encode_item(item: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {key: encode(value) for key, value in item.items()}


def decode(value: dict[str, Any]) -> Any:
    ((kind, raw),) = value.items()
    if kind == "S":
        return raw
    if kind == "N":
        return int(raw) if raw.lstrip("-").isdigit() else float(raw)
    if kind == "BOOL":
        return bool(raw)
    if kind == "NULL":
        return None
    if kind == "M":
        return {k: decode(v) for k, v in raw.items()}
    if kind == "L":
        return [decode(v) for v in raw]
    if kind == "SS":
        return set(raw)
    raise TypeError(f"unsupported DynamoDB type {kind}")


def decode_item(item: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {key: decode(value) for key, value in item.items()}
