"""The ops routes' logic on in-memory fakes: the queue's rows and filters, operator
resolutions, delivered-not-received claims and refund decisions through the stored shipment."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from shared import clock
from shared.clock import FrozenClock, isoformat_z
from shared.dal.incidents import QueuePage
from shared.errors import Conflict, InvalidInput, MalformedPayload, NotFound
from shared.logic.incidents.playbooks import EXCEPTION_RAISED, EXCEPTION_RESOLVED
from shared.logic.ingest.process import Staged, commit_batch
from shared.logic.merchant.ops import (
    EXCEPTION_NOT_FOUND,
    OpsServices,
    list_exceptions,
    record_claim,
    refund_decision,
    resolve_exception,
)
from shared.logic.shipments.chain import CommitOptions
from shared.models.canonical import CanonicalEvent, IncidentType, Milestone
from shared.models.incidents import Incident, IncidentStatus, Owner
from shared.models.ops import human_duration
from shared.models.refunds import Decision, Reason
from tests.builders import T0, scan
from tests.fakes import InMemoryShipmentStore, RecordingPublisher

M, X = Milestone, IncidentType


class StoredExceptions:
    """``IncidentReader`` over the fake store's exception items (offset cursors)."""

    def __init__(self, store: InMemoryShipmentStore) -> None:
        self.store = store

    def _all(self) -> list[Incident]:
        return [e for items in self.store.incidents.values() for e in items.values()]

    def get(self, exception_id: str) -> Incident | None:
        return next((e for e in self._all() if e.exception_id == exception_id), None)

    def list_queue(
        self,
        *,
        status: IncidentStatus = IncidentStatus.OPEN,
        owners: Any = (),
        type: IncidentType | None = None,  # noqa: A002
        limit: int = 50,
        cursor: str | None = None,
    ) -> QueuePage:
        wanted = set(owners) or set(Owner)
        found = sorted(
            (e for e in self._all() if e.status is status and e.owner in wanted and (type is None or e.type is type)),
            key=lambda e: (e.sla_due_at, e.shipment_id, e.exception_id),
        )
        start = int(cursor) if cursor else 0
        page = found[start : start + limit]
        return QueuePage(page, str(start + limit) if start + limit < len(found) else None)


class Ops:
    """The ops routes over in-memory fakes, on a frozen clock; carrier events go through the
    processor's commit path, as the event_processor would write them."""

    def __init__(self) -> None:
        self.store = InMemoryShipmentStore()
        self.publisher = RecordingPublisher()
        self.clock = FrozenClock(T0)
        self.services = OpsServices(store=self.store, incidents=StoredExceptions(self.store), publisher=self.publisher)

    def carrier(self, *events: CanonicalEvent, number: str = "1Z4Y0A190348261953") -> str:
        with clock.use_clock(self.clock):
            outcome = commit_batch(
                [Staged(message_id=f"m-{len(self.publisher.published)}", source="ups", events=list(events))],
                store=self.store,
                publisher=self.publisher,
                options=CommitOptions(),
            )
        assert not outcome.failed_message_ids, outcome.errors
        (shipment_id,) = [s.shipment_id for s in self.store.shipments.values() if s.tracking_number == number]
        return shipment_id

    def at(self, hours: float) -> None:
        self.clock.set(T0 + timedelta(hours=hours))

    def call(self, function: Any, *args: Any) -> Any:
        with clock.use_clock(self.clock):
            return function(*args, self.services)

    def published(self, detail_type: str) -> list[dict[str, Any]]:
        return [e.detail for e in self.publisher.published if e.detail_type == detail_type]

    def open_exceptions(self, shipment_id: str) -> list[Incident]:
        return [e for e in self.store.incidents.get(shipment_id, {}).values() if e.is_open]


@pytest.fixture
def ops() -> Ops:
    return Ops()


def claim(**changes: Any) -> str:
    body: dict[str, Any] = {
        "description": "Customer says nothing was left at the door or with neighbours.",
        "claimed_at": "2026-11-04T18:00:00+01:00",
        "contact_channel": "email",
        "reference": "ZD-4411",
    }
    body.update(changes)
    return json.dumps({k: v for k, v in body.items() if v is not None})


