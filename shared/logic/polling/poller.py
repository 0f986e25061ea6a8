"""The carrier poller's run: ask carriers about the shipments that are due, and only those.

Due shipments come from the sparse, sharded ``ByPollDue`` index (never a Scan): one index
item read per shipment polled, one Query per shard on a run with nothing due. Each run starts
at the next shard (``cadence.first_shard``), so a backlog in one shard cannot starve the others.
What is read goes into one queue per carrier, and the carriers are served in turn: a carrier
waiting for its token bucket, resting after a 429 or slow to answer takes one turn at a time
and never holds the others up. Each answer goes onto the ingest queue as a ``poll`` envelope,
exactly like a webhook, so there is one processing path — unless it says exactly what the last
answer enqueued for that shipment said (``answer_digest``; carriers re-send the whole history
on every poll), which is not ingested again; then the shipment's due time moves on by the
cadence of its status (``shared.logic.polling.cadence``).

A carrier is never called faster than its token bucket allows. A 429 rests it for its
``Retry-After`` (for the rest of the run when it gives none, or one longer than the run);
three failures in a row (unreachable, 5xx, 429) rest it for the rest of the run; refused
credentials are re-read once and otherwise rest it for an hour. A rested carrier's shipments
are re-armed a little later, never dropped. No fetch starts unless its worst case
(``Carriers.worst_case_seconds``) fits in the time the function has left.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

from shared import clock
from shared.adapters import load_adapter
from shared.dal.carrier_api import Answer, CarrierClient, CredentialsMissing, CredentialsRefused
from shared.dal.shipments import DueShipment
from shared.errors import DependencyUnavailable, NotFound, PayloadError
from shared.logic.polling.cadence import DEFAULT_POLICY, SHARDS, PollPolicy, next_poll
from shared.logic.polling.ratelimit import DEFAULT_RATE_LIMITS, TokenBucket
from shared.models.canonical import Milestone

RETRY_AFTER_FAILURE = timedelta(minutes=15)
RETRY_AFTER_RATE_LIMIT = timedelta(minutes=10)  # a 429 without a usable Retry-After
RETRY_AFTER_REFUSAL = timedelta(hours=1)
RETRY_WITHOUT_CREDENTIALS = timedelta(hours=24)
SAFETY_MARGIN_SECONDS = 12.0  # kept free after the last fetch, for the queue and index writes
STRIKES_TO_REST = 3  # failures in a row (unreachable, 5xx, 429) that rest a carrier for the run
LOOKAHEAD = 100  # due shipments kept queued while the index has more: one Query page
READ_AHEAD_LIMIT = 300  # read this far ahead when every queued carrier has to wait
CREDENTIALS_TTL = timedelta(minutes=15)  # a warm container re-reads the CarrierCredentials secret
_EPSILON = 1e-6  # seconds: a rest that ends within this has ended (float rounding of the clock)


class DueIndex(Protocol):
    def due_for_poll(self, shard: str, now: datetime, page_size: int = 100) -> Iterator[DueShipment]: ...
    def rearm_poll(
        self, due: DueShipment, *, polled_at: datetime, next_due: datetime | None, digest: str | None = None
    ) -> bool: ...


class Carriers(Protocol):
    def has_credentials(self, source: str) -> bool: ...
    def fetch(self, source: str, number: str) -> Answer: ...
    def worst_case_seconds(self, source: str) -> float: ...


# (source, number, shipment_id, answer body) → the ingest queue
Enqueue = Callable[[str, str, str, bytes], None]


@dataclass
class PollOutcome:
    counts: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)


def _instant(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


@dataclass
class _Carrier:
    """One carrier's share of a run: its bucket, its queue of due shipments, how it is doing."""

    source: str
    bucket: TokenBucket
    queue: deque[DueShipment] = field(default_factory=deque)
    strikes: int = 0  # failures in a row
    resting_until: float = 0.0  # on the run's monotonic clock: a Retry-After that ends within the run
    rested_for: timedelta | None = None  # rested for the rest of the run: its shipments wait this long
    rested_as: str = "deferred"  # the count its re-armed shipments go under


