"""The read side of a shipment for its merchant: the shipment behind an id, its full view and
the ops queue's rows.

Read side: nothing here writes or joins the write transaction (``shared.logic.shipments``);
an import-linter contract keeps it so (pyproject.toml).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from shared.errors import NotFound
from shared.logic.shipments.ports import ShipmentReader
from shared.models.incidents import Incident
from shared.models.merchant import MerchantEvent, MerchantShipmentView, Registration
from shared.models.ops import LastScan, QueuePlace, QueueRow, TrackingLeg, human_duration
from shared.models.shipment import Partition
from shared.models.views import STATUS_LABELS, PublicLeg

NOT_FOUND = "no shipment with this id"
SHIPMENT_ID = re.compile(r"^shp_[0-9a-f]{24}$")


def find_shipment(shipment_id: str, store: ShipmentReader) -> Partition:
    """The shipment behind an id (a merged one answers with the shipment it joined);
    ``NotFound`` with one answer whatever the id looks like."""
    if not SHIPMENT_ID.fullmatch(shipment_id):
        raise NotFound(NOT_FOUND)
    partition = store.load(shipment_id)
    for _ in range(4):  # merges chain rarely, and never in a loop
        if partition is None or not partition.shipment.merged_into:
            break
        partition = store.load(partition.shipment.merged_into)
    if partition is None:
        raise NotFound(NOT_FOUND)
    return partition


def shipment_view(
    partition: Partition,
    *,
    tracking_link: str,
    exceptions: Iterable[QueueRow] = (),
    eta: dict[str, Any] | None = None,
) -> MerchantShipmentView:
    """Everything about one shipment for its merchant, newest event first."""
    shipment = partition.shipment
    events = sorted(partition.events, key=lambda stored: stored.event.sort_key, reverse=True)
    registration = None
    if shipment.registered_at is not None:
        registration = Registration(
            registered_at=shipment.registered_at,
            order_id=shipment.order_id,
            origin=shipment.origin,
            destination=shipment.destination,
            customer=shipment.customer,
            locale=shipment.locale,
            time_zone=shipment.time_zone,
            promised_delivery_date=shipment.promised_delivery_date,
            label_created_at=shipment.label_created_at,
        )
    return MerchantShipmentView(
        shipment_id=shipment.shipment_id,
        order_id=shipment.order_id,
        carrier=shipment.carrier,
        tracking_number=shipment.tracking_number,
        tracking_numbers=[PublicLeg(carrier=key.carrier, tracking_number=key.tracking_number) for key in shipment.keys],
        status=shipment.status,
        status_label=STATUS_LABELS[shipment.status],
        status_since=shipment.status_since,
        last_event_at=shipment.last_event_at,
        event_count=shipment.event_count,
        created_at=shipment.created_at,
        updated_at=shipment.updated_at,
        tracking_token=shipment.public_token,
        tracking_url=tracking_link,
        registration=registration,
        exceptions=list(exceptions),
        eta=eta,
        events=[
            MerchantEvent(
                event_id=stored.event.event_id,
                carrier=stored.event.carrier,
                tracking_number=stored.event.tracking_number,
                milestone=stored.event.milestone,
                exception=stored.event.exception,
                occurred_at=stored.event.occurred_at,
                occurred_at_local=stored.event.occurred_at_local,
                time_source=stored.event.time_source,
                location=stored.event.location,
                description=stored.event.description,
                raw_code=stored.event.raw_code,
                source=stored.source,
                received_at=stored.event.received_at,
            )
            for stored in events
        ],
    )


def queue_row(exception: Incident, now: datetime) -> QueueRow:
    """An exception as the queue shows it, its SLA counted from ``now``."""
    left = exception.sla_left(now)
    scan = exception.last_scan
    place = scan.location if scan is not None else None
    legs = [text.partition(":") for text in exception.tracking_numbers] or [
        (exception.carrier, ":", exception.tracking_number)
    ]
    return QueueRow(
        exception_id=exception.exception_id,
        shipment_id=exception.shipment_id,
        order_id=exception.order_id,
        carrier=exception.carrier,
        tracking_number=exception.tracking_number,
        tracking_numbers=[TrackingLeg(carrier=carrier, tracking_number=number) for carrier, _, number in legs],
        type=exception.type,
        status=exception.status,
        owner=exception.owner,
        escalated=exception.escalated_at is not None,
        escalated_at=exception.escalated_at,
        escalated_from=exception.escalated_from,
        next_action=exception.next_action,
        customer_message_key=exception.customer_message,
        raised_at=exception.raised_at,
        cause_at=exception.cause_at,
        sla_due_at=exception.sla_due_at,
        sla_left_seconds=int(left.total_seconds()),
        sla_left=human_duration(left),
        overdue=left < timedelta(0),
        last_scan=LastScan(
            milestone=scan.milestone,
            exception=scan.exception,
            description=scan.description,
            place=QueuePlace(city=place.city, region=place.region, postal_code=place.postal_code, country=place.country)
            if place is not None
            else None,
            occurred_at=scan.occurred_at,
            occurred_at_local=scan.occurred_at_local,
            carrier=scan.carrier,
        )
        if scan is not None
        else None,
        details=dict(exception.details),
        resolved_at=exception.resolved_at,
        resolved_by=exception.resolved_by,
        resolution_note=exception.resolution_note,
    )
