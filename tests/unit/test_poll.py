"""The carrier poller: only due shipments, never faster than a carrier allows, backing off."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import pairwise

import pytest

from infra.formats import fedex as fedex_format
from infra.formats.generic import generic_body, generic_event
from infra.formats.scan import Leg, Parcel, Place, TrueScan
from shared import clock
from shared.clock import FrozenClock
from shared.dal.carrier_api import Answer, CredentialsRefused
from shared.dal.shipments import DueShipment
from shared.errors import DependencyUnavailable
from shared.logic.ingest.process import commit_batch, stage
from shared.logic.polling.cadence import (
    DEFAULT_POLICY,
    RUN_PERIOD,
    SHARDS,
    first_shard,
    next_poll,
    poll_interval,
    shard_of,
)
from shared.logic.polling.poller import SAFETY_MARGIN_SECONDS, STRIKES_TO_REST, answer_digest, poll_due
from shared.logic.polling.ratelimit import TokenBucket
from shared.logic.shipments.chain import CommitOptions
from shared.models.canonical import Milestone
from tests.builders import T0, envelope_json
from tests.fakes import InMemoryShipmentStore, RecordingPublisher

NOW = T0 + timedelta(days=1)
RENO = Place("Reno", "NV", "89502", "US", "America/Los_Angeles")
AKRON = Place("Akron", "OH", "44308", "US", "America/New_York")
OPTIONS = CommitOptions(poll_sources=frozenset({"ups", "fedex", "usps"}))
FAST = {"ups": (1000.0, 1000.0), "usps": (1000.0, 1000.0), "fedex": (1000.0, 1000.0)}

Reply = int | Answer | Exception


@dataclass
class FakeCarriers:
    """Carrier APIs on a fake clock: answer from a script, take their time, record each call."""

    answers: dict[str, list[Reply]] = field(default_factory=dict)  # source → replies in turn; the last repeats
    credentials: set[str] = field(default_factory=lambda: {"ups", "fedex", "usps"})
    slowness: dict[str, float] = field(default_factory=dict)  # source → seconds one call takes
    worst_case: dict[str, float] = field(default_factory=dict)  # source → worst_case_seconds (default 1 s)
    elapsed: float = 0.0
    calls: list[tuple[str, str, float]] = field(default_factory=list)  # (source, number, started at)

    def has_credentials(self, source: str) -> bool:
        return source in self.credentials

    def worst_case_seconds(self, source: str) -> float:
        return self.worst_case.get(source, 1.0)

    def fetch(self, source: str, number: str) -> Answer:
        self.calls.append((source, number, self.elapsed))
        self.elapsed += self.slowness.get(source, 0.0)
        replies = self.answers.get(source) or [200]
        reply = replies.pop(0) if len(replies) > 1 else replies[0]
        if isinstance(reply, Exception):
            raise reply
        return reply if isinstance(reply, Answer) else Answer(reply, b'{"tracking": "answer"}')

    def sleep(self, seconds: float) -> None:
        self.elapsed += seconds

    def monotonic(self) -> float:
        return self.elapsed

    def called(self, source: str) -> list[str]:
        return [number for s, number, _ in self.calls if s == source]


def shipments(store: InMemoryShipmentStore, *specs: tuple[str, str, str, float]) -> None:
    """Shipments as the processor leaves them: (carrier, number, generic code, hours after T0)."""
    for index, (carrier, number, code, hours) in enumerate(specs):
        body = generic_body(
            [generic_event(carrier=carrier, tracking_number=number, code=code, occurred_at=T0 + timedelta(hours=hours))]
        )
        with clock.use_clock(FrozenClock(T0 + timedelta(hours=hours, minutes=5))):
            staged = [
                stage(
                    f"m{index}", envelope_json("generic", body), attempt=1, store=store, read_archive=lambda b, k: b""
                )
            ]
            commit_batch(staged, store=store, publisher=RecordingPublisher(), options=OPTIONS)


def due_in_shard(store: InMemoryShipmentStore, shard: int, *specs: tuple[str, str]) -> None:
    """Labels (carrier, number) due in one shard, in the order given (one minute apart)."""
    shipments(store, *[(carrier, number, "label_created", 0) for carrier, number in specs])
    by_number = {s.tracking_number: s for s in store.shipments.values()}
    for position, (_, number) in enumerate(specs):
        shipment = by_number[number]
        store.shipments[shipment.shipment_id] = shipment.model_copy(
            update={"poll_shard": f"POLL#{shard}", "poll_due_at": T0 + timedelta(hours=1, minutes=position)}
        )


def due_at(store: InMemoryShipmentStore, number: str) -> datetime | None:
    (shipment,) = [s for s in store.shipments.values() if s.tracking_number == number]
    return shipment.poll_due_at


def run(store: InMemoryShipmentStore, carriers: FakeCarriers, *, at=NOW, time_left: float = 100.0, **kwargs):  # type: ignore[no-untyped-def]
    enqueued: list[tuple[str, str]] = []
    outcome = poll_due(
        now=at,
        index=kwargs.pop("index", store),
        carriers=carriers,
        enqueue=lambda source, number, shipment_id, body: enqueued.append((source, number)),
        time_left=lambda: time_left - carriers.elapsed,
        sleep=carriers.sleep,
        monotonic=carriers.monotonic,
        **kwargs,
    )
    return outcome, enqueued


def test_only_due_shipments_are_read_and_polled() -> None:
    # Given a label waiting for its first scan (due 6 h after creation), a parcel in transit
    # scanned an hour ago (due in 2 h), and a delivered one (out of the index)
    store = InMemoryShipmentStore()
    shipments(
        store,
        ("ups", "1ZLABEL000000001", "label_created", 0),
        ("fedex", "794611111111", "picked_up", 23),
        ("usps", "9400111111111111111111", "delivered", 2),
    )
    # When the poller runs a day after T0
    outcome, enqueued = run(store, FakeCarriers())
    # Then only the label was due: one index item read, one call, one answer queued
    assert enqueued == [("ups", "1ZLABEL000000001")]
    assert outcome.counts["index_items_read"] == 1
    assert store.index_reads == 1
    # and its next poll is one cadence later, so the next run finds nothing
    assert run(store, FakeCarriers())[1] == []


def test_a_delivered_shipment_leaves_the_index() -> None:
    store = InMemoryShipmentStore()
    shipments(store, ("ups", "1ZDONE0000000001", "out_for_delivery", 0))
    (shipment,) = store.shipments.values()
    assert shipment.poll_source == "ups"
    assert shipment.poll_due_at is not None
    assert timedelta(minutes=27) <= shipment.poll_due_at - shipment.updated_at <= timedelta(minutes=33)
    shipments(store, ("ups", "1ZDONE0000000001", "delivered", 2))
    (shipment,) = store.shipments.values()
    assert (shipment.poll_source, shipment.poll_due_at, shipment.poll_shard) == (None, None, None)


def test_a_carrier_answering_429_is_left_alone_for_the_rest_of_the_run() -> None:
    store = InMemoryShipmentStore()
    shipments(
        store,
        *[("ups", f"1ZRATE00000000{i:02d}", "label_created", 0) for i in range(5)],
        ("usps", "9400100000000000000001", "label_created", 0),
    )
    carriers = FakeCarriers(answers={"ups": [429]})
    outcome, enqueued = run(store, carriers)
    # Then UPS was called once and its other shipments wait, while USPS was still polled
    assert [c[0] for c in carriers.calls].count("ups") == 1
    assert ("usps", "9400100000000000000001") in enqueued
    assert outcome.counts["rate_limited"] == 1
    assert outcome.counts["deferred"] == 5  # the 429 one and the four after it
    later = {s.tracking_number: s.poll_due_at for s in store.shipments.values() if s.carrier == "ups"}
    assert all(due == NOW + timedelta(minutes=10) for due in later.values())


def test_never_faster_than_the_carrier_limit() -> None:
    store = InMemoryShipmentStore()
    shipments(store, *[("fedex", f"79461000{i:04d}", "label_created", 0) for i in range(12)])
    carriers = FakeCarriers()
    run(store, carriers, rate_limits={"fedex": (2.0, 3.0)})
    times = [at for source, _, at in carriers.calls]
    assert len(times) == 12
    # a burst of 3, then at most 2 per second: in any window of t seconds, at most 3 + 2t calls
    for i, start in enumerate(times):
        for j in range(i, len(times)):
            assert j - i + 1 <= 3 + 2 * (times[j] - start) + 1e-9


def test_a_source_without_credentials_is_not_called_and_waits_a_day() -> None:
    store = InMemoryShipmentStore()
    shipments(store, ("usps", "9400100000000000000002", "label_created", 0))
    carriers = FakeCarriers(credentials={"ups"})
    outcome, enqueued = run(store, carriers)
    assert carriers.calls == [] and enqueued == []
    assert outcome.counts["no_credentials"] == 1
    (shipment,) = store.shipments.values()
    assert shipment.poll_due_at == NOW + timedelta(hours=24)


def test_a_run_stops_before_the_function_would_time_out() -> None:
    # Given ten due UPS labels, UPS allowing one call a second, and 15 s left
    store = InMemoryShipmentStore()
    shipments(store, *[("ups", f"1ZTIME00000000{i:02d}", "label_created", 0) for i in range(10)])
    carriers = FakeCarriers()
    # When the poller runs
    outcome, enqueued = run(store, carriers, time_left=15.0, rate_limits={"ups": (1.0, 1.0)})
    # Then it polled what fits before the safety margin, and the rest stay due for the next run
    assert 0 < len(enqueued) < 10
    assert outcome.counts["left_for_next_run"] == 10 - len(enqueued)
    still_due = [s for s in store.shipments.values() if s.poll_due_at and s.poll_due_at <= NOW]
    assert len(still_due) == 10 - len(enqueued)


def test_no_fetch_starts_that_could_outlive_the_function() -> None:
    # Given calls that each take their whole worst case (20 s), and 100 s left
    store = InMemoryShipmentStore()
    shipments(store, *[("usps", f"94001000000000000000{i:02d}", "label_created", 0) for i in range(10)])
    carriers = FakeCarriers(slowness={"usps": 20.0}, worst_case={"usps": 20.0})
    # When the poller runs
    outcome, _ = run(store, carriers, time_left=100.0, rate_limits=FAST)
    # Then every call started early enough to end before the safety margin, and no later one started
    starts = [at for _, _, at in carriers.calls]
    assert starts and all(at + 20.0 <= 100.0 - SAFETY_MARGIN_SECONDS for at in starts)
    assert starts[-1] + 20.0 + 20.0 > 100.0 - SAFETY_MARGIN_SECONDS
    assert outcome.counts["left_for_next_run"] == 10 - len(starts)


def test_a_carrier_whose_worst_case_does_not_fit_waits_while_the_others_are_polled() -> None:
    # Given UPS needs a token first (worst case 98 s) and USPS does not (49 s), with 80 s left
    store = InMemoryShipmentStore()
    due_in_shard(store, 0, ("ups", "1ZBUDGET00000001"), ("usps", "9400100000000000000010"))
    carriers = FakeCarriers(worst_case={"ups": 98.0, "usps": 49.0})
    # When the poller runs
    outcome, enqueued = run(store, carriers, time_left=80.0, rate_limits=FAST)
    # Then USPS was polled, UPS was not called, and its shipment is still due (not pushed back)
    assert enqueued == [("usps", "9400100000000000000010")]
    assert carriers.called("ups") == []
    assert due_at(store, "1ZBUDGET00000001") == T0 + timedelta(hours=1)
    assert outcome.counts["left_for_next_run"] == 1


def test_server_errors_retry_sooner_and_not_found_keeps_the_cadence() -> None:
    store = InMemoryShipmentStore()
    shipments(
        store, ("ups", "1ZERR00000000001", "label_created", 0), ("usps", "9400100000000000000003", "label_created", 0)
    )
    outcome, enqueued = run(store, FakeCarriers(answers={"ups": [503], "usps": [404]}))
    assert enqueued == []
    by_number = {s.tracking_number: s.poll_due_at for s in store.shipments.values()}
    assert by_number["1ZERR00000000001"] == NOW + timedelta(minutes=15)
    assert by_number["9400100000000000000003"] is not None
    assert by_number["9400100000000000000003"] > NOW + timedelta(hours=5)


class SlowWrites(InMemoryShipmentStore):
    """The store, where each due-index write takes half a second of the carriers' fake clock."""

    def __init__(self, carriers: FakeCarriers) -> None:
        super().__init__()
        self.carriers = carriers

    def rearm_poll(
        self, due: DueShipment, *, polled_at: datetime, next_due: datetime | None, digest: str | None = None
    ) -> bool:
        self.carriers.elapsed += 0.5
        return super().rearm_poll(due, polled_at=polled_at, next_due=next_due, digest=digest)


