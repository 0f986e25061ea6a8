"""Carrier exceptions through the processor (in-memory fakes): opened and resolved in the
commit's transaction, the same exceptions whatever order the scans arrive in, one Raised and
one Resolved per episode, and big batches still fit DynamoDB's transaction limit."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from shared import clock
from shared.clock import FrozenClock
from shared.logic.incidents.episodes import carrier_episodes
from shared.logic.incidents.playbooks import EXCEPTION_RAISED, EXCEPTION_RESOLVED, playbooks
from shared.logic.ingest.process import Staged, commit_batch
from shared.logic.merchant.ops import resolve_by_operator
from shared.logic.shipments.timeline import walk
from shared.models.canonical import CanonicalEvent, IncidentType, Milestone
from shared.models.incidents import Incident, IncidentStatus, Owner, ResolvedBy
from tests.builders import T0, scan
from tests.fakes import InMemoryShipmentStore, RecordingPublisher

M, X = Milestone, IncidentType

# A journey with two "held" episodes split by a movement scan, a delay, and a failed attempt.
JOURNEY = [
    scan(M.PICKED_UP, 0),
    scan(None, 20, exception=X.HELD, raw_code="held-1"),
    scan(M.IN_TRANSIT, 22),
    scan(None, 25, exception=X.HELD, raw_code="held-2"),
    scan(None, 27, exception=X.DELAYED, raw_code="delay"),
    scan(M.ARRIVED_HUB, 30),
    scan(M.DELIVERY_FAILED, 40, exception=X.DELIVERY_FAILED),
    scan(M.OUT_FOR_DELIVERY, 60),
    scan(M.DELIVERED, 63),
]


class Processor:
    def __init__(self) -> None:
        self.store = InMemoryShipmentStore()
        self.publisher = RecordingPublisher()
        self.clock = FrozenClock(T0 + timedelta(days=4))
        self.batches = 0

    def deliver(self, events: Sequence[CanonicalEvent]) -> None:
        self.batches += 1
        self.clock.advance(timedelta(minutes=7))
        with clock.use_clock(self.clock):
            outcome = commit_batch(
                [Staged(message_id=f"m{self.batches}", source="ups", events=list(events))],
                store=self.store,
                publisher=self.publisher,
            )
        assert not outcome.failed_message_ids, outcome.errors

    def incidents(self) -> list[Incident]:
        (shipment_id,) = self.store.shipments
        return list(self.store.incidents.get(shipment_id, {}).values())

    def announcements(self) -> Counter[tuple[str, str]]:
        return Counter(
            (e.detail_type, e.detail["exception_id"])
            for e in self.publisher.published
            if e.detail_type.startswith("Shipment Exception")
        )


def observable(exceptions: list[Incident]) -> list[tuple[str, str, str, str | None]]:
    return sorted(
        (e.type.value, e.cause_at.isoformat(), e.status.value, e.resolved_by.value if e.resolved_by else None)
        for e in exceptions
    )


EXPECTED = [
    ("delayed", (T0 + timedelta(hours=27)).isoformat(), "resolved", "auto"),
    ("delivery_failed", (T0 + timedelta(hours=40)).isoformat(), "resolved", "auto"),
    ("held", (T0 + timedelta(hours=20)).isoformat(), "resolved", "auto"),
    ("held", (T0 + timedelta(hours=25)).isoformat(), "resolved", "auto"),
]


def test_in_order_each_problem_opens_then_clears_on_movement() -> None:
    processor = Processor()
    for event in JOURNEY[:2]:
        processor.deliver([event])
    # Given a hold scan: the exception is open, owned by the carrier desk, with its playbook
    (held,) = processor.incidents()
    assert held.type is X.HELD and held.status is IncidentStatus.OPEN and held.owner is Owner.CARRIER_DESK
    assert held.cause_at == T0 + timedelta(hours=20) and held.sla_due_at == held.raised_at + timedelta(hours=24)
    assert held.last_scan is not None and held.last_scan.event_id == JOURNEY[1].event_id
    assert processor.store.shipments[held.shipment_id].open_exceptions == ["held"]
    # When the parcel moves, it is resolved by that scan
    processor.deliver([JOURNEY[2]])
    (cleared,) = processor.incidents()
    assert cleared.status is IncidentStatus.RESOLVED and cleared.resolving_event_id == JOURNEY[2].event_id
    for event in JOURNEY[3:]:
        processor.deliver([event])
    assert observable(processor.incidents()) == EXPECTED
    # and the bus heard each once, in the shipment's one sequence, interleaved with milestones
    assert set(processor.announcements().values()) == {1}
    sequences = [e.sequence for e in processor.publisher.published]
    assert sequences == list(range(1, len(sequences) + 1))
    kinds = [(e.detail_type, e.detail.get("milestone") or e.detail.get("type")) for e in processor.publisher.published]
    assert kinds.index(("Shipment Milestone Reached", "delivery_failed")) + 1 == kinds.index(
        (EXCEPTION_RAISED, "delivery_failed")
    )


@settings(max_examples=60, deadline=None)
@given(order=st.permutations(range(len(JOURNEY))), together=st.integers(1, 3))
def test_any_arrival_order_ends_with_the_same_exceptions_each_announced_once(order: list[int], together: int) -> None:
    processor = Processor()
    arriving = [JOURNEY[i] for i in order]
    for start in range(0, len(arriving), together):
        processor.deliver(arriving[start : start + together])
    processor.deliver(arriving[:2])  # a redelivery changes nothing
    assert observable(processor.incidents()) == EXPECTED
    announced = processor.announcements()
    for exception in processor.incidents():
        assert announced[(EXCEPTION_RAISED, exception.exception_id)] == 1
        assert announced[(EXCEPTION_RESOLVED, exception.exception_id)] == 1
    assert len(announced) == 2 * len(EXPECTED)


def test_a_late_older_scan_of_the_same_problem_joins_the_running_episode() -> None:
    processor = Processor()
    later_hold = scan(None, 30, exception=X.CUSTOMS_HOLD, raw_code="hold-b")
    earlier_hold = scan(None, 26, exception=X.CUSTOMS_HOLD, raw_code="hold-a")
    processor.deliver([scan(M.CUSTOMS_STARTED, 24), later_hold])
    processor.deliver([earlier_hold])  # older, arriving late: the same hold, known from earlier
    (hold,) = processor.incidents()
    assert hold.is_open and hold.cause_at == T0 + timedelta(hours=26)
    assert sum(processor.announcements().values()) == 1
    # a re-presentation to customs is not a release; clearance is
    processor.deliver([scan(M.CUSTOMS_STARTED, 31)])
    assert processor.incidents()[0].is_open
    processor.deliver([scan(M.CUSTOMS_CLEARED, 50)])
    assert not processor.incidents()[0].is_open


def test_damage_stays_open_while_the_parcel_moves_and_a_return_until_it_is_back() -> None:
    processor = Processor()
    processor.deliver([scan(M.PICKED_UP, 0), scan(None, 5, exception=X.DAMAGED), scan(M.ARRIVED_HUB, 9)])
    assert [e.is_open for e in processor.incidents()] == [True]
    processor.deliver([scan(M.RETURN_STARTED, 20, exception=X.RETURN_TO_SENDER), scan(M.ARRIVED_HUB, 30)])
    by_type = {e.type: e for e in processor.incidents()}
    assert by_type[X.RETURN_TO_SENDER].is_open and by_type[X.DAMAGED].is_open
    (shipment,) = processor.store.shipments.values()
    assert shipment.silence_type is None  # a returning parcel is not "stalled" (its playbook pauses it)
    processor.deliver([scan(M.RETURN_DELIVERED, 70)])
    assert not any(e.is_open for e in processor.incidents())


def test_an_operator_resolution_stands_while_the_condition_lasts() -> None:
    processor = Processor()
    processor.deliver([scan(M.PICKED_UP, 0), scan(None, 5, exception=X.LOST)])
    (lost,) = processor.incidents()
    with clock.use_clock(processor.clock):
        closed = resolve_by_operator(
            lost.exception_id,
            lost.shipment_id,
            note="claim filed, customer refunded",
            store=processor.store,
            publisher=processor.publisher,
            now=processor.clock.now(),
        )
    assert closed.resolved_by is ResolvedBy.OPERATOR
    processor.deliver([scan(None, 8, exception=X.LOST, raw_code="lost-again")])  # the same episode
    (still,) = processor.incidents()
    assert still.resolved_by is ResolvedBy.OPERATOR and still.resolution_note == "claim filed, customer refunded"
    assert processor.announcements()[(EXCEPTION_RESOLVED, lost.exception_id)] == 1


def test_a_batch_of_many_problems_is_sliced_under_the_transaction_limit() -> None:
    processor = Processor()
    events = [scan(M.PICKED_UP, 0)]
    for hour in range(1, 61):  # 30 delays, each ended by a hub scan: 60 events, 60 exception changes
        events.append(
            scan(None, hour, exception=X.DELAYED, raw_code=f"d{hour}")
            if hour % 2
            else scan(M.ARRIVED_HUB if hour % 4 else M.IN_TRANSIT, hour, city=f"HUB{hour}")
        )
    processor.deliver(events)  # the fake refuses any transaction over 100 items, as DynamoDB does
    assert len(processor.incidents()) == 30
    assert all(not e.is_open for e in processor.incidents())
    assert processor.store.commits > 1


def test_episodes_are_a_function_of_the_timeline() -> None:
    episodes = carrier_episodes(walk(JOURNEY).ordered, playbooks())
    assert [(e.type.value, e.start.event_id, e.end.event_id if e.end else None) for e in episodes] == [
        ("held", JOURNEY[1].event_id, JOURNEY[2].event_id),
        ("held", JOURNEY[3].event_id, JOURNEY[5].event_id),
        ("delayed", JOURNEY[4].event_id, JOURNEY[5].event_id),
        ("delivery_failed", JOURNEY[6].event_id, JOURNEY[7].event_id),
    ]