def delivered(ops: Ops) -> str:
    """A parcel picked up at T0 and delivered 48 h later (2026-11-04 12:00 UTC)."""
    shipment_id = ops.carrier(scan(M.PICKED_UP, 0), scan(M.OUT_FOR_DELIVERY, 46), scan(M.DELIVERED, 48))
    ops.at(53)  # 2026-11-04 17:00 UTC
    return shipment_id


# ------------------------------------------------------------------------------ the queue


def test_queue_rows_give_an_agent_everything_in_one_answer(ops: Ops) -> None:
    # Given a parcel the carrier reports with an address problem, last seen at a depot
    shipment_id = ops.carrier(scan(M.PICKED_UP, 0), scan(M.HANDED_TO_LAST_MILE, 20, city="CHICAGO"))
    ops.carrier(scan(None, 22, exception=X.ADDRESS_ISSUE, city="CHICAGO"))
    # When support opens its queue 3 hours later
    ops.at(25)
    page = ops.call(list_exceptions, {"owner": "support"})
    # Then one row says what happened, where the parcel was last seen, what to do and how long is left
    (row,) = page.items
    assert row.shipment_id == shipment_id
    assert row.type is X.ADDRESS_ISSUE
    assert (row.carrier, row.tracking_number) == ("ups", "1Z4Y0A190348261953")
    assert [(leg.carrier, leg.tracking_number) for leg in row.tracking_numbers] == [("ups", "1Z4Y0A190348261953")]
    assert row.owner is Owner.SUPPORT
    assert row.next_action.startswith("Ask the customer to confirm the address")
    assert row.customer_message_key == "exception.address_issue"
    assert row.last_scan is not None
    assert row.last_scan.place is not None and row.last_scan.place.city == "CHICAGO"
    assert row.last_scan.occurred_at == T0 + timedelta(hours=22)
    # the address playbook gives support 8 hours from raising (the commit, on the clock at T0)
    assert row.sla_due_at == T0 + timedelta(hours=8)
    assert row.overdue is True
    assert row.sla_left_seconds == -17 * 3600
    assert row.sla_left == "overdue 17h"
    assert row.escalated is False
    assert page.as_of == T0 + timedelta(hours=25)


def test_queue_filters_by_owner_type_and_status(ops: Ops) -> None:
    # Given an address problem (support) on one parcel and a delay (carrier desk) on another
    ops.carrier(scan(M.PICKED_UP, 0), scan(None, 2, exception=X.ADDRESS_ISSUE))
    ops.carrier(
        scan(M.PICKED_UP, 0, tracking_number="1Z4Y0A190348261954"),
        scan(None, 3, exception=X.DELAYED, tracking_number="1Z4Y0A190348261954"),
        number="1Z4Y0A190348261954",
    )
    ops.at(4)

    def types(query: dict[str, str]) -> list[str]:
        return [row.type.value for row in ops.call(list_exceptions, query).items]

    # Then each filter narrows the queue, and several owners may be asked at once
    assert types({}) == ["address_issue", "delayed"]  # oldest SLA first (8 h before 48 h)
    assert types({"owner": "carrier_desk"}) == ["delayed"]
    assert types({"owner": "support,carrier_desk"}) == ["address_issue", "delayed"]
    assert types({"type": "delayed"}) == ["delayed"]
    assert types({"status": "resolved"}) == []


