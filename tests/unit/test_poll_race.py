"""A poll in flight while the processor commits news for the same shipment."""

from __future__ import annotations

from datetime import timedelta

from infra.formats.generic import generic_body, generic_event
from shared import clock
from shared.clock import FrozenClock
from shared.logic.ingest.process import commit_batch, stage
from shared.logic.polling.cadence import SHARDS
from shared.logic.shipments.chain import CommitOptions
from tests.builders import T0, envelope_json
from tests.fakes import InMemoryShipmentStore, RecordingPublisher

OPTIONS = CommitOptions(poll_sources=frozenset({"ups"}))
NUMBER = "1Z4Y0A190348261953"


def deliver(store: InMemoryShipmentStore, code: str, hours: float) -> None:
    body = generic_body(
        [generic_event(carrier="ups", tracking_number=NUMBER, code=code, occurred_at=T0 + timedelta(hours=hours))]
    )
    with clock.use_clock(FrozenClock(T0 + timedelta(hours=hours, minutes=1))):
        staged = [stage("m", envelope_json("generic", body), attempt=1, store=store, read_archive=lambda b, k: b"")]
        commit_batch(staged, store=store, publisher=RecordingPublisher(), options=OPTIONS)


def test_news_committed_during_a_poll_wins_over_the_pollers_stale_cadence() -> None:
    store = InMemoryShipmentStore()
    deliver(store, "handed_to_carrier", 0)
    (shipment,) = store.shipments.values()
    assert shipment.poll_due_at is not None
    # Given the poller read the shipment as due (in transit, so its next poll would be hours away)
    polled_at = shipment.poll_due_at + timedelta(minutes=1)
    (due,) = [d for shard in range(SHARDS) for d in store.due_for_poll(f"POLL#{shard}", polled_at)]
    # When "out for delivery" is committed while the carrier call is in flight
    deliver(store, "out_for_delivery", (polled_at - T0).total_seconds() / 3600)
    after_news = store.shipments[shipment.shipment_id].poll_due_at
    # Then the poller's re-arm, computed from the stale status, does not apply
    assert not store.rearm_poll(due, polled_at=polled_at, next_due=polled_at + timedelta(hours=3))
    kept = store.shipments[shipment.shipment_id].poll_due_at
    assert kept == after_news
    assert kept is not None and kept - polled_at <= timedelta(minutes=35)
