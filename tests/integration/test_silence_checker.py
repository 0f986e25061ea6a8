"""The silence checker end to end on moto: webhooks through the processor arm the deadlines,
the scheduled checker (ticking every 5 simulated minutes on the runtime clock) raises, re-arms,
escalates and publishes; a scan clears a silence by itself."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from infra.formats.generic import generic_body, generic_event
from infra.local.scheduler import scheduled_event
from infra.local.template import ScheduleSource
from shared import clock
from shared.dal.aws import client
from shared.dal.bus import EventBridgePublisher
from shared.dal.incidents import DynamoIncidentStore
from shared.dal.shipments import Commit, DynamoShipmentStore
from shared.dal.timers import DynamoTimerIndex
from shared.errors import Conflict
from shared.logic.polling.cadence import DEFAULT_POLICY
from shared.logic.timers.checker import Checker
from shared.models.canonical import IncidentType, Milestone
from shared.models.incidents import IncidentStatus, Owner, ResolvedBy
from shared.models.shipment import Partition, Shipment, TrackingKey
from tests.integration.conftest import Deployed

RENO = ZoneInfo("America/Los_Angeles")
# A Wednesday morning in Reno; Thanksgiving (Thursday 26 November 2026) is a US holiday.
START = datetime(2026, 11, 18, 9, 0, tzinfo=RENO)
NUMBER = "1Z4Y0A190348261953"
TICK = timedelta(minutes=5)
MONDAY = datetime(2026, 11, 30, 10, 0, tzinfo=RENO)  # no holiday in the next two weeks
CHECKER = ScheduleSource(function="SilenceCheckerFunction", name="Every5Minutes", expression="rate(5 minutes)")
IN_TRANSIT_GRACE = DEFAULT_POLICY.in_transit * (1 + DEFAULT_POLICY.jitter)  # UPS is polled: one poll cycle


@pytest.fixture
def frozen() -> Iterator[clock.FrozenClock]:
    with clock.use_clock(clock.FrozenClock(START)) as installed:
        assert isinstance(installed, clock.FrozenClock)
        yield installed


def send(deployed: Deployed, *scans: tuple[str, datetime], exception: str | None = None, number: str = NUMBER) -> None:
    """A warehouse/partner webhook carrying UPS scans in Reno, processed at once."""
    body = generic_body(
        [
            generic_event(
                carrier="ups",
                tracking_number=number,
                code=code,
                occurred_at=at.astimezone(RENO),
                city="Reno",
                region="NV",
                country="US",
                exception=exception if code == "note" or exception else None,
            )
            for code, at in scans
        ]
    )
    assert deployed.post_webhook("generic", body).status == 202
    deployed.drain()


def picked_up_on_monday(deployed: Deployed, frozen: clock.FrozenClock) -> datetime:
    """A parcel picked up at ``MONDAY`` (the clock set there); its silence deadline."""
    frozen.set(MONDAY)
    send(deployed, ("picked_up", MONDAY))
    deadline = partition(deployed).shipment.silence_due_at
    assert deadline is not None
    return deadline


def check(deployed: Deployed) -> Any:
    return deployed.host.invoke("SilenceCheckerFunction", scheduled_event(CHECKER, "test", clock.now()))


def tick_until(deployed: Deployed, frozen: clock.FrozenClock, until: datetime) -> None:
    """Fire the checker every 5 minutes of runtime clock until ``until``."""
    while frozen.now() < until:
        frozen.advance(TICK)
        check(deployed)


def partition(deployed: Deployed, number: str = NUMBER) -> Partition:
    store = DynamoShipmentStore(deployed.stack.ref("ShipmentsTable"))
    shipment_id = store.resolve([TrackingKey("ups", number)])[TrackingKey("ups", number)]
    found = store.load(shipment_id)
    assert found is not None
    return found


def exception_events(deployed: Deployed) -> list[dict[str, Any]]:
    return [e for e in deployed.bus_events() if e["detail-type"].startswith("Shipment Exception")]


def test_a_stall_is_raised_within_15_minutes_of_its_business_day_deadline(
    deployed: Deployed, frozen: clock.FrozenClock
) -> None:
    # Given a parcel scanned on the Wednesday before Thanksgiving at 17:00 in Reno
    last_scan = START.replace(hour=17) + timedelta(days=7)
    frozen.set(last_scan - timedelta(days=1))
    send(deployed, ("picked_up", last_scan - timedelta(days=1)))
    frozen.set(last_scan + timedelta(minutes=3))
    send(deployed, ("arrived_hub", last_scan))
    record = partition(deployed).shipment
    # Then its deadline skips Thanksgiving and the weekend: 7 h on Wednesday, Friday, 17 h on
    # Monday make 48 business hours, plus one poll cycle of grace
    expected = datetime(2026, 11, 30, 17, 0, tzinfo=RENO) + IN_TRANSIT_GRACE
    assert record.silence_type is IncidentType.STALLED
    assert record.silence_due_at == expected
    # and the index kept the earlier timer of the first scan (lazy: the checker re-arms it)
    assert record.timer_due_at == datetime(2026, 11, 27, 17, 0, tzinfo=RENO) + IN_TRANSIT_GRACE
    deployed.bus_events()

    # When the checker ticks every 5 minutes through both (starting off its phase)
    frozen.set(record.timer_due_at - timedelta(minutes=12))
    tick_until(deployed, frozen, record.timer_due_at + timedelta(minutes=10))
    assert partition(deployed).incidents == []
    assert partition(deployed).shipment.timer_due_at == expected  # re-armed at the real deadline
    frozen.set(expected - timedelta(hours=1, minutes=2))
    tick_until(deployed, frozen, expected + timedelta(minutes=20))

    # Then exactly one stalled exception, raised in [deadline, deadline + 15 min]
    (exception,) = partition(deployed).incidents
    assert exception.type is IncidentType.STALLED and exception.is_open
    assert exception.cause_at == expected
    assert timedelta(0) <= exception.raised_at - expected <= timedelta(minutes=15)
    assert exception.owner is Owner.CARRIER_DESK
    assert exception.last_scan is not None and exception.last_scan.occurred_at == last_scan
    (raised,) = exception_events(deployed)
    assert raised["detail-type"] == "Shipment Exception Raised"
    assert raised["detail"]["exception_id"] == exception.exception_id
    assert raised["detail"]["state"]["open_exceptions"] == ["stalled"]
    assert partition(deployed).shipment.timer_due_at is None  # nothing left to watch: out of the index


def test_no_exception_when_a_scan_came_before_the_deadline_even_late_and_out_of_order(
    deployed: Deployed, frozen: clock.FrozenClock
) -> None:
    monday = MONDAY
    frozen.set(monday)
    send(deployed, ("picked_up", monday), ("arrived_hub", monday + timedelta(hours=30)))
    frozen.set(monday + timedelta(hours=31))
    first_deadline = partition(deployed).shipment.silence_due_at
    assert first_deadline == monday + timedelta(hours=30 + 48) + IN_TRANSIT_GRACE
    # Given a scan made between the two (older than the latest one) that arrives late, out of order
    frozen.set(monday + timedelta(hours=40))
    send(deployed, ("in_transit", monday + timedelta(hours=12)))
    # Then the deadline still counts from the latest scan
    assert partition(deployed).shipment.silence_due_at == first_deadline
    # And a scan made just before the deadline, delivered within the grace, moves it on
    made = monday + timedelta(hours=30 + 47, minutes=50)
    frozen.set(first_deadline - timedelta(hours=1, minutes=1))
    tick_until(deployed, frozen, first_deadline - timedelta(minutes=10))
    send(deployed, ("in_transit", made))
    tick_until(deployed, frozen, first_deadline + timedelta(hours=6))
    assert partition(deployed).incidents == []
    assert exception_events(deployed) == []
    # (made on Thursday 15:50: 48 business hours end on Monday 15:50)
    assert partition(deployed).shipment.silence_due_at == datetime(2026, 12, 7, 15, 50, tzinfo=RENO) + IN_TRANSIT_GRACE


def test_a_silence_clears_itself_when_the_parcel_moves_and_the_next_one_is_armed(
    deployed: Deployed, frozen: clock.FrozenClock
) -> None:
    deadline = picked_up_on_monday(deployed, frozen)
    frozen.set(deadline - TICK)
    tick_until(deployed, frozen, deadline + timedelta(minutes=10))
    (stalled,) = partition(deployed).incidents
    assert stalled.is_open
    # When the parcel is scanned again
    moved = frozen.now() + timedelta(hours=2)
    frozen.set(moved + timedelta(minutes=4))
    send(deployed, ("arrived_hub", moved))
    # Then the stall is resolved by that scan, announced, and a new silence counts from it
    after = partition(deployed)
    (cleared,) = after.incidents
    assert cleared.status is IncidentStatus.RESOLVED and cleared.resolved_by is ResolvedBy.AUTO
    assert cleared.resolving_event_id is not None
    assert after.shipment.open_exceptions == []
    assert after.shipment.silence_due_at == moved + timedelta(hours=48) + IN_TRANSIT_GRACE
    kinds = [e["detail-type"] for e in exception_events(deployed)]
    assert kinds == ["Shipment Exception Raised", "Shipment Exception Resolved"]


def test_no_first_scan_counts_from_the_label_and_a_pickup_clears_it(
    deployed: Deployed, frozen: clock.FrozenClock
) -> None:
    friday = datetime(2026, 12, 4, 11, 0, tzinfo=RENO)
    frozen.set(friday)
    send(deployed, ("packed", friday))  # the warehouse's label: not a carrier scan
    record = partition(deployed).shipment
    grace = DEFAULT_POLICY.awaiting_first_scan * (1 + DEFAULT_POLICY.jitter)
    assert record.silence_type is IncidentType.NO_FIRST_SCAN
    assert record.silence_due_at == datetime(2026, 12, 8, 11, 0, tzinfo=RENO) + grace  # Tuesday: weekend skipped
    frozen.set(record.silence_due_at - TICK)
    tick_until(deployed, frozen, record.silence_due_at + timedelta(minutes=15))
    (missing,) = partition(deployed).incidents
    assert missing.type is IncidentType.NO_FIRST_SCAN and missing.owner is Owner.WAREHOUSE
    frozen.advance(timedelta(hours=1))
    send(deployed, ("handed_to_carrier", frozen.now() - timedelta(minutes=30)))
    (cleared,) = partition(deployed).incidents
    assert not cleared.is_open
    assert partition(deployed).shipment.silence_type is IncidentType.STALLED


def test_two_checkers_at_once_and_a_retry_raise_one_exception(deployed: Deployed, frozen: clock.FrozenClock) -> None:
    deadline = picked_up_on_monday(deployed, frozen)
    frozen.set(deadline + timedelta(minutes=1))
    table = deployed.stack.ref("ShipmentsTable")
    deployed.bus_events()

    class Interleaved(DynamoTimerIndex):
        """Checker A reads the record, then checker B runs whole before A writes."""

        other_ran = False

        def read_shipment(self, shipment_id: str) -> Shipment | None:
            found = super().read_shipment(shipment_id)
            if not Interleaved.other_ran:
                Interleaved.other_ran = True
                second = Checker(index=DynamoTimerIndex(table), publisher=publisher, now=frozen.now()).run()
                assert sum(v for k, v in second.counts.items() if k.startswith("raised.")) == 1
            return found

    publisher = EventBridgePublisher(deployed.stack.ref("EventBus"))
    first = Checker(index=Interleaved(table), publisher=publisher, now=frozen.now()).run()
    assert not any(k.startswith("raised.") for k in first.counts)
    assert first.counts["raise_conflicts"] == 1
    # a retried run (same instant) finds nothing to do
    retry = Checker(index=DynamoTimerIndex(table), publisher=publisher, now=frozen.now()).run()
    assert not any(k.startswith("raised.") for k in retry.counts)
    assert len(partition(deployed).incidents) == 1
    assert [e["detail-type"] for e in exception_events(deployed)] == ["Shipment Exception Raised"]


def test_an_exception_past_its_sla_is_escalated_once(deployed: Deployed, frozen: clock.FrozenClock) -> None:
    monday = MONDAY
    frozen.set(monday)
    send(deployed, ("picked_up", monday - timedelta(hours=5)), ("out_for_delivery", monday - timedelta(hours=1)))
    frozen.advance(timedelta(hours=2))
    send(deployed, ("note", monday + timedelta(hours=1)), exception="address_issue")
    (issue,) = partition(deployed).incidents
    assert issue.type is IncidentType.ADDRESS_ISSUE and issue.owner is Owner.SUPPORT
    assert issue.sla_due_at == frozen.now() + timedelta(hours=8)
    tick_until(deployed, frozen, issue.sla_due_at + timedelta(minutes=30))
    (escalated,) = partition(deployed).incidents
    assert escalated.escalated_at is not None
    assert timedelta(0) <= escalated.escalated_at - issue.sla_due_at <= timedelta(minutes=5)
    assert escalated.owner is Owner.OPS and escalated.escalated_from is Owner.SUPPORT
    queue = DynamoIncidentStore(deployed.stack.ref("ShipmentsTable")).list_queue(owners=[Owner.OPS])
    assert [e.exception_id for e in queue.items] == [issue.exception_id]
    kinds = [e["detail-type"] for e in exception_events(deployed)]
    assert kinds == ["Shipment Exception Raised", "Shipment Exception Escalated"]


def test_the_checker_never_scans_and_an_empty_run_is_a_handful_of_queries(
    deployed: Deployed, frozen: clock.FrozenClock
) -> None:
    calls: list[str] = []

    check(deployed)  # the first run reads back a week of buckets, then keeps a cursor
    client("dynamodb").meta.events.register("before-call.dynamodb", lambda model, **_: calls.append(model.name))
    frozen.advance(TICK)
    check(deployed)
    assert "Scan" not in calls
    # two shards, one or two hours; the warm container remembers its cursor instead of reading it
    assert calls.count("Query") <= 2 * 2 and calls.count("GetItem") == 0


def test_a_checker_that_was_down_catches_up_from_its_cursor(deployed: Deployed, frozen: clock.FrozenClock) -> None:
    monday = MONDAY
    frozen.set(monday)
    check(deployed)  # a run that leaves a cursor
    send(deployed, ("picked_up", monday), number="1Z4Y0A190348261953")
    send(deployed, ("picked_up", monday + timedelta(hours=5)), number="1Z4Y0A190348261954")
    deadlines = [partition(deployed, n).shipment.silence_due_at for n in ("1Z4Y0A190348261953", "1Z4Y0A190348261954")]
    # Given the checker does not run for three days (its deadlines pass in between)
    frozen.set(monday + timedelta(days=3))
    assert all(d is not None and d < frozen.now() - timedelta(hours=6) for d in deadlines)
    # When it runs again, it reads every hour since its cursor and raises both
    check(deployed)
    for number in ("1Z4Y0A190348261953", "1Z4Y0A190348261954"):
        (stalled,) = partition(deployed, number).incidents
        assert stalled.type is IncidentType.STALLED and stalled.raised_at == frozen.now()
    # and the next run is back to a handful of Queries
    calls: list[str] = []

    client("dynamodb").meta.events.register("before-call.dynamodb", lambda model, **_: calls.append(model.name))
    frozen.advance(TICK)
    check(deployed)
    assert calls.count("Query") <= 2 * 2


def test_a_record_that_keeps_changing_is_left_due_and_the_cursor_waits(
    deployed: Deployed, frozen: clock.FrozenClock
) -> None:
    deadline = picked_up_on_monday(deployed, frozen)
    table = deployed.stack.ref("ShipmentsTable")

    class AlwaysRaced(DynamoTimerIndex):
        def commit(self, commit: Commit) -> None:
            raise Conflict("someone else wrote the record")

    publisher = EventBridgePublisher(deployed.stack.ref("EventBus"))
    frozen.set(deadline + timedelta(hours=2))
    cursor_before = DynamoTimerIndex(table).read_cursor()
    # When every raise loses its race, the run gives up on that shipment, says so, and does not
    # move its cursor past the hour still holding the timer
    raced = Checker(index=AlwaysRaced(table), publisher=publisher, now=frozen.now()).run()
    assert not raced.complete and raced.problems
    assert DynamoTimerIndex(table).read_cursor() == cursor_before
    # Then the next run raises it
    Checker(index=DynamoTimerIndex(table), publisher=publisher, now=frozen.now() + TICK).run()
    (stalled,) = partition(deployed).incidents
    assert stalled.type is IncidentType.STALLED


def test_a_warm_checker_remembers_its_cursor_and_still_finds_a_late_timer(
    deployed: Deployed, frozen: clock.FrozenClock
) -> None:
    # Given a parcel picked up on a Monday, and a checker container that remembers its cursor
    deadline = picked_up_on_monday(deployed, frozen)
    table = deployed.stack.ref("ShipmentsTable")
    publisher = EventBridgePublisher(deployed.stack.ref("EventBus"))
    remembered: dict[str, str] = {}
    cursor_reads: list[str] = []
    ddb = client("dynamodb")

    def count(params: dict[str, Any], **_: Any) -> None:
        if params.get("Key", {}).get("pk") == {"S": "TIMERS"}:
            cursor_reads.append("GetItem")

    ddb.meta.events.register("provide-client-params.dynamodb.GetItem", count)
    try:
        # When it runs every 5 minutes for a day
        for step in range(288):
            now = MONDAY + step * TICK
            Checker(index=DynamoTimerIndex(table, remembered), publisher=publisher, now=now).run()
    finally:
        ddb.meta.events.unregister("provide-client-params.dynamodb.GetItem", count)
    # Then it read the stored cursor once, remembers where it drained to, and agrees with it
    assert cursor_reads == ["GetItem"]
    assert remembered[table] == DynamoTimerIndex(table).read_cursor()
    # and a stalled parcel's deadline two business days on is still raised by the warm container
    Checker(index=DynamoTimerIndex(table, remembered), publisher=publisher, now=deadline + TICK).run()
    (stalled,) = partition(deployed).incidents
    assert stalled.type is IncidentType.STALLED


def test_an_escalated_exception_shows_the_parcels_last_scan(deployed: Deployed, frozen: clock.FrozenClock) -> None:
    # Given an address problem reported by the carrier, and a later scan that leaves it open
    frozen.set(MONDAY)
    send(deployed, ("picked_up", MONDAY - timedelta(hours=5)), ("out_for_delivery", MONDAY - timedelta(hours=1)))
    frozen.advance(timedelta(hours=2))
    send(deployed, ("note", MONDAY + timedelta(hours=1)), exception="address_issue")
    frozen.advance(timedelta(hours=1))
    send(deployed, ("note", MONDAY + timedelta(hours=2)))
    (issue,) = partition(deployed).incidents
    # When its SLA passes and the checker escalates it
    tick_until(deployed, frozen, issue.sla_due_at + timedelta(minutes=30))
    # Then the escalated exception shows the parcel's last scan, as the shipment does
    shipment = partition(deployed).shipment
    (escalated,) = partition(deployed).incidents
    assert escalated.escalated_at is not None and escalated.is_open
    assert shipment.last_scan is not None and shipment.last_scan.occurred_at == MONDAY + timedelta(hours=2)
    assert escalated.last_scan == shipment.last_scan


def test_a_raised_stall_shows_the_last_scan_and_a_rearm_reads_only_the_record(
    deployed: Deployed, frozen: clock.FrozenClock
) -> None:
    # Given a parcel picked up on a Monday, then silent past its deadline
    deadline = picked_up_on_monday(deployed, frozen)
    record_reads: list[dict[str, Any]] = []
    table_queries: list[dict[str, Any]] = []

    def note(model: Any, params: dict[str, Any], **_: Any) -> None:
        if model.name == "GetItem" and params["Key"]["pk"]["S"].startswith("SHP#"):
            record_reads.append(params)
        if model.name == "Query" and "IndexName" not in params:
            table_queries.append(params)

    client("dynamodb").meta.events.register("before-parameter-build.dynamodb", note)
    # When the checker runs after the deadline
    frozen.set(deadline + TICK)
    check(deployed)
    client("dynamodb").meta.events.unregister("before-parameter-build.dynamodb", note)
    # Then the stalled exception the queue shows carries the parcel's last scan, the pickup
    (stalled,) = partition(deployed).incidents
    assert stalled.type is IncidentType.STALLED
    assert stalled.last_scan is not None and stalled.last_scan.occurred_at == MONDAY
    assert stalled.last_scan.milestone is Milestone.PICKED_UP
    # and the raise read the record and the newest event, one item each, never the partition
    assert [r["Key"]["sk"]["S"] for r in record_reads] == ["META"]
    assert [(q.get("Limit"), q.get("ScanIndexForward")) for q in table_queries] == [(1, False)]