_DIGEST_RECEIVED_AT = datetime(2000, 1, 1, tzinfo=UTC)


def answer_digest(source: str, body: bytes) -> str:
    """What one answer *says*, as a digest: the canonical events it normalizes to (receipt
    time aside), its legs, unmapped codes and why it was ignored. A carrier that re-sends
    the same history under a fresh request id or timestamp gives the same digest, and so
    does nothing the processor would take from it; a changed mapping table changes it.
    An answer no adapter can read is digested by its bytes (it is ingested, and the
    processor quarantines it)."""
    try:
        result = load_adapter(source).normalize(body, received_at=_DIGEST_RECEIVED_AT)
    except PayloadError:
        basis = body
    else:
        said = {
            "events": [event.model_dump(mode="json", exclude={"received_at"}) for event in result.events],
            "legs": [[str(leg.first), str(leg.last_mile)] for leg in result.legs],
            "unmapped": result.unmapped,
            "ignored": result.ignored,
        }
        basis = json.dumps(said, sort_keys=True).encode("utf-8")
    return hashlib.sha256(basis).hexdigest()[:32]


def poll_due(
    *,
    now: datetime,
    index: DueIndex,
    carriers: Carriers,
    enqueue: Enqueue,
    time_left: Callable[[], float],
    rate_limits: dict[str, tuple[float, float]] | None = None,
    policy: PollPolicy = DEFAULT_POLICY,
    sleep: Callable[[float], None] = clock.sleep,
    monotonic: Callable[[], float] = clock.monotonic,
    max_polls: int = 2000,
    first_shard: int = 0,
    reload_credentials: Callable[[], set[str]] | None = None,
) -> PollOutcome:
    """Poll every due shipment the time and the carriers' limits allow.

    ``sleep``, ``monotonic`` and ``time_left`` are the run's own seconds: real ones in Lambda; the
    local simulator installs simulated ones (``shared.clock.use_wait_clock``), so its runs repeat.
    ``first_shard``: the due-index shard read first (``cadence.first_shard(now)``).
    ``reload_credentials``: re-reads the credentials and returns the sources whose credentials
    changed; called at most once per run, when a carrier refuses ours (a rotation may have
    happened since they were read).
    """
    run = _Run(
        now=now,
        index=index,
        carriers=carriers,
        enqueue=enqueue,
        time_left=time_left,
        limits={**DEFAULT_RATE_LIMITS, **(rate_limits or {})},
        policy=policy,
        sleep=sleep,
        monotonic=monotonic,
        reload_credentials=reload_credentials,
        feed=_due_in_rotation(index, now, first_shard),
    )
    run.go(max_polls)
    return run.outcome


def _due_in_rotation(index: DueIndex, now: datetime, first: int) -> Iterator[DueShipment]:
    """Every shard's due shipments, starting at ``first``; each shard is only Queried once reached."""
    for step in range(SHARDS):
        yield from index.due_for_poll(f"POLL#{(first + step) % SHARDS}", now)


