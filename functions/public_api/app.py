"""Public routes addressed by tracking token: GET /v1/track/{token} (JSON), and the customer's
link GET /t/{token}, which forwards to it until the tracking page exists.

Imports only the standard library, botocore and the stdlib-only parts of ``shared``, like the
webhook receiver (docs/architecture.md): a customer waits for this cold start. No Powertools, no
pydantic; the answer's contract is ``shared.models.views.TrackingView``.
"""

import logging
from typing import Any

from shared.errors import NotFound, ServiceError
from shared.http import error_response, json_response, match_route, status_for, text_response
from shared.logic.views.tracking import public_reader, token_reference, tracking_link_target, tracking_view
from shared.observability import MetricsBatch, get_logger

logger = get_logger("public_api")
TRACKING_VIEW, TRACKING_LINK = "GET /v1/track/{token}", "GET /t/{token}"


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    metrics = MetricsBatch()
    route, parameters = match_route(event, (TRACKING_VIEW, TRACKING_LINK)) or (None, {})
    token = parameters.get("token", "")
    try:
        if route == TRACKING_VIEW:
            metrics.add("TrackingLookups")
            view = tracking_view(token, public_reader())
            metrics.add("TrackingViews")
            return json_response(200, view, {"cache-control": "public, max-age=60", "x-robots-tag": "noindex"})
        if route == TRACKING_LINK:
            target = tracking_link_target(token)
            metrics.add("TrackingLinksFollowed")
            headers = {"location": target, "cache-control": "public, max-age=300", "x-robots-tag": "noindex"}
            return text_response(303, f"See {target}\n", headers)
        raise NotFound("no such route")
    except ServiceError as error:
        status = status_for(error)
        # A 4xx is the caller's business: info, not an error. The token is a bearer secret:
        # a log line carries only a short hash of it.
        logger.log(
            logging.ERROR if status >= 500 else logging.INFO,
            "request refused",
            extra={
                "route": route or "none",
                "reason": error.code,
                "token_ref": token_reference(token) if token else None,
                "request_id": (event.get("requestContext") or {}).get("requestId") or context.aws_request_id,
            },
        )
        return error_response(error)
    finally:
        metrics.flush()
