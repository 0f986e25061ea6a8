"""Exceptions: playbooks, carrier exceptions from the timeline, the events they publish.

**Carrier exceptions** (an event's ``exception`` field) are a function of the timeline in
scan order, never of arrival order. Walking it, a scan reporting type T starts an episode of
T unless one is running; the episode ends at the first later scan that ends the condition
(the playbook's ``clears_on``: movement, delivery, the return reaching the sender). Each
commit of the processor reconciles the stored exceptions with these episodes in the same
transaction as the events (``reconcile``): an episode with no stored exception opens one (an
episode learned of only after it ended is stored resolved, both events published); a stored
open exception whose episode ended is resolved ``auto`` by the scan that ended it. A stored
exception belongs to the episode holding the scan that raised it, so a late, older scan of
the same problem joins the running episode instead of opening another, and a late movement
scan between two problem scans splits them into two episodes — the same exceptions, in the
end, as if the scans had arrived in order.

**Silences** (``no_first_scan``, ``stalled``) are raised by the silence checker
(``shared.logic.incidents.silence``); a commit resolves an open one as soon as the timeline holds a
scan after its anchor. **Claims** (``delivered_not_received``) are opened by the merchant
API and closed by an operator.

Every change is announced on the bus through the shipment's outbox, in the shipment's one
``sequence``: ``Shipment Exception Raised``, ``Shipment Exception Resolved`` and, when the
playbook's SLA passes, ``Shipment Exception Escalated`` (the README documents the details).

For the merchant API: :func:`resolve_by_operator` and :func:`open_incident` write one
transaction (exception, shipment record, outbox) and publish.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from functools import cache
from typing import Annotated, Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from shared.clock import isoformat_z
from shared.config import OVERRIDES_VARIABLE, PolicyError, policy
from shared.dal.incidents import Expect, IncidentWrite
from shared.dal.shipments import Commit
from shared.errors import Conflict, NotFound
from shared.models.canonical import CanonicalEvent, IncidentType, Milestone
from shared.models.incidents import (
    CARRIER_TYPES,
    CLAIM_TYPES,
    SILENCE_TYPES,
    Incident,
    IncidentStatus,
    Owner,
    ResolvedBy,
    incident_id_for,
)
from shared.models.shipment import OutboxEntry, Partition, Shipment

EXCEPTION_RAISED = "Shipment Exception Raised"
EXCEPTION_RESOLVED = "Shipment Exception Resolved"
EXCEPTION_ESCALATED = "Shipment Exception Escalated"
WRITE_ATTEMPTS = 5

# ------------------------------------------------------------------------------ playbooks


class ClearsOn(StrEnum):
    MOVEMENT = "movement"
    DELIVERY = "delivery"
    RETURN = "return"
    NEVER = "never"


class Playbook(BaseModel):
    """What to do about one exception type (``shared/config/playbooks.toml``)."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    owner: Owner
    next_action: Annotated[str, Field(min_length=1, max_length=500)]
    customer_message: Annotated[str, Field(pattern=r"^[a-z0-9_.]{1,100}$")]
    sla_hours: Annotated[float, Field(gt=0, le=24 * 90)]
    escalate_to: Owner
    clears_on: ClearsOn
    pauses_silence: bool = False


class Playbooks(BaseModel):
    model_config = ConfigDict(frozen=True, defer_build=True)

    by_type: dict[IncidentType, Playbook]

    @model_validator(mode="after")
    def _every_type(self) -> Playbooks:
        missing = sorted(t.value for t in IncidentType if t not in self.by_type)
        if missing:
            raise ValueError(f"no playbook for {', '.join(missing)}")
        return self

    def __getitem__(self, type_: IncidentType) -> Playbook:
        return self.by_type[type_]


@cache
def _playbooks(_overrides: str) -> Playbooks:
    document = policy("playbooks")
    try:
        return Playbooks.model_validate({"by_type": document})
    except ValidationError as error:
        raise PolicyError(f"playbooks: {error.errors()[0]['loc']}: {error.errors()[0]['msg']}") from None


def playbooks() -> Playbooks:
    """This deployment's playbooks (defaults merged with ``SHIPLIGHT_POLICY``), validated."""
    return _playbooks(os.environ.get(OVERRIDES_VARIABLE, ""))


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


# ------------------------------------------------------------------------------ building