@dataclass
class _Run:
    now: datetime
    index: DueIndex
    carriers: Carriers
    enqueue: Enqueue
    time_left: Callable[[], float]
    limits: dict[str, tuple[float, float]]
    policy: PollPolicy
    sleep: Callable[[float], None]
    monotonic: Callable[[], float]
    reload_credentials: Callable[[], set[str]] | None
    feed: Iterator[DueShipment]
    outcome: PollOutcome = field(default_factory=PollOutcome)
    by_source: dict[str, _Carrier] = field(default_factory=dict)  # in order of first sight: the turn order
    queued: int = 0
    exhausted: bool = False
    turn: int = 0
    credentials_reloaded: bool = False

    # -- the loop --------------------------------------------------------------------------

    def go(self, max_polls: int) -> None:
        while self.time_left() >= SAFETY_MARGIN_SECONDS and self.outcome.counts["polled"] < max_polls:
            # keep a page in view (no more than can still be polled), so every carrier in it gets turns;
            # a rested carrier's shipments are re-armed as they are read, which takes time too
            room = min(LOOKAHEAD, max_polls - self.outcome.counts["polled"])
            while self.queued < room and self._may_read():
                self._read_one()
            carrier = self._next_ready()
            if carrier is not None:
                self._serve(carrier)
            elif self.queued < READ_AHEAD_LIMIT and self._may_read():
                self._read_one()  # every queued carrier has to wait: look for one that need not
            elif not self._wait_for_the_soonest():
                break
        if self.queued:
            self.outcome.counts["left_for_next_run"] += self.queued  # still due: the next run reads them

    def _may_read(self) -> bool:
        return not self.exhausted and self.time_left() >= SAFETY_MARGIN_SECONDS

    def _read_one(self) -> None:
        due = next(self.feed, None)
        if due is None:
            self.exhausted = True
            return
        self.outcome.counts["index_items_read"] += 1
        carrier = self.by_source.get(due.poll_source) or self._meet(due.poll_source)
        if carrier.rested_for is not None:
            self._rearm(due, self.now + carrier.rested_for, carrier.rested_as)
        else:
            carrier.queue.append(due)
            self.queued += 1

    def _meet(self, source: str) -> _Carrier:
        rate, burst = self.limits.get(source, (1.0, 1.0))
        carrier = _Carrier(source, TokenBucket(rate, burst, now=self.monotonic))
        if not self.carriers.has_credentials(source):
            carrier.rested_for, carrier.rested_as = RETRY_WITHOUT_CREDENTIALS, "no_credentials"
            self.outcome.problems.append(f"{source}: no credentials configured; its shipments wait 24 h")
        self.by_source[source] = carrier
        return carrier

    def _affordable(self, carrier: _Carrier, after: float = 0.0) -> bool:
        """Whether a fetch started ``after`` seconds from now would end before the margin."""
        worst = self.carriers.worst_case_seconds(carrier.source)
        return self.time_left() - after - SAFETY_MARGIN_SECONDS >= worst

    def _ready_in(self, carrier: _Carrier) -> float:
        rest = carrier.resting_until - self.monotonic()
        return max(carrier.bucket.wait_time(), rest if rest > _EPSILON else 0.0)

    def _waiting(self) -> list[_Carrier]:
        """Carriers with shipments queued that are not rested for the run."""
        return [c for c in self.by_source.values() if c.queue and c.rested_for is None]

    def _next_ready(self) -> _Carrier | None:
        """The next carrier in turn that can be called now, within the time left."""
        order = list(self.by_source.values())
        for step in range(len(order)):
            carrier = order[(self.turn + step) % len(order)]
            ready = carrier.queue and carrier.rested_for is None and not self._ready_in(carrier)
            if ready and self._affordable(carrier):
                self.turn = (self.turn + step + 1) % len(order)
                return carrier
        return None

    def _wait_for_the_soonest(self) -> bool:
        """Sleep until the first waiting carrier can be called; ``False`` when none can be in time."""
        waits = []
        for carrier in self._waiting():
            wait = self._ready_in(carrier)
            if self._affordable(carrier, after=wait):
                waits.append(wait)
        if not waits:
            return False
        self.sleep(max(min(waits), _EPSILON))
        return True

    # -- one fetch -------------------------------------------------------------------------

    def _serve(self, carrier: _Carrier) -> None:
        due = carrier.queue.popleft()
        self.queued -= 1
        carrier.bucket.take()
        source, counts = carrier.source, self.outcome.counts
        try:
            answer = self.carriers.fetch(source, due.poll_number)
        except CredentialsMissing:
            self._rearm(due, self.now + RETRY_WITHOUT_CREDENTIALS, "no_credentials")
            self._rest_for_run(carrier, RETRY_WITHOUT_CREDENTIALS, "no_credentials")
            return
        except CredentialsRefused as error:
            self._refused(carrier, due, error.detail)
            return
        except DependencyUnavailable as error:
            self.outcome.problems.append(f"{source}: {error.detail}")
            self._rearm(due, self.now + RETRY_AFTER_FAILURE, "failed")
            self._strike(carrier, RETRY_AFTER_FAILURE, why=error.detail)
            return
        counts["polled"] += 1
        counts[f"polled.{source}"] += 1
        if answer.status == 429:
            self._rate_limited(carrier, due, answer.retry_after)
        elif answer.status in (401, 403):
            self._refused(carrier, due, f"HTTP {answer.status}, credentials refused")
        elif answer.status >= 500:
            self._rearm(due, self.now + RETRY_AFTER_FAILURE, "failed")
            self._strike(carrier, RETRY_AFTER_FAILURE, why=f"HTTP {answer.status}")
        elif answer.status >= 400 and answer.status != 404:
            carrier.strikes = 0  # the carrier answers; it is this request it does not like
            self._rearm(due, self.now + RETRY_AFTER_FAILURE, "failed")
        else:
            carrier.strikes = 0
            self._answered(due, answer)

    def _answered(self, due: DueShipment, answer: Answer) -> None:
        digest = None
        if not answer.ok:
            self.outcome.counts["not_found"] += 1  # 404: nothing to ingest yet
        elif (digest := answer_digest(due.poll_source, answer.body)) == due.poll_digest:
            self.outcome.counts["unchanged"] += 1  # the very answer already enqueued: no news
        else:
            self.enqueue(due.poll_source, due.poll_number, due.shipment_id, answer.body)
            self.outcome.counts["enqueued"] += 1
        status = Milestone(due.status) if due.status else None
        created = _instant(due.created_at) or self.now
        following = next_poll(
            shipment_id=due.shipment_id,
            status=status,
            now=self.now,
            last_news_at=_instant(due.last_event_at) or created,
            last_push_at=_instant(due.last_push_at),
            policy=self.policy,
        )
        self._rearm(due, following, "rearmed" if following else "stopped", digest=digest)

    def _rate_limited(self, carrier: _Carrier, due: DueShipment, retry_after: float | None) -> None:
        """Rest the carrier until its Retry-After, then ask about this shipment again."""
        self.outcome.counts["rate_limited"] += 1
        carrier.queue.appendleft(due)
        self.queued += 1
        if retry_after is None:
            self._rest_for_run(carrier, RETRY_AFTER_RATE_LIMIT, "deferred")
            return
        carrier.resting_until = self.monotonic() + retry_after
        later = max(timedelta(seconds=retry_after), RETRY_AFTER_RATE_LIMIT)
        if self._strike(carrier, later, why=f"HTTP 429, Retry-After {retry_after:.0f} s"):
            return
        if not self._affordable(carrier, after=retry_after):
            self._rest_for_run(carrier, later, "deferred")  # the rest outlasts the run

    def _strike(self, carrier: _Carrier, later: timedelta, *, why: str) -> bool:
        """One more failure in a row; the third rests the carrier for the run (``True``)."""
        carrier.strikes += 1
        if carrier.strikes < STRIKES_TO_REST:
            return False
        self.outcome.problems.append(f"{carrier.source}: {carrier.strikes} failures in a row ({why}); rested")
        self._rest_for_run(carrier, later, "deferred")
        return True

    def _refused(self, carrier: _Carrier, due: DueShipment, detail: str) -> None:
        """Re-read the credentials once per run (a rotation may have happened): with new ones the
        shipment is asked about again; otherwise the carrier rests for an hour."""
        if self.reload_credentials is not None and not self.credentials_reloaded:
            self.credentials_reloaded = True
            try:
                changed = self.reload_credentials()
            except (DependencyUnavailable, NotFound) as error:
                self.outcome.problems.append(f"credentials could not be re-read: {error.detail}")
                changed = set()
            self.outcome.counts["credentials_reloaded"] += 1
            if carrier.source in changed and self.carriers.has_credentials(carrier.source):
                carrier.queue.appendleft(due)
                self.queued += 1
                return
        self.outcome.problems.append(f"{carrier.source}: {detail}")
        self._rearm(due, self.now + RETRY_AFTER_REFUSAL, "failed")
        self._rest_for_run(carrier, RETRY_AFTER_REFUSAL, "deferred")

    def _rest_for_run(self, carrier: _Carrier, later: timedelta, why: str) -> None:
        """Leave the carrier alone for the rest of the run; its shipments wait ``later``."""
        carrier.rested_for, carrier.rested_as = later, why
        self.outcome.counts["carriers_rested"] += 1
        while carrier.queue:
            self.queued -= 1
            self._rearm(carrier.queue.popleft(), self.now + later, why)

    def _rearm(self, due: DueShipment, next_due: datetime | None, why: str, digest: str | None = None) -> None:
        if self.index.rearm_poll(due, polled_at=self.now, next_due=next_due, digest=digest):
            self.outcome.counts[why] += 1
        else:
            self.outcome.counts["moved_by_processor"] += 1


