"""The decision chain: the steps every change to a shipment goes through before it is written.

A change starts as a :class:`Draft`: the shipment as loaded, and what the caller decided — new
events from a carrier, a registration, an incident an operator closed or the silence checker
raised. Then the steps of :data:`STEPS` run in order, each deriving its part of the record from
what the steps before it left:

1. :func:`follow_timeline` — status, last event and last scan from the timeline in scan order,
   and a ``Shipment Milestone Reached`` for each transition that is news (``timeline.news``);
2. :func:`plan_polls` — where the shipment stands in the poll due-index (the carrier to ask,
   the cadence of its status: ``shared.logic.polling.cadence``);
3. :func:`reconcile_incidents` — the stored incidents brought in line with the timeline
   (carrier incidents opened and resolved by episode: ``shared.logic.incidents.episodes``);
4. :func:`plan_silence` — the silence rule that runs now, its deadline, and the silence
   checker's timer (``shared.logic.incidents.silence``).

A step does nothing when what it reads was not loaded (the silence checker decides over the
record alone) or did not change. :func:`finish` then numbers the change's news in timeline
order in the shipment's one ``sequence``, turns them into outbox entries, advances the record's
``version`` and returns the ``Commit`` that ``UnitOfWork`` writes. A new step (an ETA) joins the
chain by being added to :data:`STEPS` after the steps whose fields it reads.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from shared.clock import isoformat_z
from shared.dal.incidents import Expect, IncidentWrite
from shared.dal.shipments import Absorbed, Commit, Reread
from shared.logic.incidents.episodes import reconcile
from shared.logic.incidents.playbooks import Announcement, incident_detail, order_key, playbooks
from shared.logic.incidents.silence import silence_fields
from shared.logic.polling.cadence import DEFAULT_POLICY, PollPolicy, next_poll, shard_of
from shared.logic.shipments.timeline import Transition, Walk, news, walk
from shared.models.canonical import CanonicalEvent, Milestone
from shared.models.detail import detail_header, detail_state
from shared.models.incidents import Incident, ScanSummary
from shared.models.shipment import REGISTRATION_FIELDS, OutboxEntry, Partition, Shipment, StoredEvent, TrackingKey

MILESTONE_REACHED = "Shipment Milestone Reached"
# A writer other than the processor publishes its own news; if that fails (or it crashes),
# the silence checker finds the outbox within this long and publishes it.
PENDING_CHECK = timedelta(minutes=2)


@dataclass(frozen=True)
class CommitOptions:
    """What the chain needs to know about the deployment."""

    # Outbox entries older than this are leftovers of a crashed run (longer than an
    # event_processor invocation can last, 30 s).
    leftover_grace: timedelta = timedelta(seconds=60)
    poll_sources: frozenset[str] = frozenset()  # sources whose APIs the poller may call
    policy: PollPolicy = DEFAULT_POLICY

    @classmethod
    def from_setting(cls, poll_sources: str) -> CommitOptions:
        """Options for a deployment whose ``POLL_SOURCES`` setting is ``poll_sources`` (a comma list)."""
        return cls(poll_sources=frozenset(s.strip() for s in poll_sources.split(",") if s.strip()))


DetailBuilder = Callable[[Shipment, int], dict[str, Any]]


@dataclass(frozen=True)
class News:
    """A change to announce on the bus. ``at`` orders it among the change's other news
    (``order_key``); its detail is built by ``finish`` with the record as stored and its
    sequence number."""

    detail_type: str
    at: tuple[Any, ...]
    detail: DetailBuilder


@dataclass
class Draft:
    """A shipment being decided. Callers fill in what they decided; the steps derive the rest."""

    loaded: Shipment | None  # the record as stored (None: this change creates the shipment)
    record: Shipment  # the record as it will be stored
    now: datetime
    options: CommitOptions = field(default_factory=CommitOptions)
    # The timeline after this change (None: only the record was loaded) and before it.
    timeline: list[CanonicalEvent] | None = None
    stored_events: Sequence[CanonicalEvent] = ()
    new_event_ids: set[str] = field(default_factory=set)
    # The incidents after this change's own writes (None: not loaded), and those writes.
    incidents: list[Incident] | None = None
    writes: dict[str, IncidentWrite] = field(default_factory=dict)
    news: list[News] = field(default_factory=list)
    # The parcel moved or changed hands (new events, other tracking numbers): redo the cadence.
    moved: bool = False
    # This writer publishes its own news (not the processor): ask the checker to look shortly.
    watch_outbox: bool = False
    walk: Walk | None = None

    @classmethod
    def of_partition(
        cls, partition: Partition | None, record: Shipment, now: datetime, options: CommitOptions | None = None
    ) -> Draft:
        """A change decided over a whole loaded partition by a writer that publishes its own news
        (registration, an operator): the timeline as stored, the parcel not moved."""
        events = [stored.event for stored in partition.events] if partition else []
        return cls(
            loaded=partition.shipment if partition else None,
            record=record,
            now=now,
            options=options or CommitOptions(),
            timeline=events,
            stored_events=events,
            incidents=list(partition.incidents) if partition else [],
            watch_outbox=True,
        )

    def update(self, **fields: Any) -> None:
        self.record = self.record.model_copy(update=fields)

    def write(self, incident: Incident, expect: Expect) -> None:
        """Store ``incident`` with this change. Written twice in one change, the last content
        wins under the first condition (decided against the stored item)."""
        held = self.writes.get(incident.exception_id)
        self.writes[incident.exception_id] = IncidentWrite(incident, held.expect if held else expect)
        if self.incidents is not None:
            others = [i for i in self.incidents if i.exception_id != incident.exception_id]
            self.incidents = [*others, incident]

    def announce(self, detail_type: str, at: tuple[Any, ...], detail: DetailBuilder) -> None:
        self.news.append(News(detail_type, at, detail))

    def announce_incident(self, announcement: Announcement) -> None:
        self.news.append(incident_news(announcement))


def incident_news(announcement: Announcement) -> News:
    """An incident change as news of the shipment (``Shipment Exception …``)."""
    incident = announcement.exception
    return News(
        announcement.detail_type,
        announcement.at,
        lambda record, sequence: incident_detail(record, incident, sequence),
    )


Step = Callable[[Draft], None]


# ------------------------------------------------------------------------------ 1. timeline


def milestone_detail(shipment: Shipment, transition: Transition, sequence: int) -> dict[str, Any]:
    """The ``Shipment Milestone Reached`` detail (docs/events.md documents this contract)."""
    event = transition.event
    return {
        **detail_header(shipment, sequence),
        "milestone": transition.status.value,
        "previous_status": transition.previous.value if transition.previous else None,
        "occurred_at": isoformat_z(event.occurred_at),
        "event": event.to_json_dict(),
        "state": detail_state(shipment),
    }


def follow_timeline(draft: Draft) -> None:
    """Status, last event and last scan from the timeline; announce the transitions that are news."""
    if draft.timeline is None:
        return
    after = walk(draft.timeline)
    draft.walk = after
    previous = None
    if draft.loaded is not None and draft.loaded.status_event_id:
        previous = next((e for e in draft.stored_events if e.event_id == draft.loaded.status_event_id), None)
    last = after.last_event
    draft.update(
        status=after.status,
        status_since=after.status_event.occurred_at if after.status_event else None,
        status_event_id=after.status_event.event_id if after.status_event else None,
        last_event_at=last.occurred_at if last else None,
        event_count=len(after.ordered),
        last_scan=ScanSummary.of(last) if last else None,
    )
    for transition in news(after, previous_status_event=previous, new_event_ids=draft.new_event_ids):
        draft.announce(
            MILESTONE_REACHED,
            order_key(transition.event, draft.now, 0),
            lambda record, sequence, t=transition: milestone_detail(record, t, sequence),  # type: ignore[misc]
        )


# ------------------------------------------------------------------------------ 2. polls


def poll_fields(shipment: Shipment, now: datetime, options: CommitOptions) -> dict[str, Any]:
    """Where the shipment stands in the poll due-index after this change.

    The poller asks the carrier now holding the parcel: the last-mile carrier once the
    parcel reached it, the shipper carrier before. A future due time only moves earlier on
    a change (a parcel out for delivery is polled sooner); the poller moves it later after
    each poll. Terminal or silent shipments leave the index.
    """
    keys = shipment.keys
    target = keys[0]
    reached_last_mile = shipment.status is not None and shipment.status.rank >= Milestone.HANDED_TO_LAST_MILE.rank
    if reached_last_mile and len(keys) > 1:
        target = keys[-1]
    source: str | None = target.carrier if target.carrier in options.poll_sources else None
    if source is None and shipment.first_source == "seventeentrack" and "seventeentrack" in options.poll_sources:
        source, target = "seventeentrack", keys[0]
    due = None
    if source is not None:
        due = next_poll(
            shipment_id=shipment.shipment_id,
            status=shipment.status,
            now=now,
            last_news_at=max(filter(None, (shipment.last_event_at, shipment.created_at))),
            last_push_at=shipment.last_push_at,
            policy=options.policy,
        )
    if due is None:
        return {"poll_source": None, "poll_number": None, "poll_due_at": None, "poll_shard": None}
    if shipment.poll_due_at is not None and shipment.poll_source == source and now < shipment.poll_due_at <= due:
        # An earlier future due time stands. A past one does not: a poll may be in flight,
        # and moving the due time is what tells the poller's conditional re-arm that this
        # change happened (its re-arm would otherwise apply a cadence from stale status).
        due = shipment.poll_due_at
    return {
        "poll_source": source,
        "poll_number": target.tracking_number,
        "poll_due_at": due,
        "poll_shard": shard_of(shipment.shipment_id),
    }


def plan_polls(draft: Draft) -> None:
    """The poll due-index entry, redone when the parcel moved, changed hands or is new."""
    if draft.moved or draft.loaded is None:
        draft.update(**poll_fields(draft.record, draft.now, draft.options))


# ------------------------------------------------------------------------------ 3. incidents


def reconcile_incidents(draft: Draft) -> None:
    """The stored incidents brought in line with the timeline; the open types on the record."""
    if draft.incidents is None or draft.walk is None:
        return
    reconciled = reconcile(draft.record, draft.incidents, draft.walk.ordered, now=draft.now, rules=playbooks())
    for write in reconciled.writes:
        draft.write(write.exception, write.expect)
    for announcement in reconciled.announcements:
        draft.announce_incident(announcement)
    draft.update(open_exceptions=reconciled.open_types)


# ------------------------------------------------------------------------------ 4. silence


def plan_silence(draft: Draft) -> None:
    """The silence rule running after this change, its deadline and the checker's timer."""
    if draft.incidents is None or draft.walk is None:
        return
    draft.update(**silence_fields(draft.record, draft.walk.ordered, draft.incidents, now=draft.now))