def test_re_arming_a_rested_carriers_backlog_stops_in_time() -> None:
    # Given 60 USPS labels due but no USPS credentials, and each index write taking half a second
    carriers = FakeCarriers(credentials={"ups"})
    store = SlowWrites(carriers)
    due_in_shard(store, 0, *[("usps", f"94001000000000000005{i:02d}") for i in range(60)])
    # When the poller runs with 30 s left
    outcome, _ = run(store, carriers, time_left=30.0)
    # Then it stopped re-arming at the safety margin; the others simply stay due
    assert carriers.elapsed <= 30.0 - SAFETY_MARGIN_SECONDS + 0.5
    assert 0 < outcome.counts["no_credentials"] < 60


# ------------------------------------------------------------------------------ one carrier never holds up the others


def test_a_rate_limited_carrier_does_not_hold_up_the_others() -> None:
    # Given ten UPS labels due first and three USPS labels behind them; UPS allows 1 call a second
    store = InMemoryShipmentStore()
    ups = [("ups", f"1ZQUEUE00000000{i:02d}") for i in range(10)]
    usps = [("usps", f"94001000000000000001{i:02d}") for i in range(3)]
    due_in_shard(store, 0, *ups, *usps)
    carriers = FakeCarriers()
    # When the poller runs
    _, enqueued = run(store, carriers, rate_limits={"ups": (1.0, 1.0), "usps": (100.0, 100.0)})
    # Then USPS was asked while UPS waited for its tokens, within the first second, and all were polled
    assert all(at < 1.0 for source, _, at in carriers.calls if source == "usps")
    assert len(enqueued) == 13


