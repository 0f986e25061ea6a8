"""Persistence items of the shipments table and their mapping to domain models.

One table, one partition per shipment (``pk = SHP#<id>``), read in one Query:

==========================  ==============================  ===============================
item                        sk                              notes
==========================  ==============================  ===============================
shipment record             ``META``                        derived state + ``version``
registration                ``REG``                         the merchant's data, private
timeline event              ``EVT#<instant>#<event_id>``    sorted by instant; id = dedup
outbox entry                ``OUT#<sequence>``              deleted once on the bus
exception                   ``EXC#<type>#<episode>``        ``shared.dal.incidents``
==========================  ==============================  ===============================

Beside them: ``pk = TRK#<carrier>#<tracking number>`` items map every tracking number
(both legs of a multi-carrier shipment) to its shipment, written with a condition so two
processors can never create two shipments for one parcel; ``pk = QRN#<day>`` items keep
quarantined payloads. Shipment and event items carry ``public_token``, the key of the
``ByToken`` index, so a tracking page is one Query that never sees private attributes.

Timers: a shipment record (its silence deadline) and an open exception (its SLA) carry
``timer_bucket`` and ``timer_due_at``, the keys of the sparse, keys-only ``ByTimer`` index
the silence checker reads. The bucket is the UTC hour of the timer, never earlier than the
hour of the write (a timer already past lands in the current hour, which the checker always
reads), plus a shard of the shipment id.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from shared.clock import isoformat_z
from shared.models.canonical import CanonicalEvent, sortable_text
from shared.models.shipment import (
    REGISTRATION_FIELDS,
    OutboxEntry,
    QuarantineRecord,
    Shipment,
    StoredEvent,
    TrackingKey,
    last_scan_of,
)

META = "META"
REGISTRATION = "REG"
EVENT_PREFIX = "EVT#"
OUTBOX_PREFIX = "OUT#"

_EVENT_FIELDS = tuple(CanonicalEvent.model_fields)


def shipment_pk(shipment_id: str) -> str:
    return f"SHP#{shipment_id}"


def tracking_pk(key: TrackingKey) -> str:
    return f"TRK#{key.carrier}#{key.tracking_number}"


sortable_instant = sortable_text


TIMER_SHARDS = 2  # lazy timers write rarely: two GSI partitions per hour are plenty; fewer Queries per run


def timer_shard(shipment_id: str) -> int:
    return int(hashlib.sha256(shipment_id.encode()).hexdigest()[:4], 16) % TIMER_SHARDS


def bucket_hour(instant: datetime) -> str:
    """The ``ByTimer`` time bucket (a UTC hour) holding ``instant``."""
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H")


def timer_bucket(shipment_id: str, due_at: datetime, written_at: datetime) -> str:
    return f"{bucket_hour(max(due_at, written_at))}#{timer_shard(shipment_id)}"


def event_sk(event: CanonicalEvent) -> str:
    return f"{EVENT_PREFIX}{sortable_instant(event.occurred_at)}#{event.event_id}"


def outbox_sk(sequence: int) -> str:
    return f"{OUTBOX_PREFIX}{sequence:010d}"


def event_item(event: CanonicalEvent, *, shipment: Shipment, source: str) -> dict[str, Any]:
    return {
        "pk": shipment_pk(shipment.shipment_id),
        "sk": event_sk(event),
        "entity": "event",
        "public_token": shipment.public_token,
        "source": source,
        **event.model_dump(mode="json"),
    }


def event_from_item(item: dict[str, Any]) -> StoredEvent:
    event = CanonicalEvent.model_validate({name: item.get(name) for name in _EVENT_FIELDS})
    return StoredEvent(event=event, source=item.get("source", "unknown"))


# The record is rewritten by every change and every poll: kept at 1 KB or less, it costs one write
# unit (two in a transaction) instead of two (four). So it leaves out what the partition already
# holds — the last scan is the timeline's last event — and the registration, which changes only
# when the merchant registers: that lives in its own item beside the record (``REG``), written
# only when it changes. ``order_id`` stays on the record: it keys ``ByOrder``.
REGISTRATION_APART = tuple(name for name in REGISTRATION_FIELDS if name != "order_id")
_NOT_ON_RECORD: set[str] = {"last_scan", *REGISTRATION_APART}


def shipment_item(shipment: Shipment) -> dict[str, Any]:
    """The record, without what it does not store (``_NOT_ON_RECORD``) and without empty
    attributes: the poll and due-index keys must be absent (not null) for a shipment to leave
    a sparse index; an empty list is the model's default."""
    fields = {
        name: value
        for name, value in shipment.model_dump(mode="json", exclude=_NOT_ON_RECORD).items()
        if value is not None and value != []
    }
    item = {"pk": shipment_pk(shipment.shipment_id), "sk": META, "entity": "shipment", **fields}
    if shipment.timer_due_at is not None:
        item["timer_bucket"] = timer_bucket(shipment.shipment_id, shipment.timer_due_at, shipment.updated_at)
    return item


def registration_item(shipment: Shipment) -> dict[str, Any]:
    """The registration of a registered shipment, as its own item (private: no index key)."""
    fields = shipment.model_dump(mode="json", include=set(REGISTRATION_APART))
    return {
        "pk": shipment_pk(shipment.shipment_id),
        "sk": REGISTRATION,
        "entity": "registration",
        **{name: value for name, value in fields.items() if value is not None},
    }


def shipment_from_item(
    item: dict[str, Any],
    events: Sequence[StoredEvent] | None = None,
    registration: dict[str, Any] | None = None,
) -> Shipment:
    """The record, with its ``registration`` item and what its partition's ``events`` derive
    (``last_scan``). Records written before these moved off the record still carry them, and
    keep them until their next write (``registration_apart`` tells the store to move them)."""
    fields = {name: item[name] for name in Shipment.model_fields if name in item}
    if registration is not None:
        fields |= {name: registration[name] for name in REGISTRATION_APART if name in registration}
        fields["registration_apart"] = True
    if events is not None:
        fields["last_scan"] = last_scan_of(events)
    return Shipment.model_validate(fields)


def tracking_item(key: TrackingKey, shipment_id: str, created_at: datetime) -> dict[str, Any]:
    return {
        "pk": tracking_pk(key),
        "sk": "TRK",
        "entity": "tracking_number",
        "carrier": key.carrier,
        "tracking_number": key.tracking_number,
        "shipment_id": shipment_id,
        "created_at": isoformat_z(created_at),
    }


def outbox_item(entry: OutboxEntry) -> dict[str, Any]:
    return {
        "pk": shipment_pk(entry.shipment_id),
        "sk": outbox_sk(entry.sequence),
        "entity": "outbox",
        **entry.model_dump(mode="json"),
    }


def outbox_from_item(item: dict[str, Any]) -> OutboxEntry:
    return OutboxEntry.model_validate({name: item.get(name) for name in OutboxEntry.model_fields})


def quarantine_item(record: QuarantineRecord) -> dict[str, Any]:
    return {
        "pk": f"QRN#{record.received_at.astimezone(UTC):%Y-%m-%d}",
        "sk": f"{sortable_instant(record.received_at)}#{record.content_sha256}",
        "entity": "quarantine",
        "source": record.source,
        "received_at": isoformat_z(record.received_at),
        "delivery_id": record.delivery_id,
        "content_sha256": record.content_sha256,
        "archive_bucket": record.archive_bucket,
        "archive_key": record.archive_key,
        "reason": record.reason[:1000],
    }
