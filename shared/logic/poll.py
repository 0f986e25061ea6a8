"""The carrier poller's run: ask carriers about the shipments that are due, and only those.

Due shipments come from the sparse, sharded ``ByPollDue`` index (never a Scan): one index
item read per shipment polled. Each answer goes onto the ingest queue as a ``poll``
envelope, exactly like a webhook, so there is one processing path. Then the shipment's
due time moves on by the cadence of its status (``shared.logic.cadence``). A carrier is
never called faster than its token bucket allows; a carrier that answers 429 (after the
client's bounded retries) or refuses our credentials is left alone for the rest of the run,
its shipments re-armed a little later instead of hammered.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from shared.dal.carrier_api import Answer, CredentialsMissing, CredentialsRefused
from shared.dal.shipments import DueShipment
from shared.errors import DependencyUnavailable
from shared.logic.cadence import DEFAULT_POLICY, SHARDS, PollPolicy, next_poll
from shared.logic.ratelimit import DEFAULT_RATE_LIMITS, TokenBucket
from shared.models.canonical import Milestone

RETRY_AFTER_FAILURE = timedelta(minutes=15)
RETRY_AFTER_RATE_LIMIT = timedelta(minutes=10)
RETRY_WITHOUT_CREDENTIALS = timedelta(hours=24)
SAFETY_MARGIN_SECONDS = 12.0  # stop polling this long before the function would time out


class DueIndex(Protocol):
    def due_for_poll(self, shard: str, now: datetime, page_size: int = 100) -> Iterator[DueShipment]: ...
    def rearm_poll(self, due: DueShipment, *, polled_at: datetime, next_due: datetime | None) -> bool: ...


class Carriers(Protocol):
    def has_credentials(self, source: str) -> bool: ...
    def fetch(self, source: str, number: str) -> Answer: ...


# (source, number, shipment_id, answer body) → the ingest queue
Enqueue = Callable[[str, str, str, bytes], None]


@dataclass
class PollOutcome:
    counts: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)


def _instant(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


def poll_due(
    *,
    now: datetime,
    index: DueIndex,
    carriers: Carriers,
    enqueue: Enqueue,
    time_left: Callable[[], float],
    rate_limits: dict[str, tuple[float, float]] | None = None,
    policy: PollPolicy = DEFAULT_POLICY,
    sleep: Callable[[float], None] = time.sleep,
    monotonic: Callable[[], float] = time.monotonic,
    max_polls: int = 2000,
) -> PollOutcome:
    """Poll every due shipment the time and the carriers' limits allow."""
    outcome = PollOutcome()
    limits = {**DEFAULT_RATE_LIMITS, **(rate_limits or {})}
    buckets: dict[str, TokenBucket] = {}
    resting: dict[str, timedelta] = {}  # sources left alone for the rest of this run → re-arm delay
    for shard in range(SHARDS):
        for due in index.due_for_poll(f"POLL#{shard}", now):
            outcome.counts["index_items_read"] += 1
            if outcome.counts["polled"] >= max_polls or time_left() < SAFETY_MARGIN_SECONDS:
                outcome.counts["left_for_next_run"] += 1
                return outcome
            source = due.poll_source
            if source in resting:
                _rearm(index, due, now, now + resting[source], outcome, "deferred")
                continue
            if not carriers.has_credentials(source):
                resting[source] = RETRY_WITHOUT_CREDENTIALS
                outcome.problems.append(f"{source}: no credentials configured; its shipments wait 24 h")
                _rearm(index, due, now, now + RETRY_WITHOUT_CREDENTIALS, outcome, "no_credentials")
                continue
            bucket = buckets.setdefault(source, TokenBucket(*limits.get(source, (1.0, 1.0)), now=monotonic))
            wait = bucket.wait_time()
            if wait > max(time_left() - SAFETY_MARGIN_SECONDS, 0):
                outcome.counts["left_for_next_run"] += 1
                return outcome
            if wait:
                sleep(wait)
            bucket.take()
            try:
                answer = carriers.fetch(source, due.poll_number)
            except CredentialsMissing:
                resting[source] = RETRY_WITHOUT_CREDENTIALS
                _rearm(index, due, now, now + RETRY_WITHOUT_CREDENTIALS, outcome, "no_credentials")
                continue
            except CredentialsRefused as error:
                resting[source] = timedelta(hours=1)
                outcome.problems.append(f"{source}: {error.detail}")
                _rearm(index, due, now, now + timedelta(hours=1), outcome, "failed")
                continue
            except DependencyUnavailable as error:
                outcome.problems.append(f"{source}: {error.detail}")
                _rearm(index, due, now, now + RETRY_AFTER_FAILURE, outcome, "failed")
                continue
            outcome.counts["polled"] += 1
            outcome.counts[f"polled.{source}"] += 1
            if answer.status == 429:
                resting[source] = RETRY_AFTER_RATE_LIMIT
                outcome.counts["rate_limited"] += 1
                _rearm(index, due, now, now + RETRY_AFTER_RATE_LIMIT, outcome, "deferred")
                continue
            if answer.status in (401, 403):
                resting[source] = timedelta(hours=1)
                outcome.problems.append(f"{source}: HTTP {answer.status}, credentials refused")
                _rearm(index, due, now, now + timedelta(hours=1), outcome, "failed")
                continue
            if answer.status >= 500 or (answer.status >= 400 and answer.status != 404):
                outcome.counts["failed"] += 1
                _rearm(index, due, now, now + RETRY_AFTER_FAILURE, outcome, "failed")
                continue
            if answer.ok:
                enqueue(source, due.poll_number, due.shipment_id, answer.body)
                outcome.counts["enqueued"] += 1
            else:
                outcome.counts["not_found"] += 1  # 404: nothing to ingest yet
            status = Milestone(due.status) if due.status else None
            created = _instant(due.created_at) or now
            following = next_poll(
                shipment_id=due.shipment_id,
                status=status,
                now=now,
                last_news_at=_instant(due.last_event_at) or created,
                last_push_at=_instant(due.last_push_at),
                policy=policy,
            )
            _rearm(index, due, now, following, outcome, "rearmed" if following else "stopped")
    return outcome