def test_a_slow_carrier_takes_one_turn_at_a_time() -> None:
    # Given FedEx takes 5 s per answer and its four labels are due before UPS's four
    store = InMemoryShipmentStore()
    due_in_shard(
        store,
        0,
        *[("fedex", f"79461000{i:04d}") for i in range(4)],
        *[("ups", f"1ZSLOW00000000{i:02d}") for i in range(4)],
    )
    carriers = FakeCarriers(slowness={"fedex": 5.0})
    # When the poller runs
    run(store, carriers, rate_limits=FAST)
    # Then the carriers took turns: UPS did not wait for all of FedEx's answers
    assert [source for source, _, _ in carriers.calls] == ["fedex", "ups"] * 4


def test_a_failing_carrier_is_rested_after_three_failures_in_a_row() -> None:
    # Given UPS is unreachable, with six labels due, and USPS fine with two
    store = InMemoryShipmentStore()
    due_in_shard(
        store,
        0,
        *[("ups", f"1ZDOWN00000000{i:02d}") for i in range(6)],
        ("usps", "9400100000000000000201"),
        ("usps", "9400100000000000000202"),
    )
    carriers = FakeCarriers(answers={"ups": [DependencyUnavailable("ups unreachable: ConnectTimeout")]})
    # When the poller runs
    outcome, enqueued = run(store, carriers, rate_limits=FAST)
    # Then UPS was tried three times and then left alone; USPS was polled
    assert len(carriers.called("ups")) == STRIKES_TO_REST
    assert [number for source, number in enqueued if source == "usps"] == [
        "9400100000000000000201",
        "9400100000000000000202",
    ]
    assert outcome.counts["carriers_rested"] == 1
    assert any("ups: 3 failures in a row" in p for p in outcome.problems)
    # and none of UPS's shipments was lost: all six come back in 15 minutes
    assert {due_at(store, f"1ZDOWN00000000{i:02d}") for i in range(6)} == {NOW + timedelta(minutes=15)}
    assert (outcome.counts["failed"], outcome.counts["deferred"]) == (3, 3)


