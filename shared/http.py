"""HTTP mapping of the error hierarchy: the one table, and JSON responses.

Standard library only: the webhook receiver uses it as well as the Powertools-based APIs.
"""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

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
