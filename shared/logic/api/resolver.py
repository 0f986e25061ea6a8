"""The HTTP resolver every Powertools-based API function uses, with the one error table."""

from __future__ import annotations

import json
import logging

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response

from shared.errors import ServiceError
from shared.http import JSON_HEADERS, error_body, status_for

logger = logging.getLogger("shiplight.api")


def new_resolver() -> APIGatewayHttpResolver:
    """An HTTP API (payload v2.0) resolver that answers every ``ServiceError`` with the
    status from ``shared.http.STATUS_BY_ERROR`` and a ``{"error", "detail"}`` body."""
    app = APIGatewayHttpResolver()

    @app.exception_handler(ServiceError)  # type: ignore[untyped-decorator]
    def handle_service_error(error: ServiceError) -> Response[str]:
        status = status_for(error)
        # A 4xx is the caller's business: info, not an exception with a stack trace.
        logger.log(logging.ERROR if status >= 500 else logging.INFO, "request refused: %s", error.code)
        return Response(
            status_code=int(status),
            content_type="application/json",
            body=json.dumps(error_body(error)),
            headers={"cache-control": JSON_HEADERS["cache-control"]},
        )

    return app