def test_server_errors_count_as_failures_and_an_answer_resets_the_count() -> None:
    # Given UPS answers 503, 503, 200, 503, 503, 200 … (never three failures in a row)
    store = InMemoryShipmentStore()
    due_in_shard(store, 0, *[("ups", f"1ZFLAKY0000000{i:02d}") for i in range(6)])
    carriers = FakeCarriers(answers={"ups": [503, 503, 200, 503, 503, 200]})
    # When the poller runs
    outcome, enqueued = run(store, carriers, rate_limits=FAST)
    # Then UPS was never rested: every shipment was asked about
    assert len(carriers.called("ups")) == 6
    assert outcome.counts["carriers_rested"] == 0
    assert len(enqueued) == 2


def test_a_retry_after_rests_the_carrier_until_then_and_the_shipment_is_asked_again() -> None:
    # Given UPS answers 429 "retry in 30 s" once; three UPS and two USPS labels are due
    store = InMemoryShipmentStore()
    due_in_shard(
        store,
        0,
        *[("ups", f"1ZRETRY0000000{i:02d}") for i in range(3)],
        ("usps", "9400100000000000000301"),
        ("usps", "9400100000000000000302"),
    )
    carriers = FakeCarriers(answers={"ups": [Answer(429, b"{}", retry_after=30.0), 200]})
    # When the poller runs
    outcome, enqueued = run(store, carriers, rate_limits=FAST)
    # Then UPS was not called again for 30 s, and then about the same shipment first
    ups_calls = [(number, at) for source, number, at in carriers.calls if source == "ups"]
    assert ups_calls[0][0] == ups_calls[1][0] == "1ZRETRY000000000"
    assert ups_calls[1][1] - ups_calls[0][1] >= 30.0
    # while USPS was polled during the rest; in the end every shipment was polled
    assert all(at < 30.0 for source, _, at in carriers.calls if source == "usps")
    assert len(enqueued) == 5
    assert outcome.counts["rate_limited"] == 1


