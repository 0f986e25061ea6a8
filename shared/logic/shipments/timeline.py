"""A shipment's status as a function of its timeline (docs/sources.md, "Canonical model").

Walking the timeline in instant order, the status moves forward by rank and never back,
except the re-open transitions (a return after delivery, a re-attempt after a failed
delivery). Milestones of equal rank replace each other (``arrived_hub`` ⇄ ``in_transit``):
that is not a regression, it is the latest news at the same stage. Because the walk
depends only on the set of events, any arrival order gives the same status.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from shared.models.canonical import REOPEN_TRANSITIONS, CanonicalEvent, Milestone


@dataclass(frozen=True)
class Transition:
    previous: Milestone | None
    status: Milestone
    event: CanonicalEvent  # the event that caused it


@dataclass(frozen=True)
class Walk:
    status: Milestone | None
    status_event: CanonicalEvent | None
    transitions: tuple[Transition, ...]
    ordered: tuple[CanonicalEvent, ...]

    @property
    def last_event(self) -> CanonicalEvent | None:
        return self.ordered[-1] if self.ordered else None


def moves_to(current: Milestone | None, milestone: Milestone) -> bool:
    """Whether a scan of ``milestone`` changes a shipment whose status is ``current``."""
    if current is None:
        return True
    if milestone == current:
        return False
    return milestone.rank >= current.rank or (current, milestone) in REOPEN_TRANSITIONS


def walk(events: Iterable[CanonicalEvent]) -> Walk:
    """The status and every transition of a timeline, whatever order ``events`` come in."""
    ordered = tuple(sorted(events, key=lambda event: event.sort_key))
    status: Milestone | None = None
    status_event: CanonicalEvent | None = None
    transitions: list[Transition] = []
    for event in ordered:
        if event.milestone is not None and moves_to(status, event.milestone):
            transitions.append(Transition(status, event.milestone, event))
            status, status_event = event.milestone, event
    return Walk(status, status_event, tuple(transitions), ordered)


def news(after: Walk, *, previous_status_event: CanonicalEvent | None, new_event_ids: set[str]) -> list[Transition]:
    """The transitions to announce after new events joined a timeline.

    Only what happened after the status already announced is news: a late, older event
    fills in history silently, even when it becomes the status event (a late in-transit
    scan older than the in-transit status already announced is not news). If the status
    value changed anyway (new events re-ordered the walk without a transition of their own
    after the old point, or a better reading renamed the status scan), the final
    transition is announced so every status change is published once.
    """
    if previous_status_event is None:
        announced = [t for t in after.transitions if t.event.event_id in new_event_ids]
    else:
        since = previous_status_event.sort_key
        announced = [t for t in after.transitions if t.event.event_id in new_event_ids and t.event.sort_key > since]
    previous = previous_status_event.milestone if previous_status_event else None
    changed = after.status is not None and after.status != previous
    if changed and not announced and after.transitions:
        announced = [after.transitions[-1]]
    return announced
