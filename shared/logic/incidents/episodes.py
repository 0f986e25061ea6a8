"""Carrier incidents as a function of the timeline, and how silences and claims end.

**Carrier incidents** (an event's ``exception`` field) are a function of the timeline in
scan order, never of arrival order. Walking it, a scan reporting type T starts an episode of
T unless one is running; the episode ends at the first later scan that ends the condition
(the playbook's ``clears_on``: movement, delivery, the return reaching the sender). Each
change to a shipment reconciles the stored incidents with these episodes in the same
transaction (``reconcile``, a step of ``shared.logic.shipments.chain``): an episode with no
stored incident opens one (an episode learned of only after it ended is stored resolved, both
events published); a stored open incident whose episode ended is resolved ``auto`` by the scan
that ended it. A stored incident belongs to the episode holding the scan that raised it, so a
late, older scan of the same problem joins the running episode instead of opening another, and
a late movement scan between two problem scans splits them into two episodes — the same
incidents, in the end, as if the scans had arrived in order.

**Silences** (``no_first_scan``, ``stalled``) are raised by the silence checker; a change
resolves an open one as soon as the timeline holds a scan after its anchor. **Claims**
(``delivered_not_received``) are opened by the merchant API and closed by an operator.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from shared.clock import parse_instant
from shared.dal.incidents import Expect, IncidentWrite
from shared.logic.incidents.playbooks import (
    EXCEPTION_RAISED,
    EXCEPTION_RESOLVED,
    Announcement,
    ClearsOn,
    Playbooks,
    new_incident,
    order_key,
    refreshed,
    resolved,
)
from shared.models.canonical import CanonicalEvent, IncidentType, Milestone
from shared.models.incidents import CARRIER_TYPES, SILENCE_TYPES, Incident, ResolvedBy
from shared.models.shipment import Partition, Shipment

# ------------------------------------------------------------------------------ episodes

# Scans that do not move a parcel on: a label, a (re)presentation to customs, a failed attempt.
NOT_MOVEMENT: frozenset[Milestone] = frozenset(
    {Milestone.LABEL_CREATED, Milestone.CUSTOMS_STARTED, Milestone.DELIVERY_FAILED}
)
_ENDINGS: dict[ClearsOn, frozenset[Milestone]] = {
    ClearsOn.MOVEMENT: frozenset(Milestone) - NOT_MOVEMENT,
    ClearsOn.DELIVERY: frozenset({Milestone.DELIVERED, Milestone.RETURN_DELIVERED}),
    ClearsOn.RETURN: frozenset({Milestone.RETURN_DELIVERED, Milestone.DELIVERED}),
    ClearsOn.NEVER: frozenset(),
}


def is_scan(event: CanonicalEvent) -> bool:
    """A carrier's physical scan of the parcel (a label, a warehouse's ``packed`` or a bare
    note is not): it ends a ``no_first_scan`` silence."""
    return (event.milestone is not None and event.milestone is not Milestone.LABEL_CREATED) or (
        event.exception is not None
    )


def ends_episode(event: CanonicalEvent, type_: IncidentType, clears_on: ClearsOn) -> bool:
    """Whether ``event`` (later in the timeline) ends an episode of ``type_``."""
    if event.exception is type_ or event.milestone is None:
        return False
    return event.milestone in _ENDINGS[clears_on]


@dataclass
class Episode:
    """One run of a carrier-reported problem on the timeline."""

    type: IncidentType
    start: CanonicalEvent
    scan_ids: set[str] = field(default_factory=set)  # every scan reporting it in this run
    end: CanonicalEvent | None = None  # the scan that ended it


def carrier_episodes(ordered: Sequence[CanonicalEvent], rules: Playbooks) -> list[Episode]:
    """The episodes of carrier-reported exceptions, from a timeline in scan order."""
    running: dict[IncidentType, Episode] = {}
    found: list[Episode] = []
    for event in ordered:
        for type_, episode in list(running.items()):
            if ends_episode(event, type_, rules[type_].clears_on):
                episode.end = event
                del running[type_]
        kind = event.exception
        if kind is None or kind not in CARRIER_TYPES:
            continue
        if kind not in running:
            running[kind] = Episode(kind, event)
            found.append(running[kind])
        running[kind].scan_ids.add(event.event_id)
    return found


# ------------------------------------------------------------------------------ reconciling


@dataclass
class Reconciled:
    """What a commit must write about exceptions."""

    writes: list[IncidentWrite] = field(default_factory=list)
    announcements: list[Announcement] = field(default_factory=list)
    open_types: list[str] = field(default_factory=list)

    def write(self, exception: Incident, expect: Expect) -> None:
        self.writes.append(IncidentWrite(exception, expect))


def reconcile(
    shipment: Shipment,
    stored: Sequence[Incident],
    ordered: Sequence[CanonicalEvent],
    *,
    now: datetime,
    rules: Playbooks,
) -> Reconciled:
    """Bring a shipment's stored exceptions in line with its timeline (``ordered``: scan
    order). ``shipment`` is the record as it will be stored (for headers and last scan)."""
    out = Reconciled()
    by_id = {event.event_id: event for event in ordered}
    final: dict[str, Incident] = {s.exception_id: s for s in stored}
    claimed: set[str] = set()
    for episode in carrier_episodes(ordered, rules):
        matches = sorted(
            (s for s in stored if s.type is episode.type and s.cause_event_id in episode.scan_ids),
            key=lambda s: (s.cause_at, s.exception_id),
        )
        claimed.update(s.exception_id for s in matches)
        if not matches:
            created = new_incident(
                shipment,
                episode.type,
                episode.start.event_id,
                now=now,
                cause_at=episode.start.occurred_at,
                cause_event_id=episode.start.event_id,
                cause_received_at=episode.start.received_at,
                rules=rules,
            )
            out.announcements.append(Announcement(EXCEPTION_RAISED, created, order_key(episode.start, now, 1)))
            if episode.end is not None:
                created = resolved(created, now=now, by=ResolvedBy.AUTO, event=episode.end)
                out.announcements.append(Announcement(EXCEPTION_RESOLVED, created, order_key(episode.end, now, 2)))
            out.write(created, Expect.NEW)
            final[created.exception_id] = created
            continue
        keep, *doubles = matches
        for double in doubles:  # two stored exceptions for one episode: only after a re-reading
            if double.is_open:
                closed = resolved(double, now=now, by=ResolvedBy.AUTO, note=f"same episode as {keep.exception_id}")
                out.write(closed, Expect.OPEN)
                out.announcements.append(Announcement(EXCEPTION_RESOLVED, closed, order_key(None, now, 2)))
                final[closed.exception_id] = closed
        if not keep.is_open:
            # An operator's (or an earlier) resolution stands; only its cause follows the episode
            # (a late movement scan may have split it), silently.
            if keep.cause_at != episode.start.occurred_at:
                moved = keep.model_copy(update={"cause_at": episode.start.occurred_at, "updated_at": now})
                out.write(moved, Expect.STORED)
                final[moved.exception_id] = moved
            continue
        current = refreshed(keep, shipment, now)
        if current.cause_at != episode.start.occurred_at:  # an older scan joined it, or a split moved its start
            current = current.model_copy(update={"cause_at": episode.start.occurred_at, "updated_at": now})
        if episode.end is not None:
            closed = resolved(current, now=now, by=ResolvedBy.AUTO, event=episode.end)
            out.write(closed, Expect.OPEN)
            out.announcements.append(Announcement(EXCEPTION_RESOLVED, closed, order_key(episode.end, now, 2)))
            final[closed.exception_id] = closed
            continue
        if current != keep:
            out.write(current, Expect.OPEN)
            final[current.exception_id] = current
    for exception in stored:
        if not exception.is_open or exception.exception_id in claimed:
            continue
        if exception.type in CARRIER_TYPES:
            # Its scan is no longer in the timeline as a problem (a better reading replaced it).
            closed = resolved(exception, now=now, by=ResolvedBy.AUTO, note="the carrier no longer reports it")
        elif exception.type in SILENCE_TYPES:
            ending = silence_ending(exception, ordered)
            if ending is None:
                refreshed_open = refreshed(exception, shipment, now)
                if refreshed_open != exception:
                    out.write(refreshed_open, Expect.OPEN)
                    final[exception.exception_id] = refreshed_open
                continue
            closed = resolved(refreshed(exception, shipment, now), now=now, by=ResolvedBy.AUTO, event=ending)
        else:
            refreshed_open = refreshed(exception, shipment, now)
            if refreshed_open != exception:
                out.write(refreshed_open, Expect.OPEN)
                final[exception.exception_id] = refreshed_open
            continue
        out.write(closed, Expect.OPEN)
        ending_event = by_id.get(closed.resolving_event_id or "")
        out.announcements.append(Announcement(EXCEPTION_RESOLVED, closed, order_key(ending_event, now, 2)))
        final[closed.exception_id] = closed
    out.open_types = sorted({e.type.value for e in final.values() if e.is_open})
    return out


def silence_anchor(exception: Incident) -> datetime | None:
    """The instant a silence counted from (``details.since``)."""
    since = exception.details.get("since")
    return parse_instant(since) if isinstance(since, str) else None


def silence_ending(exception: Incident, ordered: Sequence[CanonicalEvent]) -> CanonicalEvent | None:
    """The scan that ends an open silence: any carrier scan for ``no_first_scan``, any event
    after the anchor for ``stalled``."""
    if exception.type is IncidentType.NO_FIRST_SCAN:
        return next((event for event in ordered if is_scan(event)), None)
    anchor = silence_anchor(exception)
    if anchor is None:
        return None
    return next((event for event in ordered if event.occurred_at > anchor), None)


def resolve_all(
    partition: Partition, *, now: datetime, note: str, shipment: Shipment | None = None
) -> tuple[list[IncidentWrite], list[Announcement]]:
    """Resolve every open exception of a partition (a shipment merged into another)."""
    writes, announcements = [], []
    for exception in partition.incidents:
        if exception.is_open:
            closed = resolved(exception, now=now, by=ResolvedBy.AUTO, note=note)
            writes.append(IncidentWrite(closed, Expect.OPEN))
            announcements.append(Announcement(EXCEPTION_RESOLVED, closed, order_key(None, now, 2)))
    return writes, announcements
