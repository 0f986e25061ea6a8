"""A shipment's status is a function of its timeline, whatever the arrival order (DESIGN §2.1)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.logic.shipments.timeline import moves_to, news, walk
from shared.models.canonical import IncidentType, Milestone
from tests.builders import scan

M = Milestone


def test_status_moves_forward_by_rank() -> None:
    journey = [scan(M.LABEL_CREATED, 0), scan(M.PICKED_UP, 5), scan(M.ARRIVED_HUB, 20), scan(M.OUT_FOR_DELIVERY, 40)]
    result = walk(journey)
    assert result.status is M.OUT_FOR_DELIVERY
    assert [t.status for t in result.transitions] == [M.LABEL_CREATED, M.PICKED_UP, M.ARRIVED_HUB, M.OUT_FOR_DELIVERY]
    # every transition keeps the event that caused it
    assert [t.event for t in result.transitions] == journey


def test_an_older_scan_arriving_late_never_regresses_the_status() -> None:
    delivered = scan(M.DELIVERED, 50)
    late_hub_scan = scan(M.ARRIVED_HUB, 20)
    result = walk([delivered, late_hub_scan])
    assert result.status is M.DELIVERED
    assert result.ordered == (late_hub_scan, delivered)


def test_a_scan_after_delivery_that_is_not_a_return_is_kept_but_changes_nothing() -> None:
    result = walk([scan(M.DELIVERED, 50), scan(M.IN_TRANSIT, 60)])
    assert result.status is M.DELIVERED
    assert len(result.ordered) == 2


def test_return_after_delivery_reopens() -> None:
    result = walk([scan(M.DELIVERED, 50), scan(M.RETURN_STARTED, 70), scan(M.RETURN_DELIVERED, 120)])
    assert [t.status for t in result.transitions] == [M.DELIVERED, M.RETURN_STARTED, M.RETURN_DELIVERED]


def test_reattempt_after_failed_delivery_reopens() -> None:
    result = walk([scan(M.OUT_FOR_DELIVERY, 40), scan(M.DELIVERY_FAILED, 46), scan(M.OUT_FOR_DELIVERY, 64)])
    assert result.status is M.OUT_FOR_DELIVERY
    assert [t.previous for t in result.transitions] == [None, M.OUT_FOR_DELIVERY, M.DELIVERY_FAILED]


def test_equal_ranks_replace_each_other_and_other_backward_moves_do_not() -> None:
    assert moves_to(M.ARRIVED_HUB, M.IN_TRANSIT)
    assert moves_to(M.IN_TRANSIT, M.ARRIVED_HUB)
    assert moves_to(M.AVAILABLE_FOR_PICKUP, M.DELIVERY_FAILED)
    assert not moves_to(M.OUT_FOR_DELIVERY, M.ARRIVED_HUB)
    assert not moves_to(M.AVAILABLE_FOR_PICKUP, M.OUT_FOR_DELIVERY)
    assert not moves_to(M.RETURN_DELIVERED, M.RETURN_STARTED)


def test_events_without_milestone_are_on_the_timeline_but_move_nothing() -> None:
    delay = scan(None, 30, exception=IncidentType.DELAYED, raw_code="WE")
    result = walk([scan(M.PICKED_UP, 5), delay])
    assert result.status is M.PICKED_UP
    assert result.last_event is delay


def test_same_minute_scans_sort_by_rank() -> None:
    # A carrier stamps "out for delivery" and "delivered" in the same minute for a parcel
    # delivered straight off the truck: the delivery must still end the walk.
    ofd = scan(M.OUT_FOR_DELIVERY, 40)
    delivered = scan(M.DELIVERED, 40)
    assert walk([delivered, ofd]).status is M.DELIVERED


JOURNEY = [
    scan(M.LABEL_CREATED, 0),
    scan(M.PICKED_UP, 5),
    scan(M.OUT_FOR_DELIVERY, 40),
    scan(M.DELIVERY_FAILED, 46),
    scan(M.OUT_FOR_DELIVERY, 64),
    scan(M.DELIVERED, 66),
    scan(None, 30, exception=IncidentType.DELAYED, raw_code="WE"),
    scan(M.RETURN_STARTED, 90),
]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(JOURNEY), min_size=1, max_size=8).flatmap(st.permutations))
def test_any_arrival_order_gives_the_same_status_and_timeline(events: list) -> None:  # type: ignore[type-arg]
    # Given any subset of a journey's events, in any order, with repeats
    reference = walk(sorted(set(events), key=lambda e: e.event_id))
    # When they arrive in this order
    result = walk(events)
    # Then status, timeline and transitions are the same as for any other order
    assert result.status == reference.status
    assert [e.event_id for e in dict.fromkeys(result.ordered)] == [e.event_id for e in reference.ordered]
    assert [t.status for t in result.transitions] == [t.status for t in reference.transitions]


def test_news_announces_only_what_happened_after_the_known_status() -> None:
    # Given a shipment known to be out for delivery
    ofd = scan(M.OUT_FOR_DELIVERY, 40)
    before = walk([scan(M.PICKED_UP, 5), ofd])
    # When a late hub scan (older) and the delivery (newer) arrive together
    hub, delivered = scan(M.ARRIVED_HUB, 20), scan(M.DELIVERED, 44)
    after = walk([*before.ordered, hub, delivered])
    announced = news(after, previous_status_event=ofd, new_event_ids={hub.event_id, delivered.event_id})
    # Then only the delivery is news: the hub scan fills in history silently
    assert [t.status for t in announced] == [M.DELIVERED]


def test_news_for_a_new_shipment_is_every_transition() -> None:
    events = [scan(M.LABEL_CREATED, 0), scan(M.PICKED_UP, 5), scan(M.ARRIVED_HUB, 9)]
    announced = news(walk(events), previous_status_event=None, new_event_ids={e.event_id for e in events})
    assert [t.status for t in announced] == [M.LABEL_CREATED, M.PICKED_UP, M.ARRIVED_HUB]


def test_news_of_a_failed_attempt_and_reattempt_behind_the_same_status() -> None:
    # Known: out for delivery. New: the attempt failed, then out for delivery again.
    first = scan(M.OUT_FOR_DELIVERY, 40)
    failed, again = scan(M.DELIVERY_FAILED, 46), scan(M.OUT_FOR_DELIVERY, 64)
    after = walk([first, failed, again])
    announced = news(after, previous_status_event=first, new_event_ids={failed.event_id, again.event_id})
    assert [t.status for t in announced] == [M.DELIVERY_FAILED, M.OUT_FOR_DELIVERY]
