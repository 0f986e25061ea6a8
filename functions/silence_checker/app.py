"""Scheduled: raise silences whose deadline passed, escalate exceptions past their SLA, re-arm
the rest (the ByTimer index; never a Scan)."""

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from shared.logic.timers.checker import run_checker

logger = Logger()
metrics = Metrics()
CURSOR: dict[str, str] = {}  # the timer cursor as this container last read or moved it

METRICS = {
    "timers": "TimersDue",
    "queries": "TimerIndexQueries",
    "rearmed": "TimersRearmed",
    "published": "ExceptionEventsPublished",
    "drained": "OutboxLeftoversPublished",
    "left_for_next_run": "TimersLeftForNextRun",
}


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, int]:
    outcome = run_checker(lambda: context.get_remaining_time_in_millis() / 1000, CURSOR)
    metrics.add_metric(name="SilenceCheckerRuns", unit=MetricUnit.Count, value=1)  # a heartbeat
    for key, name in METRICS.items():
        if outcome.counts[key]:
            metrics.add_metric(name=name, unit=MetricUnit.Count, value=outcome.counts[key])
    raised = sum(v for k, v in outcome.counts.items() if k.startswith("raised."))
    escalated = sum(v for k, v in outcome.counts.items() if k.startswith("escalated."))
    if raised:
        metrics.add_metric(name="SilenceExceptionsRaised", unit=MetricUnit.Count, value=raised)
    if escalated:
        metrics.add_metric(name="ExceptionsEscalated", unit=MetricUnit.Count, value=escalated)
    if raised or escalated:
        logger.info("exceptions raised or escalated", extra={"counts": dict(outcome.counts)})
    for problem in outcome.problems:
        logger.warning("silence checker problem", extra={"problem": problem})
    return dict(outcome.counts)
