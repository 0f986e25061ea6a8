"""HTTP mapping of the error hierarchy: the one table, and JSON responses.

Standard library only: the webhook receiver uses it as well as the Powertools-based APIs.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote

from shared.errors import (
    Conflict,
    DependencyUnavailable,
    Forbidden,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    ServiceError,
    Unauthorized,
)

# Most specific class first: the first isinstance match wins.
STATUS_BY_ERROR: tuple[tuple[type[ServiceError], HTTPStatus], ...] = (
    (PayloadTooLarge, HTTPStatus.REQUEST_ENTITY_TOO_LARGE),
    (InvalidInput, HTTPStatus.BAD_REQUEST),
    (Unauthorized, HTTPStatus.UNAUTHORIZED),
    (Forbidden, HTTPStatus.FORBIDDEN),
    (NotFound, HTTPStatus.NOT_FOUND),
    (Conflict, HTTPStatus.CONFLICT),
    (DependencyUnavailable, HTTPStatus.SERVICE_UNAVAILABLE),
)

JSON_HEADERS = {"content-type": "application/json", "cache-control": "no-store"}


def status_for(error: ServiceError) -> HTTPStatus:
    for error_type, status in STATUS_BY_ERROR:
        if isinstance(error, error_type):
            return status
    return HTTPStatus.INTERNAL_SERVER_ERROR


def error_body(error: ServiceError) -> dict[str, str]:
    return {"error": error.code, "detail": error.detail}


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> dict[str, Any]:
    """An API Gateway HTTP API (payload v2.0) response."""
    return {
        "statusCode": int(status),
        "headers": {**JSON_HEADERS, **(headers or {})},
        "body": json.dumps(body, separators=(",", ":"), ensure_ascii=False),
        "isBase64Encoded": False,
    }


def error_response(error: ServiceError) -> dict[str, Any]:
    return json_response(status_for(error), error_body(error))


def text_response(status: int, text: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    """An API Gateway HTTP API (payload v2.0) response with a plain-text body."""
    return {
        "statusCode": int(status),
        "headers": {"content-type": "text/plain", **(headers or {})},
        "body": text,
        "isBase64Encoded": False,
    }


def match_route(event: dict[str, Any], route_keys: Iterable[str]) -> tuple[str, dict[str, str]] | None:
    """Which of ``route_keys`` (``"GET /t/{token}"``) an HTTP API (payload v2.0) event asks
    for, with its path parameters; ``None`` for any other request.

    API Gateway names the route it matched in ``routeKey``; an event without one of ours
    (a ``$default`` or ``ANY`` route, a hand-made event) is matched on its method and
    ``rawPath``, a ``{name}`` segment taking one non-empty path segment.
    """
    keys = tuple(route_keys)
    method = ((event.get("requestContext") or {}).get("http") or {}).get("method")
    key = event.get("routeKey")
    if key in keys and method in (None, str(key).partition(" ")[0]):
        return str(key), {str(k): str(v) for k, v in (event.get("pathParameters") or {}).items()}
    segments = str(event.get("rawPath") or "").split("/")
    for key in keys:
        verb, _, path = key.partition(" ")
        parts = path.split("/")
        if verb != method or len(parts) != len(segments):
            continue
        parameters: dict[str, str] = {}
        for part, segment in zip(parts, segments, strict=True):
            if part.startswith("{") and part.endswith("}") and segment:
                parameters[part[1:-1]] = unquote(segment)
            elif part != segment:
                break
        else:
            return key, parameters
    return None