# ------------------------------------------------------------------------------ wiring


@dataclass
class _Client:
    """A container's carrier client: its session and OAuth tokens outlive a run, its credentials
    are re-read after ``CREDENTIALS_TTL`` (and when a carrier refuses them)."""

    carriers: CarrierClient
    secret_id: str
    read_at: datetime

    def reload(self) -> set[str]:
        from shared.dal.carrier_api import carrier_credentials

        changed = self.carriers.use_credentials(carrier_credentials(self.secret_id))
        self.read_at = clock.now()
        return changed


# One per (secret, URLs) for the life of the container: the session's connections and the cached
# tokens are what make a warm run cheap. Never holds more than the deployment's one key.
_CLIENTS: dict[tuple[str, str], _Client] = {}


def run_poller(time_left: Callable[[], float]) -> PollOutcome:
    """One scheduled run against the resources and carriers named by the environment."""
    from shared.dal.carrier_api import carrier_credentials
    from shared.dal.ingress import archive_raw, enqueue
    from shared.dal.shipments import DynamoShipmentStore
    from shared.envelope import build_envelope
    from shared.logic.polling.cadence import first_shard
    from shared.settings import PollerSettings, load

    settings = load(PollerSettings)
    urls = json.loads(settings.carrier_api_urls) if settings.carrier_api_urls else {}
    limits = {k: (float(v[0]), float(v[1])) for k, v in json.loads(settings.carrier_rate_limits or "{}").items()}
    now = clock.now()
    cache_key = (settings.carrier_credentials_arn, settings.carrier_api_urls)
    cached = _CLIENTS.get(cache_key)
    stale: str | None = None
    if cached is None:
        secret_id = settings.carrier_credentials_arn
        cached = _Client(CarrierClient(urls, carrier_credentials(secret_id)), secret_id, now)
        _CLIENTS[cache_key] = cached
    elif now - cached.read_at >= CREDENTIALS_TTL:
        try:
            cached.reload()
        except (DependencyUnavailable, NotFound) as error:
            stale = f"credentials could not be re-read, polling with those read at {cached.read_at}: {error.detail}"

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

    outcome = poll_due(
        now=now,
        index=DynamoShipmentStore(settings.shipments_table),
        carriers=cached.carriers,
        enqueue=to_ingest,
        time_left=time_left,
        rate_limits=limits,
        first_shard=first_shard(now),
        reload_credentials=cached.reload,
    )
    if stale:
        outcome.problems.insert(0, stale)
    return outcome