def new_incident(
    shipment: Shipment,
    type_: IncidentType,
    episode: str,
    *,
    now: datetime,
    cause_at: datetime,
    rules: Playbooks,
    cause_event_id: str | None = None,
    cause_received_at: datetime | None = None,
    details: dict[str, Any] | None = None,
) -> Incident:
    """An open exception with its playbook, as raised ``now``."""
    book = rules[type_]
    return Incident(
        exception_id=incident_id_for(shipment.shipment_id, type_, episode),
        shipment_id=shipment.shipment_id,
        type=type_,
        episode=episode,
        status=IncidentStatus.OPEN,
        raised_at=now,
        cause_at=cause_at,
        cause_event_id=cause_event_id,
        cause_received_at=cause_received_at,
        updated_at=now,
        owner=book.owner,
        next_action=book.next_action,
        customer_message=book.customer_message,
        sla_due_at=now + timedelta(hours=book.sla_hours),
        carrier=shipment.carrier,
        tracking_number=shipment.tracking_number,
        tracking_numbers=list(shipment.tracking_keys),
        order_id=shipment.order_id,
        last_scan=shipment.last_scan,
        details=details or {},
    )


def resolved(
    exception: Incident,
    *,
    now: datetime,
    by: ResolvedBy,
    note: str | None = None,
    event: CanonicalEvent | None = None,
) -> Incident:
    return exception.model_copy(
        update={
            "status": IncidentStatus.RESOLVED,
            "resolved_at": now,
            "resolved_by": by,
            "resolution_note": note,
            "resolving_event_id": event.event_id if event else None,
            "updated_at": now,
        }
    )


def refreshed(exception: Incident, shipment: Shipment, now: datetime) -> Incident:
    """An open exception with the shipment's current header and last scan."""
    header = {
        "carrier": shipment.carrier,
        "tracking_number": shipment.tracking_number,
        "tracking_numbers": list(shipment.tracking_keys),
        "order_id": shipment.order_id,
        "last_scan": shipment.last_scan,
    }
    if all(getattr(exception, name) == value for name, value in header.items()):
        return exception
    return exception.model_copy(update={**header, "updated_at": now})


# ------------------------------------------------------------------------------ bus events


def incident_detail(shipment: Shipment, exception: Incident, sequence: int) -> dict[str, Any]:
    """The detail of ``Shipment Exception Raised | Resolved | Escalated`` (README contract)."""
    body = exception.to_json_dict()
    if exception.type in CLAIM_TYPES:
        body.pop("details", None)  # a claim's details are the customer's words: not on the bus
    return {
        "shipment_id": shipment.shipment_id,
        "order_id": shipment.order_id,
        "carrier": shipment.carrier,
        "tracking_number": shipment.tracking_number,
        "tracking_numbers": shipment.tracking_keys,
        "sequence": sequence,
        "exception_id": exception.exception_id,
        "type": exception.type.value,
        "exception": body,
        "state": {
            "status": shipment.status.value if shipment.status else None,
            "status_since": isoformat_z(shipment.status_since) if shipment.status_since else None,
            "last_event_at": isoformat_z(shipment.last_event_at) if shipment.last_event_at else None,
            "event_count": shipment.event_count,
            "open_exceptions": shipment.open_exceptions,
        },
    }


@dataclass(frozen=True)
class Announcement:
    """An exception change to publish, ordered among the commit's other news by ``at``."""

    detail_type: str
    exception: Incident
    at: tuple[Any, ...]  # sort key: the scan that caused it (see ``order_key``)


def order_key(event: CanonicalEvent | None, now: datetime, step: int) -> tuple[Any, ...]:
    """Where a change sits among a commit's announcements: after the milestone of the scan
    that caused it (``step`` 1 and 2), changes without a scan last."""
    if event is None:
        return (now, 1000, "", step)
    return (*event.sort_key, step)


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
    return datetime.fromisoformat(since.replace("Z", "+00:00")) if isinstance(since, str) else None


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


def outbox_entries(
    shipment: Shipment, announcements: Iterable[Announcement], first_sequence: int, now: datetime
) -> list[OutboxEntry]:
    """Outbox entries for ``announcements`` (already in order), from ``first_sequence`` on."""
    return [
        OutboxEntry(
            shipment_id=shipment.shipment_id,
            sequence=first_sequence + index,
            detail_type=a.detail_type,
            detail=incident_detail(shipment, a.exception, first_sequence + index),
            created_at=now,
        )
        for index, a in enumerate(announcements)
    ]


# ------------------------------------------------------------------------------ the merchant API


class PartitionStore(Protocol):
    def load(self, shipment_id: str) -> Partition | None: ...
    def commit(self, commit: Commit) -> None: ...
    def delete_outbox(self, entries: Sequence[OutboxEntry]) -> None: ...


class Publisher(Protocol):
    def publish(self, entries: Sequence[OutboxEntry]) -> list[OutboxEntry]: ...


# Entries written outside the processor are published by their writer; one the bus refused
# (or a crash) leaves them in the outbox, and the silence checker drains them within minutes.
PENDING_CHECK = timedelta(minutes=2)


