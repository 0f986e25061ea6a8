"""POST /webhooks/{carrier}: verify, archive, enqueue — 202 means durably stored.

Imports only the standard library, botocore and the stdlib-only parts of ``shared``
(docs/architecture.md): no Powertools, no pydantic, so a cold start costs about one botocore import.
"""

from typing import Any

from shared.errors import DependencyUnavailable, ServiceError
from shared.http import error_response, json_response
from shared.logic.ingest.receive import receive_webhook
from shared.observability import MetricsBatch, get_logger
from shared.settings import IngressSettings, load
from shared.sources import SOURCES

logger = get_logger("webhook_receiver")


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    metrics = MetricsBatch()
    source = (event.get("pathParameters") or {}).get("carrier", "")
    # Only registered names become a metric dimension: the path is attacker-controlled.
    metrics.dimension("source", source if source in SOURCES else "unknown")
    request_id = (event.get("requestContext") or {}).get("requestId") or context.aws_request_id
    try:
        accepted = receive_webhook(
            source_name=source,
            headers=event.get("headers") or {},
            raw_body=event.get("body"),
            is_base64=bool(event.get("isBase64Encoded")),
            request_id=request_id,
            settings=load(IngressSettings),
        )
        metrics.add("WebhookAccepted")
        logger.info("webhook accepted", extra={"source": source, "message_id": accepted.message_id})
        return json_response(202, {"status": "accepted", "id": accepted.message_id})
    except ServiceError as error:
        metrics.add("WebhookRejected")
        level = "error" if isinstance(error, DependencyUnavailable) else "info"
        getattr(logger, level)("webhook refused", extra={"reason": error.code, "request_id": request_id})
        return error_response(error)
    finally:
        metrics.flush()