def test_a_retry_after_longer_than_the_run_rests_the_carrier_and_its_shipments_wait_that_long() -> None:
    # Given UPS answers 429 "retry in an hour"
    store = InMemoryShipmentStore()
    due_in_shard(store, 0, *[("ups", f"1ZHOUR0000000{i:03d}") for i in range(3)])
    carriers = FakeCarriers(answers={"ups": [Answer(429, b"{}", retry_after=3600.0)]})
    # When the poller runs
    outcome, _ = run(store, carriers, rate_limits=FAST)
    # Then UPS was called once, and its shipments are due again in an hour, none lost
    assert len(carriers.called("ups")) == 1
    assert {due_at(store, f"1ZHOUR0000000{i:03d}") for i in range(3)} == {NOW + timedelta(hours=1)}
    assert outcome.counts["deferred"] == 3


def test_repeated_429s_rest_the_carrier_for_the_run() -> None:
    # Given UPS answers every call with 429 "retry in 2 s"
    store = InMemoryShipmentStore()
    due_in_shard(store, 0, *[("ups", f"1ZAGAIN000000{i:03d}") for i in range(5)])
    carriers = FakeCarriers(answers={"ups": [Answer(429, b"{}", retry_after=2.0)]})
    # When the poller runs
    outcome, _ = run(store, carriers, rate_limits=FAST)
    # Then three tries 2 s apart, then UPS is rested and all five wait the short back-off
    times = [at for source, _, at in carriers.calls if source == "ups"]
    assert len(times) == STRIKES_TO_REST
    assert all(later - earlier >= 2.0 for earlier, later in pairwise(times))
    assert {due_at(store, f"1ZAGAIN000000{i:03d}") for i in range(5)} == {NOW + timedelta(minutes=10)}


# ------------------------------------------------------------------------------ shards