def announced(
    shipment: Shipment, announcements: list[Announcement], now: datetime
) -> tuple[Shipment, list[OutboxEntry]]:
    """The record advanced past ``announcements`` and their outbox entries; the record asks
    the silence checker to look again shortly in case their publication fails."""
    timer = shipment.timer_due_at
    check = now + PENDING_CHECK
    updated = shipment.model_copy(
        update={
            "sequence": shipment.sequence + len(announcements),
            "version": shipment.version + 1,
            "updated_at": now,
            "outbox_pending_since": shipment.outbox_pending_since or now,
            "timer_due_at": check if timer is None or timer > check else timer,
        }
    )
    return updated, outbox_entries(updated, announcements, shipment.sequence + 1, now)


def _publish(entries: list[OutboxEntry], store: PartitionStore, publisher: Publisher) -> None:
    """Publish and forget; what the bus refuses stays in the outbox for the checker."""
    if not entries:
        return
    refused = {(e.shipment_id, e.sequence) for e in publisher.publish(entries)}
    accepted = [e for e in entries if (e.shipment_id, e.sequence) not in refused]
    if accepted:
        store.delete_outbox(accepted)


def _write_one(
    partition: Partition,
    write: IncidentWrite,
    detail_type: str,
    open_types: list[str],
    *,
    attempt: int,
    store: PartitionStore,
    publisher: Publisher,
    now: datetime,
) -> bool:
    """Commit one exception change with its announcement, then publish it. ``False`` when the
    shipment changed under us (after a jittered pause: the caller reloads and tries again)."""
    shipment = partition.shipment.model_copy(update={"open_exceptions": open_types})
    updated, entries = announced(shipment, [Announcement(detail_type, write.exception, ())], now)
    try:
        store.commit(
            Commit(
                shipment=updated,
                expected_version=partition.shipment.version,
                outbox=entries,
                incidents=[write],
            )
        )
    except Conflict:
        time.sleep(random.uniform(0, 0.05 * 2**attempt))  # noqa: S311 - jitter
        return False
    _publish(entries, store, publisher)
    return True


def resolve_by_operator(
    exception_id: str,
    shipment_id: str,
    *,
    note: str,
    store: PartitionStore,
    publisher: Publisher,
    now: datetime,
) -> Incident:
    """Close an open exception by hand (``POST /v1/exceptions/{id}/resolve``).

    ``NotFound`` if the shipment has no such exception; an exception already resolved is
    returned as it is (resolving twice changes nothing and publishes nothing).
    """
    for attempt in range(WRITE_ATTEMPTS):
        partition = store.load(shipment_id)
        found = next((e for e in partition.incidents if e.exception_id == exception_id), None) if partition else None
        if partition is None or found is None:
            raise NotFound("no exception with this id")
        if not found.is_open:
            return found
        closed = resolved(found, now=now, by=ResolvedBy.OPERATOR, note=note)
        open_types = sorted({e.type.value for e in partition.incidents if e.is_open and e.exception_id != exception_id})
        written = _write_one(
            partition,
            IncidentWrite(closed, Expect.OPEN),
            EXCEPTION_RESOLVED,
            open_types,
            attempt=attempt,
            store=store,
            publisher=publisher,
            now=now,
        )
        if written:
            return closed
    raise Conflict("the shipment kept changing; try again")


def open_incident(
    shipment_id: str,
    type_: IncidentType,
    episode: str,
    *,
    cause_at: datetime,
    details: dict[str, Any] | None,
    store: PartitionStore,
    publisher: Publisher,
    now: datetime,
) -> tuple[Incident, bool]:
    """Open an exception of ``type_`` for ``episode`` (a claim: ``POST
    /v1/shipments/{id}/claims``), with its playbook. Returns it and whether it was created:
    the same episode opened again returns the stored one unchanged (idempotent)."""
    for attempt in range(WRITE_ATTEMPTS):
        partition = store.load(shipment_id)
        if partition is None:
            raise NotFound("no shipment with this id")
        exception_id = incident_id_for(shipment_id, type_, episode)
        existing = next((e for e in partition.incidents if e.exception_id == exception_id), None)
        if existing is not None:
            return existing, False
        created = new_incident(
            partition.shipment, type_, episode, now=now, cause_at=cause_at, rules=playbooks(), details=details
        )
        open_types = sorted({e.type.value for e in partition.incidents if e.is_open} | {type_.value})
        written = _write_one(
            partition,
            IncidentWrite(created, Expect.NEW),
            EXCEPTION_RAISED,
            open_types,
            attempt=attempt,
            store=store,
            publisher=publisher,
            now=now,
        )
        if written:
            return created, True
    raise Conflict("the shipment kept changing; try again")