def test_queue_pages_with_a_cursor_bound_to_its_filters(ops: Ops) -> None:
    # Given three parcels with a delay each
    for n in range(3):
        number = f"1Z4Y0A19034826195{n}"
        ops.carrier(
            scan(M.PICKED_UP, 0, tracking_number=number),
            scan(None, 1 + n, exception=X.DELAYED, tracking_number=number),
            number=number,
        )
    ops.at(5)
    # When the queue is read two at a time
    first = ops.call(list_exceptions, {"limit": "2"})
    second = ops.call(list_exceptions, {"limit": "2", "cursor": first.next_cursor})
    # Then every exception comes once, and the last page says so
    assert len(first.items) == 2 and len(second.items) == 1
    assert second.next_cursor is None
    ids = [row.exception_id for row in [*first.items, *second.items]]
    assert len(set(ids)) == 3
    # And a cursor reused with other filters is refused rather than misread
    with pytest.raises(InvalidInput, match="cursor: made for other filters"):
        ops.call(list_exceptions, {"limit": "2", "cursor": first.next_cursor, "type": "lost"})


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"owner": "finance"}, "owner: one of support, ops, carrier_desk, warehouse"),
        ({"owner": "support,nobody"}, "owner: one of"),
        ({"type": "stolen"}, "type: one of no_first_scan"),
        ({"status": "closed"}, "status: one of open, resolved"),
        ({"limit": "0"}, "limit: a whole number from 1 to 100"),
        ({"limit": "101"}, "limit:"),
        ({"limit": "ten"}, "limit:"),
        ({"sort": "sla"}, "sort: not a parameter of this route"),
        ({"cursor": "not-a-cursor"}, "cursor: not a cursor this route returned"),
        ({"cursor": "eyJmIjoxfQ"}, "cursor:"),  # base64 JSON, but not ours
    ],
)
def test_bad_queue_filters_are_refused_naming_the_parameter(ops: Ops, query: dict[str, str], field: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        ops.call(list_exceptions, query)
    assert refused.value.detail.startswith(field.split(":")[0] + ":")
    assert field in refused.value.detail


def test_sla_left_reads_like_a_person_would_say_it() -> None:
    assert human_duration(timedelta(hours=5, minutes=20, seconds=59)) == "5h 20m"
    assert human_duration(timedelta(days=2, hours=3, minutes=10)) == "2d 3h"
    assert human_duration(timedelta(seconds=30)) == "0m"
    assert human_duration(-timedelta(minutes=45)) == "overdue 45m"


# ------------------------------------------------------------------------------ resolve


def test_an_operator_resolves_an_exception_with_a_note(ops: Ops) -> None:
    # Given an open address problem
    shipment_id = ops.carrier(scan(M.PICKED_UP, 0), scan(None, 2, exception=X.ADDRESS_ISSUE))
    (exception,) = ops.open_exceptions(shipment_id)
    ops.at(3)
    # When support resolves it with a note
    row = ops.call(resolve_exception, exception.exception_id, json.dumps({"note": "Customer confirmed; UPS updated."}))
    # Then it leaves the open queue, keeps the note, and the bus hears of it once, in sequence
    assert row.status is IncidentStatus.RESOLVED
    assert row.resolved_by is not None and row.resolved_by.value == "operator"
    assert row.resolution_note == "Customer confirmed; UPS updated."
    assert ops.open_exceptions(shipment_id) == []
    assert ops.call(list_exceptions, {}).items == []
    (resolved,) = ops.published(EXCEPTION_RESOLVED)
    assert resolved["exception_id"] == exception.exception_id
    raised = ops.published(EXCEPTION_RAISED)
    assert resolved["sequence"] > raised[0]["sequence"]
    assert ops.store.outbox.get(shipment_id, {}) == {}  # published, then forgotten


def test_resolving_twice_is_a_conflict_and_publishes_nothing_more(ops: Ops) -> None:
    shipment_id = ops.carrier(scan(M.PICKED_UP, 0), scan(None, 2, exception=X.ADDRESS_ISSUE))
    (exception,) = ops.open_exceptions(shipment_id)
    ops.call(resolve_exception, exception.exception_id, json.dumps({"note": "done"}))
    with pytest.raises(Conflict, match="already resolved by an operator"):
        ops.call(resolve_exception, exception.exception_id, json.dumps({"note": "again"}))
    assert len(ops.published(EXCEPTION_RESOLVED)) == 1


def test_an_exception_the_parcel_already_cleared_is_a_conflict(ops: Ops) -> None:
    # Given an address problem the carrier cleared by moving the parcel on
    shipment_id = ops.carrier(scan(M.PICKED_UP, 0), scan(None, 2, exception=X.ADDRESS_ISSUE))
    (exception,) = ops.open_exceptions(shipment_id)
    ops.carrier(scan(M.OUT_FOR_DELIVERY, 5))
    # Then an operator's late resolution is refused, saying why
    with pytest.raises(Conflict, match="already resolved automatically"):
        ops.call(resolve_exception, exception.exception_id, json.dumps({"note": "fixed"}))


@pytest.mark.parametrize("exception_id", ["exc_" + "0" * 24, "exc_123", "EXC#shp_1", "../../etc", "x" * 300, ""])
def test_an_unknown_exception_is_404_whatever_the_id_looks_like(ops: Ops, exception_id: str) -> None:
    with pytest.raises(NotFound) as refused:
        ops.call(resolve_exception, exception_id, json.dumps({"note": "n"}))
    assert refused.value.detail == EXCEPTION_NOT_FOUND


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ("{}", "note: is required"),
        ('{"note": "   "}', "note: is blank"),
        ('{"note": "' + "x" * 1001 + '"}', "note: String should have at most 1000 characters"),
        ('{"note": "ok", "by": "me"}', "by: is not a field of this request"),
        ('{"note": 5}', "note: Input should be a valid string"),
    ],
)
def test_a_resolution_without_a_usable_note_is_refused_and_writes_nothing(ops: Ops, body: str, field: str) -> None:
    shipment_id = ops.carrier(scan(M.PICKED_UP, 0), scan(None, 2, exception=X.ADDRESS_ISSUE))
    (exception,) = ops.open_exceptions(shipment_id)
    commits = ops.store.commits
    with pytest.raises(InvalidInput) as refused:
        ops.call(resolve_exception, exception.exception_id, body)
    assert refused.value.detail == field
    assert ops.store.commits == commits
    assert ops.open_exceptions(shipment_id) == [exception]


