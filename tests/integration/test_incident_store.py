"""The exception store on DynamoDB (moto, table from template.yaml): one exception per
(shipment, type, episode), lookups by id, the ops queue index, and the same promises from the
in-memory fake."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from moto import mock_aws

from infra.local.stack import deploy
from infra.local.template import Template
from shared.dal.incidents import DynamoIncidentStore, Expect, IncidentWrite
from shared.dal.shipments import Commit, DynamoShipmentStore
from shared.errors import Conflict, InvalidInput
from shared.logic.incidents.playbooks import new_incident, playbooks, resolved
from shared.logic.ingest.process import ShipmentStore
from shared.models.canonical import IncidentType
from shared.models.incidents import Incident, IncidentStatus, Owner, ResolvedBy
from shared.models.shipment import Shipment, TrackingKey
from tests.builders import T0
from tests.fakes import InMemoryShipmentStore


@pytest.fixture
def table() -> Iterator[str]:
    with mock_aws():
        yield deploy(Template.load()).ref("ShipmentsTable")


def shipment(number: int, version: int = 1) -> Shipment:
    return Shipment(
        shipment_id=f"shp_{number:024x}",
        carrier="ups",
        tracking_number=f"1ZSTORE{number:010d}",
        public_token=f"tok{number:021d}",
        created_at=T0,
        updated_at=T0,
        first_source="ups",
        version=version,
    )


def raised(record: Shipment, type_: IncidentType, episode: str, hours: float = 0) -> Incident:
    return new_incident(record, type_, episode, now=T0 + timedelta(hours=hours), cause_at=T0, rules=playbooks())


def create(store: ShipmentStore, record: Shipment) -> None:
    store.commit(Commit(record, None, claim_keys=[TrackingKey(record.carrier, record.tracking_number)]))


def test_an_episode_is_stored_once_and_found_by_its_id(table: str) -> None:
    shipments, exceptions = DynamoShipmentStore(table), DynamoIncidentStore(table)
    record = shipment(1)
    create(shipments, record)
    hold = raised(record, IncidentType.CUSTOMS_HOLD, "a" * 32)
    # Given an exception committed with the shipment record
    shipments.commit(Commit(shipment(1, 2), 1, incidents=[IncidentWrite(hold, Expect.NEW)]))
    # When the same episode is opened again by a racing writer
    with pytest.raises(Conflict):
        shipments.commit(Commit(shipment(1, 3), 2, incidents=[IncidentWrite(hold, Expect.NEW)]))
    # Then it exists once, found by id, in the shipment's list and in its partition
    assert exceptions.get(hold.exception_id) == hold
    assert exceptions.list_for_shipment(record.shipment_id) == [hold]
    partition = shipments.load(record.shipment_id)
    assert partition is not None and partition.incidents == [hold]
    # and ids that are not ours are simply not found
    for junk in ("exc_" + "0" * 24, "nope", "exc_" + "g" * 24, "x" * 5000, ""):
        assert exceptions.get(junk) is None


def test_resolving_needs_it_open_and_escalating_happens_once(table: str) -> None:
    shipments = DynamoShipmentStore(table)
    record = shipment(2)
    create(shipments, record)
    hold = raised(record, IncidentType.HELD, "b" * 32)
    shipments.commit(Commit(shipment(2, 2), 1, incidents=[IncidentWrite(hold, Expect.NEW)]))
    escalated = hold.model_copy(update={"escalated_at": T0 + timedelta(hours=30), "owner": Owner.OPS})
    shipments.commit(Commit(shipment(2, 3), 2, incidents=[IncidentWrite(escalated, Expect.OPEN_UNESCALATED)]))
    with pytest.raises(Conflict):  # a second checker escalating the same exception
        shipments.commit(Commit(shipment(2, 4), 3, incidents=[IncidentWrite(escalated, Expect.OPEN_UNESCALATED)]))
    closed = resolved(escalated, now=T0 + timedelta(hours=31), by=ResolvedBy.OPERATOR, note="carrier released it")
    shipments.commit(Commit(shipment(2, 4), 3, incidents=[IncidentWrite(closed, Expect.OPEN)]))
    with pytest.raises(Conflict):  # the processor resolving it too, from a stale read
        shipments.commit(Commit(shipment(2, 5), 4, incidents=[IncidentWrite(closed, Expect.OPEN)]))
    assert DynamoIncidentStore(table).get(hold.exception_id) == closed


def test_the_ops_queue_is_oldest_sla_first_per_owner_and_across_owners(table: str) -> None:
    shipments, exceptions = DynamoShipmentStore(table), DynamoIncidentStore(table)
    made: list[Incident] = []
    kinds = [IncidentType.ADDRESS_ISSUE, IncidentType.STALLED, IncidentType.DELAYED, IncidentType.DAMAGED]
    for number in range(12):
        record = shipment(100 + number)
        create(shipments, record)
        # raised at different hours, so SLAs interleave across owners
        exception = raised(record, kinds[number % 4], f"{number:032x}", hours=(number * 7) % 12)
        shipments.commit(Commit(shipment(100 + number, 2), 1, incidents=[IncidentWrite(exception, Expect.NEW)]))
        made.append(exception)
    expected = sorted(made, key=lambda e: (e.sla_due_at, e.shipment_id))

    # Given the whole queue read in pages of 5 across every owner
    pages, cursor = [], None
    while True:
        page = exceptions.list_queue(status=IncidentStatus.OPEN, limit=5, cursor=cursor)
        pages.append(page.items)
        cursor = page.next_cursor
        if cursor is None:
            break
    # Then every exception comes once, oldest SLA first
    assert [len(p) for p in pages] == [5, 5, 2]
    assert [e.exception_id for p in pages for e in p] == [e.exception_id for e in expected]
    # One owner, one type
    support = exceptions.list_queue(owners=[Owner.SUPPORT], limit=50)
    assert [e.exception_id for e in support.items] == [e.exception_id for e in expected if e.owner is Owner.SUPPORT]
    damaged = exceptions.list_queue(owners=[Owner.SUPPORT], type=IncidentType.DAMAGED, limit=50)
    assert {e.type for e in damaged.items} == {IncidentType.DAMAGED} and len(damaged.items) == 3
    assert exceptions.list_queue(status=IncidentStatus.RESOLVED).items == []
    # A cursor that is not ours, or one from another listing, is a 400
    with pytest.raises(InvalidInput):
        exceptions.list_queue(cursor="bm90IGEgY3Vyc29y")
    first = exceptions.list_queue(owners=[Owner.SUPPORT], limit=1)
    assert first.next_cursor is not None
    with pytest.raises(InvalidInput):
        exceptions.list_queue(status=IncidentStatus.RESOLVED, owners=[Owner.SUPPORT], cursor=first.next_cursor)


@pytest.mark.parametrize("kind", ["fake", "dynamodb"])
def test_the_fake_keeps_the_same_exception_promises(kind: str) -> None:
    def scenario(store: ShipmentStore) -> None:
        record = shipment(7)
        create(store, record)
        hold = raised(record, IncidentType.LOST, "c" * 32)
        store.commit(Commit(shipment(7, 2), 1, incidents=[IncidentWrite(hold, Expect.NEW)]))
        with pytest.raises(Conflict):
            store.commit(Commit(shipment(7, 3), 2, incidents=[IncidentWrite(hold, Expect.NEW)]))
        closed = resolved(hold, now=T0, by=ResolvedBy.AUTO)
        store.commit(Commit(shipment(7, 3), 2, incidents=[IncidentWrite(closed, Expect.OPEN)]))
        with pytest.raises(Conflict):
            store.commit(Commit(shipment(7, 4), 3, incidents=[IncidentWrite(closed, Expect.OPEN)]))
        partition = store.load(record.shipment_id)
        assert partition is not None and partition.incidents == [closed] and partition.shipment.version == 3

    if kind == "fake":
        scenario(InMemoryShipmentStore())
        return
    with mock_aws():
        scenario(DynamoShipmentStore(deploy(Template.load()).ref("ShipmentsTable")))
