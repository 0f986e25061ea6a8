"""When to poll a carrier about a shipment (docs/sources.md: poll where push is not available).

The cadence follows what can change soon: hours while a parcel crosses the country, tens of
minutes once it is out for delivery, nothing once it is delivered or has said nothing for 30
days. A shipment whose webhooks are flowing is polled far less (the poll is then only a
safety net for a lost push). The due time is spread by the shipment id so a burst of
labels does not become a burst of carrier calls.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from shared.models.canonical import Milestone

# The due-index partitions. Each run Queries every shard, so shards cost a Query per run each;
# they buy write throughput on the index (~1,000 writes/s per GSI partition key), and a merchant's
# poll re-arms run at a few per second even with 100,000 parcels in flight: two is plenty.
SHARDS = 2
RUN_PERIOD = timedelta(minutes=5)  # the poller's schedule (template.yaml: rate(5 minutes))


@dataclass(frozen=True)
class PollPolicy:
    awaiting_first_scan: timedelta = timedelta(hours=6)
    in_transit: timedelta = timedelta(hours=3)
    near_delivery: timedelta = timedelta(minutes=30)  # out for delivery, attempt failed, at pickup point
    returning: timedelta = timedelta(hours=6)
    push_flowing_factor: int = 4  # a webhook in the last day: poll this many times less often
    push_flowing_window: timedelta = timedelta(hours=24)
    give_up_after: timedelta = timedelta(days=30)  # no new information for this long: stop
    jitter: float = 0.1  # ± share of the interval


DEFAULT_POLICY = PollPolicy()

_NEAR = {Milestone.OUT_FOR_DELIVERY, Milestone.DELIVERY_FAILED, Milestone.AVAILABLE_FOR_PICKUP}
_DONE = {Milestone.DELIVERED, Milestone.RETURN_DELIVERED}


def poll_interval(status: Milestone | None, policy: PollPolicy = DEFAULT_POLICY) -> timedelta | None:
    """How long to wait between polls at this status; ``None``: stop polling."""
    if status in _DONE:
        return None
    if status is None or status is Milestone.LABEL_CREATED:
        return policy.awaiting_first_scan
    if status in _NEAR:
        return policy.near_delivery
    if status is Milestone.RETURN_STARTED:
        return policy.returning
    return policy.in_transit


def next_poll(
    *,
    shipment_id: str,
    status: Milestone | None,
    now: datetime,
    last_news_at: datetime,
    last_push_at: datetime | None,
    policy: PollPolicy = DEFAULT_POLICY,
) -> datetime | None:
    """The next time to poll, or ``None`` when polling should stop.

    ``last_news_at`` is when the shipment last learned something (its newest event, or its
    creation): after ``give_up_after`` of silence the poller stops asking.
    """
    interval = poll_interval(status, policy)
    if interval is None or now - last_news_at > policy.give_up_after:
        return None
    if last_push_at is not None and now - last_push_at <= policy.push_flowing_window:
        interval *= policy.push_flowing_factor
    spread = int(hashlib.sha256(shipment_id.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF  # 0..1
    return now + interval * (1 + policy.jitter * (2 * spread - 1))


def shard_of(shipment_id: str) -> str:
    """The due-index partition of a shipment: spreads writes over ``SHARDS`` keys."""
    return f"POLL#{int(hashlib.sha256(shipment_id.encode()).hexdigest()[:4], 16) % SHARDS}"


def first_shard(now: datetime) -> int:
    """The due-index shard a run started at ``now`` reads first: the next one on each run of
    the schedule, so in any two runs in a row (``SHARDS``) every shard is read first once, and a backlog
    in one shard cannot starve the shards read after it."""
    return int(now.timestamp() // RUN_PERIOD.total_seconds()) % SHARDS