@pytest.mark.parametrize("body", ["", "not json", "[1, 2]", '"note"'])
def test_a_resolution_body_that_is_not_a_json_object_is_refused(ops: Ops, body: str) -> None:
    shipment_id = ops.carrier(scan(M.PICKED_UP, 0), scan(None, 2, exception=X.ADDRESS_ISSUE))
    (exception,) = ops.open_exceptions(shipment_id)
    with pytest.raises(MalformedPayload):
        ops.call(resolve_exception, exception.exception_id, body)


# ------------------------------------------------------------------------------ claims


def test_a_claim_on_a_delivered_parcel_opens_the_exception_with_its_details(ops: Ops) -> None:
    # Given a parcel delivered 5 hours ago
    shipment_id = delivered(ops)
    # When support records the customer's not-received claim
    answer = ops.call(record_claim, shipment_id, claim())
    # Then a delivered_not_received exception is open for support, with the claim's details
    assert answer.created is True
    (exception,) = ops.open_exceptions(shipment_id)
    assert exception.type is X.DELIVERED_NOT_RECEIVED
    assert exception.owner is Owner.SUPPORT
    assert exception.details["description"].startswith("Customer says nothing")
    assert exception.details["contact_channel"] == "email"
    assert exception.details["reference"] == "ZD-4411"
    assert exception.details["claimed_at"] == "2026-11-04T17:00:00Z"
    assert exception.details["delivered_at"] == "2026-11-04T12:00:00Z"
    assert answer.claim.exception_id == exception.exception_id
    # and the refund rules say: wait until two days after the delivery
    decision = answer.refund_decision
    assert (decision.decision, decision.reason) == (Decision.WAIT, Reason.CLAIM_TOO_EARLY)
    assert decision.earliest_at == "2026-11-06T12:00:00Z"
    # and the bus hears of the claim, without the customer's words
    (raised,) = ops.published(EXCEPTION_RAISED)
    assert raised["type"] == "delivered_not_received"
    assert "nothing was left" not in json.dumps(raised)


def test_the_same_claim_sent_twice_is_recorded_once(ops: Ops) -> None:
    shipment_id = delivered(ops)
    first = ops.call(record_claim, shipment_id, claim())
    again = ops.call(record_claim, shipment_id, claim())
    assert (first.created, again.created) == (True, False)
    assert again.claim.exception_id == first.claim.exception_id
    assert len(ops.published(EXCEPTION_RAISED)) == 1


def test_a_second_claim_while_one_is_open_is_a_conflict_naming_it(ops: Ops) -> None:
    shipment_id = delivered(ops)
    first = ops.call(record_claim, shipment_id, claim())
    with pytest.raises(Conflict, match=first.claim.exception_id):
        ops.call(record_claim, shipment_id, claim(description="A different report of the same parcel."))


def test_after_the_claim_window_the_refund_is_allowed(ops: Ops) -> None:
    shipment_id = delivered(ops)
    ops.call(record_claim, shipment_id, claim())
    ops.at(96)  # two days after the delivery at T0 + 48 h
    answer = ops.call(refund_decision, shipment_id)
    assert (answer.decision, answer.reason) == (Decision.ALLOW, Reason.CLAIM_WINDOW_PASSED)
    assert answer.shipment_id == shipment_id
    assert [e.milestone for e in answer.evidence] == [M.DELIVERED]


