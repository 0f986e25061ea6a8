"""The simulated world and how its carriers report it (infra/sim)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from infra.fake_carriers import CarrierWorld
from infra.sim.reporting import CHAOS_EXPECT, Chaos, plan
from infra.sim.world import IncidentRates, generate
from shared.adapters import load_adapter
from shared.calendar import is_business_day
from shared.clock import FrozenClock

START = datetime(2026, 11, 16, tzinfo=UTC)


def truth(seed: int, count: int = 60) -> list[dict[str, object]]:
    return [j.to_json() for j in generate(count, start=START, days=14, seed=seed)]


def test_the_same_seed_gives_the_same_truth_and_another_seed_another() -> None:
    assert truth(11) == truth(11)
    assert truth(11) != truth(12)


def test_journeys_move_forward_and_pick_up_only_on_business_days() -> None:
    journeys = generate(200, start=START, days=14, seed=3)
    for journey in journeys:
        instants = [s.at for s in journey.scans]
        assert instants == sorted(instants) and len(set(instants)) == len(instants)
        for scan in journey.scans:
            if scan.kind == "picked_up" and scan.place is not None:
                local_day = scan.at.astimezone(scan.place.zone).date()
                assert is_business_day(local_day, scan.place.country), (journey.sim_id, local_day)
    # Thanksgiving (26 Nov 2026) is no business day in the US, a Saturday none anywhere
    assert not is_business_day(datetime(2026, 11, 26).date(), "US")
    assert not is_business_day(datetime(2026, 11, 28).date(), "DE")
    assert is_business_day(datetime(2026, 11, 26).date(), "DE")


def test_incident_rates_are_configurable() -> None:
    none = generate(150, start=START, days=14, seed=5, rates=IncidentRates().scaled(0.0))
    many = generate(150, start=START, days=14, seed=5, rates=IncidentRates().scaled(4.0))
    assert sum(len(j.incidents) for j in none) == 0
    assert all(j.delivered_at is not None or j.scans[-1].at > START + timedelta(days=8) for j in none)
    kinds = {i.type for j in many for i in j.incidents}
    assert {"no_first_scan", "stalled", "customs_hold", "delivery_failed", "address_issue", "delayed"} <= kinds


def _instants_in(source: str, body: bytes) -> set[datetime]:
    result = load_adapter(source).normalize(body, received_at=START)
    return {e.occurred_at.replace(second=0) for e in result.events}


@pytest.mark.parametrize("drop", [0.0, 0.3])
def test_reporting_preserves_every_true_scan_unless_the_scenario_drops_it(drop: float) -> None:
    journeys = generate(80, start=START, days=14, seed=9)
    report = plan(journeys, seed=9, chaos=Chaos(duplicate=0.2, held_back=0.2, drop_scan=drop, bad_input=0.0))
    told: dict[str, set[datetime]] = {}
    for delivery in report.deliveries:
        if delivery.kind in CHAOS_EXPECT or delivery.kind in ("registration", "claim"):
            continue
        told.setdefault(delivery.sim_id, set()).update(_instants_in(delivery.source, delivery.body))
    checked = 0
    for journey in journeys:
        if journey.lane.push is None:
            continue
        dropped = set(report.dropped.get(journey.sim_id, []))
        for index, scan in enumerate(journey.scans):
            seen_by_push = journey.lane.push in ("easypost", "shippo", "aftership", "seventeentrack") or (
                journey.parcel.legs[scan.leg].carrier == journey.lane.push
            )
            if not seen_by_push:
                continue
            reported = scan.at.replace(second=0) in told.get(journey.sim_id, set())
            assert reported is (index not in dropped), (journey.sim_id, scan.kind, index)
            checked += 1
    assert checked > 300
    assert bool(report.dropped) is (drop > 0)


def test_duplicates_and_late_deliveries_are_sent_as_configured() -> None:
    journeys = generate(80, start=START, days=14, seed=4)
    report = plan(journeys, seed=4, chaos=Chaos(duplicate=0.1, held_back=0.1, bad_input=0.5))
    kinds = [d.kind for d in report.deliveries]
    assert kinds.count("duplicate") > 10 and kinds.count("held_back") > 10
    assert [d.at for d in report.deliveries] == sorted(d.at for d in report.deliveries)
    bad = [d for d in report.deliveries if d.kind in CHAOS_EXPECT]
    assert {d.kind for d in bad} == set(CHAOS_EXPECT)
    assert all(d.expect == CHAOS_EXPECT[d.kind] for d in bad)
    oversized = [d for d in bad if d.kind == "oversized"]
    assert all(len(d.body) > 256 * 1024 for d in oversized)
    truncated = [d for d in bad if d.kind == "truncated_json"]
    for delivery in truncated:
        with pytest.raises(json.JSONDecodeError):
            json.loads(delivery.body)
    assert sum(len(v) for v in report.forged.values()) == len(bad)


def test_the_fake_carrier_api_answers_only_what_is_known_at_the_simulated_now() -> None:
    (journey,) = [j for j in generate(40, start=START, days=14, seed=2) if j.lane.name == "us_ups"][:1]
    sim_clock = FrozenClock(START)
    world = CarrierWorld(now=sim_clock.now)
    latency = timedelta(minutes=30)
    world.add(journey.parcel, journey.scans, latency=latency)
    number = journey.parcel.first.tracking_number
    for scan in journey.scans:
        sim_clock.set(scan.at + latency - timedelta(seconds=1))
        visible = world.visible("ups", number)
        assert visible is not None and scan not in visible[1]
        sim_clock.set(scan.at + latency)
        visible = world.visible("ups", number)
        assert visible is not None and scan in visible[1]
        assert all(s.at <= scan.at for s in visible[1])
