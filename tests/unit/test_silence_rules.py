"""Business days and silence deadlines: weekends and public holidays of the country where the
parcel is, the scan's own time zone, the lane's threshold, the grace, and when no rule runs."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from shared.calendar import (
    add_business_days,
    add_business_hours,
    business_hours_between,
    is_business_day,
    next_business_day,
)
from shared.logic.incidents.playbooks import new_incident, playbooks
from shared.logic.incidents.silence import (
    BusinessThresholds,
    Rule,
    next_timer,
    plan_silence,
    silence_config,
    silence_deadline,
)
from shared.logic.polling.cadence import DEFAULT_POLICY
from shared.logic.shipments.timeline import walk
from shared.models.canonical import CanonicalEvent, IncidentType, Milestone
from shared.models.shipment import Shipment
from tests.builders import T0, scan

NEW_YORK = ZoneInfo("America/New_York")
BERLIN = ZoneInfo("Europe/Berlin")
M, X = Milestone, IncidentType


@pytest.mark.parametrize(
    ("day", "country", "business"),
    [
        (date(2026, 11, 26), "US", False),  # Thanksgiving
        (date(2026, 11, 27), "US", True),  # the Friday after: carriers work
        (date(2026, 11, 28), "US", False),  # Saturday
        (date(2026, 12, 25), "DE", False),  # Christmas
        (date(2026, 12, 26), "DE", False),  # Second Christmas Day
        (date(2026, 10, 1), "CN", False),  # National Day
        (date(2026, 11, 29), "HK", False),  # Sunday: Hong Kong's only weekend day
        (date(2026, 11, 28), "HK", True),  # Saturday in Hong Kong
        (date(2026, 11, 27), "IL", False),  # Friday: Israel's weekend
        (date(2026, 11, 29), "IL", True),  # Sunday in Israel
        (date(2026, 11, 26), None, True),  # unknown country: weekends only
        (date(2026, 11, 26), "ZZ", True),  # a code the holidays package does not know
    ],
)
def test_business_days_follow_each_countrys_weekend_and_holidays(
    day: date, country: str | None, business: bool
) -> None:
    assert is_business_day(day, country) is business


def test_adding_business_days_skips_weekends_and_holidays() -> None:
    # Wednesday before Thanksgiving + 1 business day = Friday; + 2 = Monday
    assert add_business_days(date(2026, 11, 25), 1, "US") == date(2026, 11, 27)
    assert add_business_days(date(2026, 11, 25), 2, "US") == date(2026, 11, 30)
    assert next_business_day(date(2026, 11, 26), "US") == date(2026, 11, 27)
    assert next_business_day(date(2026, 12, 24), "DE") == date(2026, 12, 24)


@pytest.mark.parametrize(
    ("start", "hours", "country", "tz", "end"),
    [
        # Friday 18:00 + 48 h: the weekend does not count
        (datetime(2026, 11, 20, 18, tzinfo=NEW_YORK), 48, "US", NEW_YORK, datetime(2026, 11, 24, 18, tzinfo=NEW_YORK)),
        # Wednesday 18:00 before Thanksgiving: 6 h + Friday 24 h + Monday 18 h
        (datetime(2026, 11, 25, 18, tzinfo=NEW_YORK), 48, "US", NEW_YORK, datetime(2026, 11, 30, 18, tzinfo=NEW_YORK)),
        # a Saturday scan starts counting on Monday at midnight
        (datetime(2026, 11, 21, 9, tzinfo=NEW_YORK), 24, "US", NEW_YORK, datetime(2026, 11, 24, 0, tzinfo=NEW_YORK)),
        # Christmas in Germany: 23 Dec 12:00 + 48 h ends on 28 Dec 12:00 (24th counts, 25/26/27 do not)
        (datetime(2026, 12, 23, 12, tzinfo=BERLIN), 48, "DE", BERLIN, datetime(2026, 12, 28, 12, tzinfo=BERLIN)),
        # across the end of daylight saving time (1 Nov 2026 in New York): real hours, local days
        (datetime(2026, 10, 30, 12, tzinfo=NEW_YORK), 24, "US", NEW_YORK, datetime(2026, 11, 2, 12, tzinfo=NEW_YORK)),
    ],
)
def test_business_hours_count_only_business_days_in_the_local_time_zone(
    start: datetime, hours: float, country: str, tz: ZoneInfo, end: datetime
) -> None:
    assert add_business_hours(start, hours, country, tz) == end
    assert business_hours_between(start, end, country, tz) == pytest.approx(hours)


def test_the_local_day_decides_what_a_business_day_is() -> None:
    # Friday 22:00 in New York is already Saturday in UTC: counted in New York, Friday's
    # last two hours count; counted in UTC, they would not.
    friday_night = datetime(2026, 11, 20, 22, tzinfo=NEW_YORK)
    assert add_business_hours(friday_night, 2, "US", NEW_YORK) == datetime(2026, 11, 21, 0, tzinfo=NEW_YORK)
    assert add_business_hours(friday_night, 2, "US", UTC) == datetime(2026, 11, 23, 2, tzinfo=UTC)


# ------------------------------------------------------------------------------ the rules


def record(**changes: object) -> Shipment:
    return Shipment(
        shipment_id="shp_rules",
        carrier="ups",
        tracking_number="1Z4Y0A190348261953",
        public_token="t" * 24,
        created_at=T0,
        updated_at=T0,
        first_source="ups",
        **changes,  # type: ignore[arg-type]
    )


def plan(shipment: Shipment, events: list[CanonicalEvent], now_hours: float = 100):  # type: ignore[no-untyped-def]
    return plan_silence(
        shipment,
        walk(events).ordered,
        [],
        now=T0 + timedelta(hours=now_hours),
        config=silence_config(),
        rules=playbooks(),
    )


def test_the_threshold_follows_the_lane_and_customs() -> None:
    config = silence_config()
    assert (config.no_first_scan.hours, config.stalled.domestic_hours) == (48, 48)
    assert (config.stalled.cross_border_hours, config.stalled.customs_hours) == (72, 96)
    louisville = [scan(M.PICKED_UP, 0), scan(M.ARRIVED_HUB, 5)]
    assert plan(record(status=M.ARRIVED_HUB), louisville).rule is Rule.DOMESTIC
    abroad = [scan(M.PICKED_UP, 0), scan(M.ARRIVED_HUB, 5)]
    abroad[1] = abroad[1].model_copy(update={"location": abroad[1].location.model_copy(update={"country": "CA"})})  # type: ignore[union-attr]
    assert plan(record(status=M.ARRIVED_HUB), abroad).rule is Rule.CROSS_BORDER
    in_customs = [*louisville, scan(M.CUSTOMS_STARTED, 9)]
    found = plan(record(status=M.CUSTOMS_STARTED), in_customs)
    assert found.rule is Rule.CUSTOMS and found.type is X.STALLED
    # T0 is Monday 2 November 2026 12:00 UTC: 96 business hours from Monday 21:00 UTC end on Friday 21:00
    assert found.due_at == T0 + timedelta(hours=9 + 96) + timedelta(minutes=30)


def test_no_first_scan_counts_from_the_label_and_a_warehouse_event_is_not_a_scan() -> None:
    label = [scan(M.LABEL_CREATED, 2)]
    found = plan(record(), label)
    assert found.type is X.NO_FIRST_SCAN and found.rule is Rule.LABEL and found.anchor == T0 + timedelta(hours=2)
    registered = record(label_created_at=T0 - timedelta(hours=3))
    assert plan(registered, label).anchor == T0 - timedelta(hours=3)  # the merchant's label time wins
    assert plan(record(), []).anchor == T0  # known only from when Shiplight heard of it
    assert plan(record(), [*label, scan(M.PICKED_UP, 9)]).type is X.STALLED


def test_polled_shipments_get_one_poll_cycle_of_grace_pushed_ones_half_an_hour() -> None:
    events = [scan(M.PICKED_UP, 0), scan(M.IN_TRANSIT, 1)]
    base = T0 + timedelta(hours=1 + 48)
    polled = plan(record(status=M.IN_TRANSIT, poll_source="ups"), events, now_hours=2)
    assert polled.due_at == base + DEFAULT_POLICY.in_transit * (1 + DEFAULT_POLICY.jitter)
    pushed = plan(record(status=M.IN_TRANSIT, poll_source="ups", last_push_at=T0), events, now_hours=2)
    assert pushed.due_at == base + timedelta(minutes=30)


def test_no_rule_runs_once_delivered_while_a_silence_is_open_or_while_lost() -> None:
    events = [scan(M.PICKED_UP, 0), scan(M.DELIVERED, 30)]
    assert plan(record(status=M.DELIVERED), events) is None
    moving = record(status=M.PICKED_UP)
    open_stall = new_incident(moving, X.STALLED, "x", now=T0, cause_at=T0, rules=playbooks())
    lost = new_incident(moving, X.LOST, "y", now=T0, cause_at=T0, rules=playbooks())
    delayed = new_incident(moving, X.DELAYED, "z", now=T0, cause_at=T0, rules=playbooks())
    ordered = walk(events[:1]).ordered
    common = {"now": T0, "config": silence_config(), "rules": playbooks()}
    assert plan_silence(moving, ordered, [open_stall], **common) is None  # type: ignore[arg-type]
    assert plan_silence(moving, ordered, [lost], **common) is None  # type: ignore[arg-type]
    assert plan_silence(moving, ordered, [delayed], **common) is not None  # type: ignore[arg-type]
    # an episode already raised (then closed by an operator) is not raised again
    closed = open_stall.model_copy(update={"episode": "2026-11-02T12:00:00.000000Z", "status": "resolved"})
    assert plan_silence(moving, ordered, [closed], **common) is None  # type: ignore[arg-type]


def test_the_timer_only_moves_earlier_on_a_commit() -> None:
    soon, later = T0 + timedelta(hours=10), T0 + timedelta(hours=50)
    assert next_timer(record(), later, T0) == later  # armed
    assert next_timer(record(timer_due_at=soon), later, T0) == soon  # lazy: the checker re-arms it
    assert next_timer(record(timer_due_at=later), soon, T0) == soon  # an earlier deadline moves it
    assert next_timer(record(timer_due_at=soon), None, T0) is None  # nothing to watch
    assert next_timer(record(timer_due_at=soon, outbox_pending_since=T0), None, T0) == soon


def test_the_refund_rules_read_the_same_thresholds() -> None:
    thresholds = BusinessThresholds()
    hub = scan(M.ARRIVED_HUB, 0)  # Monday 2 November 12:00 UTC, Louisville: no offset known
    # a US place with a state but no offset on the scan: days counted in the state's zone
    expected = silence_deadline(hub.occurred_at, Rule.DOMESTIC, country="US", tz=NEW_YORK)
    assert thresholds.movement_due(hub, "domestic", "US") == expected == T0 + timedelta(hours=48)
    assert thresholds.movement_due(hub, "cross_border", "US") == T0 + timedelta(hours=72)
    # Germany has one zone: Friday 19:00 in Berlin + 48 business hours = Tuesday 19:00 in Berlin
    friday = datetime(2026, 11, 20, 18, tzinfo=UTC)
    assert thresholds.first_scan_due(friday, None, "DE") == datetime(2026, 11, 24, 18, tzinfo=UTC)
    assert thresholds.add_business_days(friday, 1, "DE") == datetime(2026, 11, 23, 18, tzinfo=UTC)