def _rearm(
    index: DueIndex, due: DueShipment, now: datetime, next_due: datetime | None, outcome: PollOutcome, why: str
) -> None:
    if index.rearm_poll(due, polled_at=now, next_due=next_due):
        outcome.counts[why] += 1
    else:
        outcome.counts["moved_by_processor"] += 1


# ------------------------------------------------------------------------------ wiring

_CLIENTS: dict[tuple[str, str], object] = {}


def run_poller(time_left: Callable[[], float]) -> PollOutcome:
    """One scheduled run against the resources and carriers named by the environment."""
    import json

    from shared import clock
    from shared.dal.carrier_api import CarrierClient, carrier_credentials
    from shared.dal.ingress import archive_raw, enqueue
    from shared.dal.shipments import DynamoShipmentStore
    from shared.envelope import build_envelope
    from shared.settings import PollerSettings, load

    settings = load(PollerSettings)
    urls = json.loads(settings.carrier_api_urls) if settings.carrier_api_urls else {}
    limits = {k: (float(v[0]), float(v[1])) for k, v in json.loads(settings.carrier_rate_limits or "{}").items()}
    cache_key = (settings.carrier_credentials_arn, settings.carrier_api_urls)
    carriers = _CLIENTS.get(cache_key)  # the session and cached OAuth tokens live as long as the container
    if not isinstance(carriers, CarrierClient):
        carriers = CarrierClient(urls, carrier_credentials(settings.carrier_credentials_arn))
        _CLIENTS[cache_key] = carriers
    now = clock.now()

    def to_ingest(source: str, number: str, shipment_id: str, body: bytes) -> None:
        envelope = build_envelope(
            source=source,
            channel="poll",
            received_at=clock.now(),
            delivery_id=f"poll:{shipment_id}:{number}",
            body=body,
            archive_bucket=settings.raw_archive_bucket,
        )
        archive_raw(envelope, body)
        enqueue(settings.ingest_queue_url, envelope)

    return poll_due(
        now=now,
        index=DynamoShipmentStore(settings.shipments_table),
        carriers=carriers,
        enqueue=to_ingest,
        time_left=time_left,
        rate_limits=limits,
    )