@dataclass
class CountingIndex:
    """The store, counting due-index Queries (a shard's Query starts when its items are first read)."""

    store: InMemoryShipmentStore
    queried: list[str] = field(default_factory=list)

    def due_for_poll(self, shard: str, now: datetime, page_size: int = 100) -> Iterator[DueShipment]:
        self.queried.append(shard)
        yield from self.store.due_for_poll(shard, now, page_size)

    def rearm_poll(
        self, due: DueShipment, *, polled_at: datetime, next_due: datetime | None, digest: str | None = None
    ) -> bool:
        return self.store.rearm_poll(due, polled_at=polled_at, next_due=next_due, digest=digest)


def test_an_empty_run_queries_each_shard_once_starting_at_the_rotated_one() -> None:
    # Given nothing is due
    index = CountingIndex(InMemoryShipmentStore())
    # When a run starts at shard 3
    outcome, _ = run(index.store, FakeCarriers(), index=index, first_shard=3)
    # Then one Query per shard, from shard 3 round to shard 2, and nothing read
    assert index.queried == [f"POLL#{(3 + i) % SHARDS}" for i in range(SHARDS)]
    assert outcome.counts["index_items_read"] == 0


def test_a_run_reads_each_due_shipment_once() -> None:
    # Given 40 labels due across the shards, and USPS slow to refill its bucket
    store = InMemoryShipmentStore()
    shipments(store, *[("usps" if i % 3 else "ups", f"1ZONCE00000000{i:02d}", "label_created", 0) for i in range(40)])
    index = CountingIndex(store)
    # When the poller runs
    outcome, enqueued = run(store, FakeCarriers(), index=index, rate_limits={"usps": (2.0, 2.0)})
    # Then every shipment was read once and polled once, in one Query per shard
    assert len(enqueued) == outcome.counts["index_items_read"] == store.index_reads == 40
    assert sorted(index.queried) == [f"POLL#{i}" for i in range(SHARDS)]


def test_a_backlog_in_shard_0_does_not_starve_the_last_shard() -> None:
    # Given a UPS backlog in shard 0 larger than the runs below can poll, and one UPS label in the last shard
    store = InMemoryShipmentStore()
    last = SHARDS - 1
    due_in_shard(store, 0, *[("ups", f"1ZBACKLOG00{i:05d}") for i in range(100)])
    due_in_shard(store, last, ("ups", "1ZSHARD700000007"))
    polled_at: list[int] = []
    # When the schedule fires once per shard, each run polling at most 10 shipments
    for run_number in range(SHARDS):
        at = NOW + RUN_PERIOD * run_number
        carriers = FakeCarriers()
        run(store, carriers, at=at, max_polls=10, first_shard=first_shard(at))
        if "1ZSHARD700000007" in carriers.called("ups"):
            polled_at.append(run_number)
    # Then the last shard's label was polled in one of them
    assert len(polled_at) == 1


def test_consecutive_runs_start_at_every_shard() -> None:
    starts = [first_shard(NOW + RUN_PERIOD * i) for i in range(SHARDS)]
    assert sorted(starts) == list(range(SHARDS))


# ------------------------------------------------------------------------------ credentials


@dataclass
class RotatingCredentials:
    """The CarrierCredentials secret as the poller re-reads it; the carrier accepts only the current one."""

    carriers: FakeCarriers
    rotated: set[str] = field(default_factory=set)  # sources whose new credentials are in the secret
    reads: int = 0

    def reload(self) -> set[str]:
        self.reads += 1
        for source in self.rotated:
            self.carriers.answers[source] = [200]
        return set(self.rotated)


