"""Merchant routes (API key required): /v1/shipments… (and the routes that join them).

Every route runs behind ``new_merchant_resolver()``: without the authorizer's ``valid``
verdict it answers 401 (no usable key) or 403 (revoked key) before any route code runs.
A new route is a function here calling one function of its ``shared.logic`` module.
"""

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit

from shared.logic.api.merchant import json_answer, merchant_services, new_merchant_resolver, request_origin
from shared.logic.merchant.ops import list_exceptions, ops_services, record_claim, refund_decision, resolve_exception
from shared.logic.merchant.registration import register_from_body
from shared.logic.merchant.shipments import get_shipment, list_shipments

logger = Logger()
metrics = Metrics()
app = new_merchant_resolver()


@app.post("/v1/shipments")
def post_shipment() -> Response[str]:
    event = app.current_event
    status, answer = register_from_body(event.decoded_body, merchant_services(), origin=request_origin(event.raw_event))
    metrics.add_metric(
        name="ShipmentsRegistered" if status == 201 else "RegistrationsRepeated", unit=MetricUnit.Count, value=1
    )
    return json_answer(status, answer, {"location": f"/v1/shipments/{answer.shipment_id}"})


@app.get("/v1/shipments/<shipment_id>")
def get_one_shipment(shipment_id: str) -> Response[str]:
    view = get_shipment(shipment_id, merchant_services(), origin=request_origin(app.current_event.raw_event))
    return json_answer(200, view)


@app.get("/v1/shipments")
def get_shipments() -> Response[str]:
    query = dict(app.current_event.query_string_parameters or {})
    page = list_shipments(query, merchant_services(), origin=request_origin(app.current_event.raw_event))
    return json_answer(200, page)


@app.get("/v1/shipments/<shipment_id>/refund-decision")
def get_refund_decision(shipment_id: str) -> Response[str]:
    decision = refund_decision(shipment_id, ops_services())
    metrics.add_metric(name="RefundDecisions", unit=MetricUnit.Count, value=1)
    return json_answer(200, decision)


@app.post("/v1/shipments/<shipment_id>/claims")
def post_claim(shipment_id: str) -> Response[str]:
    answer = record_claim(shipment_id, app.current_event.decoded_body, ops_services())
    metrics.add_metric(name="ClaimsRecorded" if answer.created else "ClaimsRepeated", unit=MetricUnit.Count, value=1)
    return json_answer(201 if answer.created else 200, answer)


@app.get("/v1/exceptions")
def get_exceptions() -> Response[str]:
    page = list_exceptions(dict(app.current_event.query_string_parameters or {}), ops_services())
    return json_answer(200, page)


@app.post("/v1/exceptions/<exception_id>/resolve")
def post_resolve(exception_id: str) -> Response[str]:
    row = resolve_exception(exception_id, app.current_event.decoded_body, ops_services())
    metrics.add_metric(name="ExceptionsResolvedByOperator", unit=MetricUnit.Count, value=1)
    return json_answer(200, row)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, log_event=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return app.resolve(event, context)
