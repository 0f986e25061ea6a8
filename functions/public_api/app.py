"""Public routes addressed by tracking token: GET /v1/track/{token} (JSON), and the customer's
link GET /t/{token}, which forwards to it until the tracking page exists."""

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit

from shared.logic.api.resolver import new_resolver
from shared.logic.views.tracking import public_reader, tracking_link_target, tracking_view

logger = Logger()
metrics = Metrics()
app = new_resolver()


@app.get("/v1/track/<token>")
def get_tracking(token: str) -> Response:
    metrics.add_metric(name="TrackingLookups", unit=MetricUnit.Count, value=1)
    view = tracking_view(token, public_reader())
    metrics.add_metric(name="TrackingViews", unit=MetricUnit.Count, value=1)
    return Response(
        status_code=200,
        content_type="application/json",
        body=view.model_dump_json(),
        headers={"cache-control": "public, max-age=60", "x-robots-tag": "noindex"},
    )


@app.get("/t/<token>")
def follow_tracking_link(token: str) -> Response[str]:
    target = tracking_link_target(token)
    metrics.add_metric(name="TrackingLinksFollowed", unit=MetricUnit.Count, value=1)
    return Response(
        status_code=303,
        content_type="text/plain",
        body=f"See {target}\n",
        headers={"location": target, "cache-control": "public, max-age=300", "x-robots-tag": "noindex"},
    )


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, log_event=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return app.resolve(event, context)