def test_refused_credentials_are_re_read_once_and_a_rotation_is_picked_up() -> None:
    # Given UPS refuses the credentials the poller holds, and the secret already has new ones
    store = InMemoryShipmentStore()
    due_in_shard(store, 0, ("ups", "1ZROTATE00000001"), ("ups", "1ZROTATE00000002"))
    carriers = FakeCarriers(answers={"ups": [CredentialsRefused("ups refused our credentials (HTTP 401)")]})
    secret = RotatingCredentials(carriers, rotated={"ups"})
    # When the poller runs
    outcome, enqueued = run(store, carriers, rate_limits=FAST, reload_credentials=secret.reload)
    # Then it re-read the secret once, asked about the same shipment again, and polled both
    assert secret.reads == 1
    assert carriers.called("ups") == ["1ZROTATE00000001", "1ZROTATE00000001", "1ZROTATE00000002"]
    assert enqueued == [("ups", "1ZROTATE00000001"), ("ups", "1ZROTATE00000002")]
    assert outcome.counts["credentials_reloaded"] == 1


def test_credentials_refused_after_a_re_read_rest_the_carrier_for_an_hour() -> None:
    # Given UPS and FedEx both refuse, and the secret holds nothing new
    store = InMemoryShipmentStore()
    due_in_shard(store, 0, ("ups", "1ZREFUSED0000001"), ("fedex", "794610000001"), ("ups", "1ZREFUSED0000002"))
    refused = CredentialsRefused("refused our credentials (HTTP 401)")
    carriers = FakeCarriers(answers={"ups": [refused], "fedex": [Answer(403, b"{}")]})
    secret = RotatingCredentials(carriers)
    # When the poller runs
    outcome, enqueued = run(store, carriers, rate_limits=FAST, reload_credentials=secret.reload)
    # Then the secret was read once for the whole run, each carrier tried once, and their shipments wait an hour
    assert secret.reads == 1
    assert (len(carriers.called("ups")), len(carriers.called("fedex"))) == (1, 1)
    assert enqueued == []
    for number in ("1ZREFUSED0000001", "794610000001", "1ZREFUSED0000002"):
        assert due_at(store, number) == NOW + timedelta(hours=1)
    assert any("fedex: HTTP 403" in p for p in outcome.problems)


def test_a_secret_that_cannot_be_re_read_does_not_end_the_run() -> None:
    # Given UPS refuses, and Secrets Manager is unavailable; USPS is fine
    store = InMemoryShipmentStore()
    due_in_shard(store, 0, ("ups", "1ZNOSECRET000001"), ("usps", "9400100000000000000401"))
    carriers = FakeCarriers(answers={"ups": [CredentialsRefused("ups refused our credentials (HTTP 401)")]})

    def unavailable() -> set[str]:
        raise DependencyUnavailable("read carrier credentials: AWS is throttling or unavailable")

    # When the poller runs
    outcome, enqueued = run(store, carriers, rate_limits=FAST, reload_credentials=unavailable)
    # Then USPS was polled, UPS waits an hour, and the problem is reported
    assert enqueued == [("usps", "9400100000000000000401")]
    assert due_at(store, "1ZNOSECRET000001") == NOW + timedelta(hours=1)
    assert any("could not be re-read" in p for p in outcome.problems)


def test_silent_for_30_days_stops_polling() -> None:
    store = InMemoryShipmentStore()
    shipments(store, ("ups", "1ZSILENT00000001", "label_created", 0))
    (shipment,) = store.shipments.values()
    store.shipments[shipment.shipment_id] = shipment.model_copy(update={"poll_due_at": T0 + timedelta(days=31)})
    outcome, _ = run(store, FakeCarriers(), at=T0 + timedelta(days=31, minutes=1))
    assert outcome.counts["stopped"] == 1
    (shipment,) = store.shipments.values()
    assert shipment.poll_due_at is None


@pytest.mark.parametrize(
    ("status", "interval"),
    [
        (None, timedelta(hours=6)),
        (Milestone.LABEL_CREATED, timedelta(hours=6)),
        (Milestone.ARRIVED_HUB, timedelta(hours=3)),
        (Milestone.OUT_FOR_DELIVERY, timedelta(minutes=30)),
        (Milestone.DELIVERY_FAILED, timedelta(minutes=30)),
        (Milestone.DELIVERED, None),
        (Milestone.RETURN_DELIVERED, None),
    ],
)
def test_cadence_follows_the_status(status: Milestone | None, interval: timedelta | None) -> None:
    assert poll_interval(status) == interval