def test_a_claim_resolved_by_an_operator_no_longer_opens_a_refund(ops: Ops) -> None:
    # Given a claim the customer withdrew (the parcel was with a neighbour)
    shipment_id = delivered(ops)
    answer = ops.call(record_claim, shipment_id, claim())
    ops.call(resolve_exception, answer.claim.exception_id, json.dumps({"note": "Found with the neighbour."}))
    ops.at(120)
    # Then the delivered parcel is not refundable
    decision = ops.call(refund_decision, shipment_id)
    assert (decision.decision, decision.reason) == (Decision.DENY, Reason.DELIVERED)


@pytest.mark.parametrize(
    ("events", "status"),
    [
        ([scan(M.PICKED_UP, 0)], "picked_up"),
        ([scan(M.PICKED_UP, 0), scan(M.OUT_FOR_DELIVERY, 40)], "out_for_delivery"),
        ([scan(M.DELIVERED, 10), scan(M.RETURN_STARTED, 30)], "return_started"),
    ],
)
def test_a_claim_on_a_parcel_that_is_not_delivered_is_a_conflict(
    ops: Ops, events: list[CanonicalEvent], status: str
) -> None:
    shipment_id = ops.carrier(*events)
    ops.at(50)
    with pytest.raises(Conflict) as refused:
        ops.call(record_claim, shipment_id, claim())
    assert refused.value.detail.startswith(f"status: the parcel is not delivered ({status})")
    assert ops.open_exceptions(shipment_id) == []


@pytest.mark.parametrize(
    ("changes", "detail"),
    [
        ({"description": None}, "description: is required"),
        ({"description": "lost"}, "description: at least 10 characters"),
        ({"description": "x" * 2001}, "description: String should have at most 2000 characters"),
        ({"description": "Nothing\x00 here at all"}, "description: contains control characters"),
        ({"claimed_at": None}, "claimed_at: is required"),
        ({"claimed_at": "2026-11-04T18:00:00"}, "claimed_at: Input should have timezone info"),
        ({"claimed_at": "yesterday"}, "claimed_at:"),
        ({"claimed_at": "2026-11-05T18:00:00Z"}, "claimed_at: is in the future"),
        ({"claimed_at": "2026-11-04T11:00:00Z"}, "claimed_at: is before the delivery scan"),
        ({"contact_channel": "pigeon"}, "contact_channel: Input should be 'email', 'phone'"),
        ({"contact_channel": None}, "contact_channel: is required"),
        ({"reference": "r" * 101}, "reference: String should have at most 100 characters"),
        ({"customer_email": "a@b.co"}, "customer_email: is not a field of this request"),
    ],
)
def test_a_bad_claim_is_refused_naming_the_field_and_writes_nothing(
    ops: Ops, changes: dict[str, Any], detail: str
) -> None:
    shipment_id = delivered(ops)
    commits, published = ops.store.commits, len(ops.publisher.published)
    with pytest.raises(InvalidInput) as refused:
        ops.call(record_claim, shipment_id, claim(**changes))
    assert refused.value.detail.startswith(detail)
    assert (ops.store.commits, len(ops.publisher.published)) == (commits, published)


@pytest.mark.parametrize("shipment_id", ["shp_" + "0" * 24, "shp_1", "1Z4Y0A190348261953", "'; DROP", "x" * 500])
def test_claims_and_decisions_for_an_unknown_shipment_are_404_whatever_the_id(ops: Ops, shipment_id: str) -> None:
    delivered(ops)
    with pytest.raises(NotFound) as claim_refused:
        ops.call(record_claim, shipment_id, claim())
    with pytest.raises(NotFound) as decision_refused:
        ops.call(refund_decision, shipment_id)
    assert claim_refused.value.detail == decision_refused.value.detail == "no shipment with this id"


def test_refund_decision_of_a_parcel_in_transit_waits_for_the_silence_threshold(ops: Ops) -> None:
    # Given a parcel last scanned Monday 2 Nov 12:00 UTC at a Louisville hub (domestic, unregistered)
    shipment_id = ops.carrier(scan(M.PICKED_UP, -2), scan(M.ARRIVED_HUB, 0))
    ops.at(1)
    # Then no refund yet: 48 business hours from the scan, in Louisville's time
    answer = ops.call(refund_decision, shipment_id)
    assert (answer.decision, answer.reason) == (Decision.WAIT, Reason.MOVING)
    assert answer.earliest_at == isoformat_z(T0 + timedelta(hours=48))
    assert answer.status is M.ARRIVED_HUB
