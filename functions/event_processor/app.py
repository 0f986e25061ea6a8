"""Ingest queue → canonical events → DynamoDB → EventBridge, with partial batch failures."""

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import process_partial_response

from shared.logic.ingest.batch import FlushingBatchProcessor  # before pydantic: see its docstring
from shared.logic.ingest.process import ingest_batch

logger = Logger()
metrics = Metrics()


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    batch = ingest_batch()
    response = process_partial_response(
        event=event,
        record_handler=batch.stage_record,
        processor=FlushingBatchProcessor(flush=batch.flush, logger=logger),
        context=context,
    )
    for name, value in batch.metrics().items():
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
    if batch.unmapped:
        logger.warning("unmapped carrier codes", extra={"codes": dict(batch.unmapped)})
    for error in batch.outcome.errors:
        logger.error("shipment not committed", extra={"error": error})
    return response