def test_a_flowing_webhook_makes_polls_rarer_and_jitter_stays_bounded() -> None:
    base = next_poll(shipment_id="shp_a", status=Milestone.IN_TRANSIT, now=NOW, last_news_at=NOW, last_push_at=None)
    pushed = next_poll(
        shipment_id="shp_a",
        status=Milestone.IN_TRANSIT,
        now=NOW,
        last_news_at=NOW,
        last_push_at=NOW - timedelta(hours=2),
    )
    assert base is not None and pushed is not None
    assert (pushed - NOW) / (base - NOW) == pytest.approx(DEFAULT_POLICY.push_flowing_factor)
    for shipment_id in ("shp_a", "shp_b", "shp_c", "shp_d"):
        due = next_poll(
            shipment_id=shipment_id, status=Milestone.IN_TRANSIT, now=NOW, last_news_at=NOW, last_push_at=None
        )
        assert due is not None and timedelta(hours=2.7) <= due - NOW <= timedelta(hours=3.3)
    assert len({shard_of(f"shp_{i}") for i in range(200)}) == SHARDS


def test_token_bucket_refills_at_its_rate() -> None:
    now = [0.0]
    bucket = TokenBucket(rate=2.0, burst=2.0, now=lambda: now[0])
    bucket.take()
    bucket.take()
    assert bucket.wait_time() == pytest.approx(0.5)
    now[0] = 0.5
    bucket.take()
    with pytest.raises(RuntimeError):
        bucket.take()


def _fedex_answer(number: str, scans: list[TrueScan], now: datetime) -> Answer:
    parcel = Parcel((Leg("fedex", number),), RENO, AKRON)
    return Answer(200, fedex_format.poll_response(parcel, scans, now=now))


def test_an_answer_saying_nothing_new_is_not_ingested_again() -> None:
    # Given a FedEx parcel in transit, due for its poll, whose answer carries a fresh
    # transactionId on every request
    store = InMemoryShipmentStore()
    number = "794644440001"
    shipments(store, ("fedex", number, "picked_up", 0))
    picked = TrueScan("picked_up", T0, RENO)
    moved = TrueScan("in_transit", T0 + timedelta(hours=20), RENO)
    carriers = FakeCarriers(
        answers={
            "fedex": [
                _fedex_answer(number, [picked], T0 + timedelta(hours=3)),
                _fedex_answer(number, [picked], T0 + timedelta(hours=6)),
                _fedex_answer(number, [picked, moved], T0 + timedelta(hours=21)),
            ]
        }
    )
    first = fedex_format.poll_response(Parcel((Leg("fedex", number),), RENO, AKRON), [picked], now=T0)
    second = fedex_format.poll_response(Parcel((Leg("fedex", number),), RENO, AKRON), [picked], now=T0 + timedelta(1))
    assert first != second  # the bytes differ; what they say does not
    # When the poller asks three times, each time the shipment is due
    outcomes = []
    for hours in (3, 6, 21):
        (shipment,) = store.shipments.values()
        store.shipments[shipment.shipment_id] = shipment.model_copy(
            update={"poll_due_at": T0 + timedelta(hours=hours), "poll_shard": shipment.poll_shard or "POLL#0"}
        )
        outcomes.append(run(store, carriers, at=T0 + timedelta(hours=hours, minutes=1), rate_limits=FAST))
    # Then the first answer and the one with the new scan are ingested, the repeat is not,
    # and every poll still moved the shipment's due time on
    assert [enqueued for _, enqueued in outcomes] == [[("fedex", number)], [], [("fedex", number)]]
    assert [outcome.counts["unchanged"] for outcome, _ in outcomes] == [0, 1, 0]
    assert all(outcome.counts["rearmed"] == 1 for outcome, _ in outcomes)


def test_an_answer_no_adapter_reads_is_told_apart_by_its_bytes() -> None:
    # A body the processor will quarantine is still ingested once per distinct body
    assert answer_digest("fedex", b"<html>maintenance</html>") == answer_digest("fedex", b"<html>maintenance</html>")
    assert answer_digest("fedex", b"<html>maintenance</html>") != answer_digest("fedex", b"<html>back soon</html>")
