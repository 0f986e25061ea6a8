"""The carrier poller: only due shipments, never faster than a carrier allows, backing off."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

import pytest

from infra.formats.generic import generic_body, generic_event
from shared import clock
from shared.clock import FrozenClock
from shared.dal.carrier_api import Answer
from shared.logic.cadence import DEFAULT_POLICY, next_poll, poll_interval, shard_of
from shared.logic.commit import CommitOptions
from shared.logic.poll import poll_due
from shared.logic.process import commit_batch, stage
from shared.logic.ratelimit import TokenBucket
from shared.models.canonical import Milestone
from tests.builders import T0, envelope_json
from tests.fakes import InMemoryShipmentStore, RecordingPublisher

NOW = T0 + timedelta(days=1)
OPTIONS = CommitOptions(poll_sources=frozenset({"ups", "fedex", "usps"}))


@dataclass
class FakeCarriers:
    """Carrier APIs with a fake clock: records when each call was made."""

    answers: dict[str, list[int]] = field(default_factory=dict)  # source → statuses to answer, in turn
    credentials: set[str] = field(default_factory=lambda: {"ups", "fedex", "usps"})
    elapsed: float = 0.0
    calls: list[tuple[str, str, float]] = field(default_factory=list)

    def has_credentials(self, source: str) -> bool:
        return source in self.credentials

    def fetch(self, source: str, number: str) -> Answer:
        self.calls.append((source, number, self.elapsed))
        statuses = self.answers.get(source) or [200]
        status = statuses.pop(0) if len(statuses) > 1 else statuses[0]
        return Answer(status, b'{"tracking": "answer"}')

    def sleep(self, seconds: float) -> None:
        self.elapsed += seconds

    def monotonic(self) -> float:
        return self.elapsed


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


def run(store: InMemoryShipmentStore, carriers: FakeCarriers, *, at=NOW, time_left: float = 100.0, **kwargs):  # type: ignore[no-untyped-def]
    enqueued: list[tuple[str, str]] = []
    outcome = poll_due(
        now=at,
        index=store,
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
    store = InMemoryShipmentStore()
    shipments(store, *[("ups", f"1ZTIME00000000{i:02d}", "label_created", 0) for i in range(10)])
    carriers = FakeCarriers()
    outcome, enqueued = run(store, carriers, time_left=15.0, rate_limits={"ups": (1.0, 1.0)})
    assert 0 < len(enqueued) < 10
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
    assert len({shard_of(f"shp_{i}") for i in range(200)}) == 8


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