STEPS: tuple[Step, ...] = (follow_timeline, plan_polls, reconcile_incidents, plan_silence)


# ------------------------------------------------------------------------------ the commit


def outbox_for(record: Shipment, news: Iterable[News], first_sequence: int, now: datetime) -> list[OutboxEntry]:
    """Outbox entries for ``news`` (already in order), numbered from ``first_sequence``."""
    return [
        OutboxEntry(
            shipment_id=record.shipment_id,
            sequence=first_sequence + index,
            detail_type=item.detail_type,
            detail=item.detail(record, first_sequence + index),
            created_at=now,
        )
        for index, item in enumerate(news)
    ]


def finish(
    draft: Draft,
    *,
    steps: Sequence[Step] = STEPS,
    events: Sequence[StoredEvent] = (),
    replace_events: Sequence[Reread] = (),
    claim_keys: Sequence[TrackingKey] = (),
    absorb: Sequence[Absorbed] = (),
    more_incident_writes: Sequence[IncidentWrite] = (),
    more_outbox: Sequence[OutboxEntry] = (),
) -> Commit:
    """Run the chain over ``draft`` and return the one transaction that writes it.

    ``events``/``replace_events``/``claim_keys``/``absorb`` are the items the caller's own
    decision adds (new scans, better readings, tracking numbers, merged shipments), and
    ``more_incident_writes``/``more_outbox`` the writes and announcements of the shipments
    it absorbs (their own sequence)."""
    for step in steps:
        step(draft)
    loaded = draft.loaded
    base = loaded.sequence if loaded else 0
    ordered = sorted(draft.news, key=lambda item: item.at)
    record = draft.record.model_copy(
        update={
            "sequence": base + len(ordered),
            "version": (loaded.version if loaded else draft.record.version) + 1,
            "updated_at": draft.now,
        }
    )
    if draft.watch_outbox and ordered:
        check, timer = draft.now + PENDING_CHECK, record.timer_due_at
        record = record.model_copy(
            update={
                "outbox_pending_since": record.outbox_pending_since or draft.now,
                "timer_due_at": check if timer is None or timer > check else timer,
            }
        )
    return Commit(
        shipment=record,
        expected_version=loaded.version if loaded else None,
        events=list(events),
        outbox=[*outbox_for(record, ordered, base + 1, draft.now), *more_outbox],
        claim_keys=list(claim_keys),
        absorb=list(absorb),
        replace_events=list(replace_events),
        incidents=[*draft.writes.values(), *more_incident_writes],
        registration_changed=loaded is None
        or any(getattr(loaded, name) != getattr(record, name) for name in REGISTRATION_FIELDS),
    )


def leftovers(outbox: Iterable[OutboxEntry], now: datetime, options: CommitOptions) -> list[OutboxEntry]:
    """Outbox entries old enough that no running writer still owns them: a crashed run's."""
    return [entry for entry in outbox if now - entry.created_at >= options.leftover_grace]
