"""Scheduled: poll the carriers about the shipments that are due (one processing path:
the answers join the ingest queue like webhooks)."""

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from shared.logic.polling.poller import run_poller

logger = Logger()
metrics = Metrics()

METRICS = {
    "polled": "CarrierPolls",
    "enqueued": "PollAnswersQueued",
    "unchanged": "PollAnswersUnchanged",
    "rate_limited": "CarrierRateLimited",
    "failed": "CarrierPollFailed",
    "not_found": "PollNotFound",
    "index_items_read": "PollIndexItemsRead",
    "left_for_next_run": "PollsLeftForNextRun",
    "no_credentials": "PollSkippedNoCredentials",
    "carriers_rested": "CarriersRested",
    "credentials_reloaded": "CarrierCredentialsReloaded",
}


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, int]:
    outcome = run_poller(lambda: context.get_remaining_time_in_millis() / 1000)
    metrics.add_metric(name="PollerRuns", unit=MetricUnit.Count, value=1)  # a heartbeat, even when nothing was due
    for key, name in METRICS.items():
        if outcome.counts[key]:
            metrics.add_metric(name=name, unit=MetricUnit.Count, value=outcome.counts[key])
    for problem in outcome.problems:
        logger.warning("carrier poll problem", extra={"problem": problem})
    return dict(outcome.counts)
