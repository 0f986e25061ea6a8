"""What makes a simulated run repeat: waits on simulated time, ids from a seed — and what
production keeps: real seconds and ids nobody can guess."""

from __future__ import annotations

import base64
from datetime import timedelta

from shared import clock, ids
from shared.clock import FrozenClock, FrozenWaitClock, SystemWaitClock
from shared.dal.carrier_api import Answer
from shared.logic.polling.poller import poll_due
from shared.logic.polling.ratelimit import TokenBucket
from shared.models.shipment import new_public_token, new_shipment_id
from tests.fakes import InMemoryShipmentStore
from tests.unit.test_poll import NOW, FakeCarriers, due_in_shard


def _poll_on_simulated_time(frozen: FrozenClock) -> tuple[list[tuple[str, float]], int]:
    """Eight USPS labels due (USPS: 1 call a second, 5 at once), polled on the simulator's wait
    clock; returns each call's number and simulated second, and how many were polled."""
    store = InMemoryShipmentStore()
    due_in_shard(store, 0, *[("usps", f"94001118992233445566{n:02d}") for n in range(8)])
    carriers = FakeCarriers()
    calls: list[tuple[str, float]] = []
    fetch = carriers.fetch

    def timed_fetch(source: str, number: str) -> Answer:
        calls.append((number, (frozen.now() - NOW).total_seconds()))
        return fetch(source, number)

    carriers.fetch = timed_fetch  # type: ignore[method-assign]
    with clock.use_wait_clock(FrozenWaitClock(frozen)):
        started = clock.monotonic()
        outcome = poll_due(
            now=NOW,
            index=store,
            carriers=carriers,
            enqueue=lambda *_: None,
            time_left=lambda: 100.0 - (clock.monotonic() - started),
        )
    return calls, outcome.counts["polled"]


def test_a_poller_waits_for_a_carrier_in_simulated_time() -> None:
    # Given the simulator's clock, frozen at the run's start
    frozen = FrozenClock(NOW)
    # When the poller has more USPS shipments due than USPS's burst allows
    store = InMemoryShipmentStore()
    due_in_shard(store, 0, *[("usps", f"94001118992233445566{n:02d}") for n in range(8)])
    with clock.use_wait_clock(FrozenWaitClock(frozen)):
        outcome = poll_due(
            now=NOW,
            index=store,
            carriers=FakeCarriers(),
            enqueue=lambda *_: None,
            time_left=lambda: 100.0,
        )
    # Then every one is polled, and the three beyond the burst cost three simulated seconds
    assert outcome.counts["polled"] == 8
    assert frozen.now() - NOW == timedelta(seconds=3)


def test_the_same_poller_run_on_simulated_time_repeats_exactly() -> None:
    # Given two simulated runs from the same start
    # When each polls the same due shipments
    first = _poll_on_simulated_time(FrozenClock(NOW))
    second = _poll_on_simulated_time(FrozenClock(NOW))
    # Then they poll as much, in the same order, at the same simulated seconds
    assert first == second
    calls, polled = first
    assert polled == 8
    assert [at for _, at in calls] == [0, 0, 0, 0, 0, 1, 2, 3]


def test_a_token_bucket_waited_for_on_simulated_time_has_its_token() -> None:
    # Given 17TRACK's limit (3 calls a second, 3 at once) on the simulator's wait clock, emptied
    frozen = FrozenClock(NOW)
    with clock.use_wait_clock(FrozenWaitClock(frozen)):
        bucket = TokenBucket(rate=3.0, burst=3.0)
        for _ in range(3):
            bucket.take()
        # When the caller sleeps exactly as long as the bucket says, three times over
        for _ in range(3):
            clock.sleep(bucket.wait_time())
            # Then a token is there each time (a third of a second is not rounded short)
            assert bucket.wait_time() == 0.0
            bucket.take()
    assert timedelta(seconds=0.99) < frozen.now() - NOW <= timedelta(seconds=1.000003)


def test_outside_the_simulator_waits_are_real_seconds() -> None:
    # Given no wait clock installed (Lambda, `shiplight serve`)
    # When code asks the wait clock
    # Then it is the system's, and a simulated one installed for a while is removed again
    assert isinstance(clock.current_wait_clock(), SystemWaitClock)
    with clock.use_wait_clock(FrozenWaitClock(FrozenClock(NOW))):
        assert isinstance(clock.current_wait_clock(), FrozenWaitClock)
    assert isinstance(clock.current_wait_clock(), SystemWaitClock)


def test_seeded_ids_repeat_for_the_same_seed_only() -> None:
    # Given the simulator's seeded id source, twice with seed 7 and once with seed 8
    def made_up(seed: int) -> list[str]:
        with ids.use_ids(ids.SeededIds(seed)):
            return [new_shipment_id(), new_public_token(), new_shipment_id()]

    # When shipments are created under each
    # Then seed 7 gives the same ids both times, and seed 8 others
    assert made_up(7) == made_up(7)
    assert set(made_up(7)).isdisjoint(made_up(8))


def test_production_public_tokens_carry_at_least_128_random_bits() -> None:
    # Given no id source installed (as in Lambda)
    # When public tokens are made
    tokens = {new_public_token() for _ in range(200)}
    # Then each one decodes to at least 16 random bytes, and none repeats
    assert len(tokens) == 200
    for token in tokens:
        assert len(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))) * 8 >= 128
    assert isinstance(ids.current(), ids.SystemIds)
