"""Batch processing on in-memory fakes: idempotency, ordering, crash safety, quarantine."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest

from shared import clock
from shared.clock import FrozenClock
from shared.errors import DependencyUnavailable
from shared.logic.ingest.process import BatchOutcome, Staged, commit_batch, stage
from shared.logic.shipments.chain import MILESTONE_REACHED
from shared.models.canonical import Milestone
from shared.models.shipment import TrackingKey
from tests.builders import T0, envelope_json, generic_scans
from tests.fakes import InMemoryShipmentStore, ProcessCrash, RecordingPublisher

KEY = TrackingKey("ups", "1Z4Y0A190348261953")
JOURNEY = [
    ("packed", 0),
    ("handed_to_carrier", 6),
    ("arrived_hub", 20),
    ("out_for_delivery", 44),
    ("delivered", 49),
]


body_of = generic_scans


class Harness:
    def __init__(self) -> None:
        self.store = InMemoryShipmentStore()
        self.publisher = RecordingPublisher()
        self.clock = FrozenClock(T0 + timedelta(days=3))
        self.archive: dict[tuple[str, str], bytes] = {}

    def deliver(self, *bodies: bytes, attempt: int = 1, message_ids: list[str] | None = None) -> BatchOutcome:
        """One event_processor invocation over one message per body."""
        with clock.use_clock(self.clock):
            staged: list[Staged] = [
                stage(
                    (message_ids or [f"m{i}" for i in range(len(bodies))])[i],
                    envelope_json("generic", body),
                    attempt=attempt,
                    store=self.store,
                    read_archive=lambda bucket, key: self.archive[(bucket, key)],
                )
                for i, body in enumerate(bodies)
            ]
            return commit_batch(staged, store=self.store, publisher=self.publisher)

    def shipment(self):  # type: ignore[no-untyped-def]
        (shipment_id,) = self.store.shipments
        return self.store.shipments[shipment_id]

    def published_milestones(self) -> list[str]:
        return [entry.detail["milestone"] for entry in self.publisher.published]


def test_the_same_webhook_delivered_ten_times_stores_one_event_and_publishes_one_change() -> None:
    harness = Harness()
    body = body_of(("handed_to_carrier", 6))
    outcomes = [harness.deliver(body) for _ in range(5)] + [harness.deliver(*[body] * 5)]
    assert sum(len(events) for events in harness.store.events.values()) == 1
    assert harness.published_milestones() == ["picked_up"]
    assert sum(o.counts["events_stored"] for o in outcomes) == 1
    assert sum(o.counts["duplicates_dropped"] for o in outcomes) == 9
    assert not any(o.failed_message_ids for o in outcomes)


def test_an_unknown_tracking_number_creates_its_shipment() -> None:
    harness = Harness()
    harness.deliver(body_of(("packed", 0)))
    shipment = harness.shipment()
    assert shipment.key == KEY
    assert shipment.status is Milestone.LABEL_CREATED
    assert len(shipment.public_token) >= 22  # ≥ 128 random bits, URL-safe
    assert harness.store.tracking == {KEY: shipment.shipment_id}


@pytest.mark.parametrize("order", list(itertools.permutations(range(5))))
def test_every_permutation_of_five_deliveries_gives_the_same_shipment(order: tuple[int, ...]) -> None:
    # Given five webhooks of one parcel, each carrying one scan, arriving in this order
    harness = Harness()
    for index in order:
        harness.deliver(body_of(JOURNEY[index]))
    shipment = harness.shipment()
    # Then the status and the timeline are those of the journey, whatever the order
    assert shipment.status is Milestone.DELIVERED
    assert shipment.event_count == 5
    assert shipment.last_event_at == T0 + timedelta(hours=49)
    # and every published change moved forward from what had been announced before
    sequences = [entry.sequence for entry in harness.publisher.published]
    assert sequences == list(range(1, len(sequences) + 1))
    assert harness.published_milestones()[-1] == "delivered"


def test_a_crash_between_the_write_and_the_publish_publishes_exactly_once_after_the_retry() -> None:
    harness = Harness()
    body = body_of(*JOURNEY[:3])
    # Given the process dies after the transaction and before PutEvents
    harness.publisher.crash_next = ProcessCrash()
    with pytest.raises(ProcessCrash):
        harness.deliver(body)
    assert harness.publisher.published == []
    assert len(harness.store.outbox[harness.shipment().shipment_id]) == 3  # committed, not yet published
    # When SQS delivers the same message again
    outcome = harness.deliver(body, attempt=2)
    # Then each change is published once, and the outbox is empty
    assert harness.published_milestones() == ["label_created", "picked_up", "arrived_hub"]
    assert outcome.counts["duplicates_dropped"] == 3
    assert outcome.counts["changes_published"] == 3
    assert harness.store.outbox[harness.shipment().shipment_id] == {}
    # and a further redelivery publishes nothing more
    harness.deliver(body, attempt=3)
    assert len(harness.publisher.published) == 3


def test_leftovers_of_a_processor_still_running_are_not_taken() -> None:
    harness = Harness()
    harness.publisher.crash_next = ProcessCrash()
    with pytest.raises(ProcessCrash):
        harness.deliver(body_of(("packed", 0)))
    # A first delivery of another message for the shipment, moments later: the entry may
    # belong to a processor that is still running, so it is left for that one.
    harness.deliver(body_of(("arrived_hub", 20)))
    assert harness.published_milestones() == ["arrived_hub"]
    # Once it is older than any invocation can run, anyone drains it.
    harness.clock.advance(timedelta(minutes=2))
    harness.deliver(body_of(("delivered", 49)))
    assert sorted(harness.published_milestones()) == ["arrived_hub", "delivered", "label_created"]


def test_a_change_the_bus_rejects_fails_its_messages_and_is_published_on_the_retry() -> None:
    harness = Harness()
    other = body_of(("packed", 0), tracking_number="1Z999AA10123456784")
    harness.publisher.reject_next = 1
    outcome = harness.deliver(body_of(("packed", 0)), other, message_ids=["mine", "other"])
    assert outcome.failed_message_ids in ({"mine"}, {"other"})
    failed = outcome.failed_message_ids.pop()
    retry = harness.deliver(body_of(("packed", 0)) if failed == "mine" else other, attempt=2)
    assert not retry.failed_message_ids
    assert sorted(harness.published_milestones()) == ["label_created", "label_created"]


def test_a_shipment_that_cannot_be_committed_fails_only_its_own_messages() -> None:
    harness = Harness()
    harness.store.fail_next_commit = DependencyUnavailable("throttled")
    outcome = harness.deliver(
        body_of(("packed", 0)), body_of(("packed", 0), tracking_number="1Z999AA10123456784"), message_ids=["a", "b"]
    )
    assert len(outcome.failed_message_ids) == 1
    assert outcome.counts["events_stored"] == 1


def test_a_concurrent_change_is_retried_on_the_fresh_record() -> None:
    harness = Harness()
    harness.deliver(body_of(("packed", 0)))
    # Given another processor bumps the record between our read and our write
    original = harness.store.commit
    calls = {"n": 0}

    def racing_commit(commit):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 1:
            shipment = harness.shipment()
            harness.store.shipments[shipment.shipment_id] = shipment.model_copy(
                update={"version": shipment.version + 1}
            )
        original(commit)

    harness.store.commit = racing_commit  # type: ignore[method-assign]
    outcome = harness.deliver(body_of(("handed_to_carrier", 6)))
    assert not outcome.failed_message_ids
    assert calls["n"] == 2
    assert harness.shipment().status is Milestone.PICKED_UP


def test_a_late_older_scan_of_the_current_status_is_history_not_news() -> None:
    harness = Harness()
    harness.deliver(body_of(("packed", 0), ("handed_to_carrier", 6), ("in_transit", 20)))
    announced = harness.published_milestones()
    # When a poll backfills an in-transit scan older than the one already announced
    harness.deliver(body_of(("in_transit", 10)))
    # Then the timeline has it, and nobody is told about in-transit twice
    assert harness.shipment().event_count == 4
    assert harness.published_milestones() == announced


def test_a_verified_payload_no_adapter_can_read_is_quarantined_not_retried() -> None:
    harness = Harness()
    off_schema = b'{"schema":"shiplight.generic.v1","events":[{"carrier":"ups","code":"packed"}]}'
    outcome = harness.deliver(off_schema)
    assert outcome.failed_message_ids == set()
    assert outcome.counts["quarantined"] == 1
    (record,) = harness.store.quarantined
    assert record.source == "generic"
    assert "tracking_number" in record.reason
    assert record.archive_key.startswith("raw/generic/")


def test_a_long_history_is_committed_in_slices_and_announced_in_order() -> None:
    harness = Harness()
    scans = [("arrived_hub" if i % 2 else "in_transit", i) for i in range(120)]
    outcome = harness.deliver(body_of(("packed", -1), *scans))
    assert outcome.counts["events_stored"] == 121
    assert harness.store.commits >= 3
    sequences = [entry.sequence for entry in harness.publisher.published]
    assert sequences == sorted(sequences) == list(range(1, len(sequences) + 1))


def test_published_detail_carries_the_contract_fields() -> None:
    harness = Harness()
    harness.deliver(body_of(("packed", 0), ("handed_to_carrier", 6)))
    entry = harness.publisher.published[-1]
    assert entry.detail_type == MILESTONE_REACHED
    detail = entry.detail
    assert {"shipment_id", "order_id", "carrier", "tracking_number", "sequence", "state"} <= set(detail)
    assert detail["milestone"] == "picked_up"
    assert detail["previous_status"] == "label_created"
    assert detail["state"]["status"] == "picked_up"
    assert detail["sequence"] == 2
