"""Run the simulated world through the embedded stack on an accelerated clock.

The runtime is driven synchronously (``background=False``): the runner owns the clock, moves
it from one sender's request to the next and, every schedule period, lets the runtime fire the
template's schedules and drain its queues (``LocalRuntime.pump``). Simulated time therefore
runs as fast as the stack can absorb the traffic, and the poller runs every five simulated
minutes exactly as EventBridge would run it. Whatever a run waits for (a carrier's token bucket,
a Retry-After) passes in simulated time, and the ids Shiplight makes up come from the seed, so
the same options give the same outcome on any machine. Webhooks go over HTTP to the local gateway, so
they meet the same receiver, signatures and limits as a carrier's would.
"""

from __future__ import annotations

import http.client
import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from infra.demo.bundled import DEMO_SECRETS
from infra.fake_carriers import CarrierWorld
from infra.local.runtime import LocalRuntime, RuntimeOptions
from infra.sim.reporting import Chaos, Delivery, Report, plan
from infra.sim.world import IncidentRates, Journey, generate
from shared.clock import FrozenClock, FrozenWaitClock
from shared.dal.shipments import DynamoShipmentStore
from shared.models.shipment import Partition, TrackingKey

DEFAULT_START = datetime(2026, 11, 16, tzinfo=UTC)  # a Monday; the fortnight holds Thanksgiving
STEP = timedelta(minutes=5)  # the template's shortest schedule period


@dataclass
class SimOptions:
    shipments: int = 60
    days: int = 10
    seed: int = 7
    start: datetime = DEFAULT_START
    rates: IncidentRates = field(default_factory=IncidentRates)
    chaos: Chaos = field(default_factory=Chaos)
    port: int | None = None
    state_dir: Path = Path(".shiplight")


@dataclass
class SimRun:
    """What happened: the truth, what was sent and answered, and the stack to look at."""

    options: SimOptions
    journeys: list[Journey]
    report: Report
    runtime: LocalRuntime
    end: datetime
    answers: dict[str, Counter[int]] = field(default_factory=dict)  # delivery kind → status → count
    unexpected: list[str] = field(default_factory=list)
    wall_seconds: float = 0.0
    steps: int = 0
    api_key: str = ""  # the simulated order system's key (never printed)
    registered: dict[str, str] = field(default_factory=dict)  # sim_id → shipment_id

    def partitions(self) -> dict[str, Partition]:
        """Each journey's shipment as stored (sim_id → partition), for those Shiplight knows."""
        store = DynamoShipmentStore(self.runtime.require_stack().ref("ShipmentsTable"))
        keys = {
            j.sim_id: [TrackingKey(leg.carrier, leg.tracking_number) for leg in j.parcel.legs] for j in self.journeys
        }
        known = store.resolve([k for ks in keys.values() for k in ks])
        found: dict[str, Partition] = {}
        loaded: dict[str, Partition | None] = {}
        for sim_id, ks in keys.items():
            shipment_id = next((known[k] for k in ks if k in known), None)
            if shipment_id is None:
                continue
            if shipment_id not in loaded:
                loaded[shipment_id] = store.load(shipment_id)
            partition = loaded[shipment_id]
            if partition is not None:
                found[sim_id] = partition
        return found


class _Sender:
    """One kept-alive HTTP connection to the local gateway (a carrier's delivery worker)."""

    def __init__(self, base_url: str) -> None:
        parts = urlsplit(base_url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self._connection: http.client.HTTPConnection | None = None

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        for attempt in (1, 2):
            if self._connection is None:
                self._connection = http.client.HTTPConnection(self.host, self.port, timeout=60)
            try:
                self._connection.request("POST", path, body=body, headers=headers)
                response = self._connection.getresponse()
                answer = response.read()
                if response.getheader("connection", "").lower() == "close" or response.version == 10:
                    self.close()
                return response.status, answer
            except (ConnectionError, http.client.HTTPException):
                self.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def simulate(options: SimOptions, *, progress: Callable[[datetime, datetime, int], None] | None = None) -> SimRun:
    """Generate, report and ingest ``options.shipments`` journeys over ``options.days`` days.
    The runtime is left running (``run.runtime``): the caller reads it, serves it, stops it."""
    journeys = generate(
        options.shipments, start=options.start, days=options.days, seed=options.seed, rates=options.rates
    )
    report = plan(journeys, seed=options.seed, chaos=options.chaos)
    sim_clock = FrozenClock(options.start)
    world = CarrierWorld(now=sim_clock.now)
    for journey in journeys:
        world.add(journey.parcel, journey.scans, latency=report.poll_latency[journey.sim_id])
    runtime = LocalRuntime(
        RuntimeOptions(
            port=options.port,
            secrets=DEMO_SECRETS,
            state_dir=options.state_dir,
            clock=sim_clock,
            wait_clock=FrozenWaitClock(sim_clock),  # a poller waiting for a token bucket waits simulated time
            seed=options.seed,  # the ids Shiplight makes up repeat, and with them the poll times
            carrier_world=world,
            background=False,
        )
    )
    runtime.start()
    end = options.start + timedelta(days=options.days)
    run = SimRun(options, journeys, report, runtime, end)
    try:
        _drive(run, sim_clock, progress)
    except BaseException:
        runtime.stop()
        raise
    return run


def _drive(run: SimRun, sim_clock: FrozenClock, progress: Callable[[datetime, datetime, int], None] | None) -> None:
    from infra.apikeys import issue_local_key

    started = time.perf_counter()
    sender = _Sender(run.runtime.url)
    run.api_key = issue_local_key(run.runtime, label="simulated order system")
    pending = [d for d in run.report.deliveries if d.at < run.end]
    index = 0
    now = run.options.start
    try:
        while now < run.end:
            step_end = min(now + STEP, run.end)
            while index < len(pending) and pending[index].at <= step_end:
                delivery = pending[index]
                sim_clock.set(max(delivery.at, sim_clock.now()))
                _send(run, sender, delivery)
                index += 1
            sim_clock.set(max(step_end, sim_clock.now()))  # a run's waits may have moved it on
            run.runtime.pump()
            run.steps += 1
            now = step_end
            if progress is not None:
                progress(now, run.end, index)
    finally:
        sender.close()
    run.wall_seconds = time.perf_counter() - started


def _send(run: SimRun, sender: _Sender, delivery: Delivery) -> None:
    headers, path = delivery.headers, delivery.path
    if delivery.kind in ("registration", "claim"):
        headers = headers | {"authorization": f"Bearer {run.api_key}"}
    if delivery.kind == "claim":
        shipment_id = run.registered.get(delivery.sim_id)
        if shipment_id is None:
            run.unexpected.append(f"claim for {delivery.sim_id}: never registered")
            return
        path = path.format(shipment_id=shipment_id)
    status, answer = sender.post(path, delivery.body, headers)
    run.answers.setdefault(delivery.kind, Counter())[status] += 1
    if delivery.kind == "registration" and status in (200, 201):
        run.registered[delivery.sim_id] = json.loads(answer)["shipment_id"]
        return  # 200: a carrier's first scan beat the order system to it
    if status != delivery.expect:
        run.unexpected.append(f"{delivery.kind} {delivery.source} for {delivery.sim_id}: {status}")


def write_truth(run: SimRun, path: Path) -> None:
    """The ground truth as JSON lines: a header with the run's settings, then one line per shipment."""
    with path.open("w", encoding="utf-8") as out:
        header = {
            "type": "run",
            "seed": run.options.seed,
            "shipments": run.options.shipments,
            "start": run.options.start.isoformat(),
            "end": run.end.isoformat(),
            "poll_step_minutes": STEP.total_seconds() / 60,
        }
        out.write(json.dumps(header) + "\n")
        for journey in run.journeys:
            line = journey.to_json() | {
                "type": "shipment",
                "poll_latency_minutes": run.report.poll_latency[journey.sim_id].total_seconds() / 60,
                "dropped_scans": run.report.dropped.get(journey.sim_id, []),
                "forged": run.report.forged.get(journey.sim_id, []),
            }
            out.write(json.dumps(line) + "\n")


def write_stored(run: SimRun, path: Path) -> dict[str, Partition]:
    """What Shiplight stored for each simulated shipment, as JSON lines (what ``evaluate`` reads)."""
    partitions = run.partitions()
    with path.open("w", encoding="utf-8") as out:
        for sim_id, partition in sorted(partitions.items()):
            out.write(json.dumps(stored_line(sim_id, partition)) + "\n")
    return partitions


def stored_line(sim_id: str, partition: Partition) -> dict[str, Any]:
    return {
        "sim_id": sim_id,
        "shipment": partition.shipment.model_dump(mode="json"),
        "events": [{"source": s.source, **s.event.to_json_dict()} for s in partition.events],
        "exceptions": [
            {
                "type": e.type.value,
                "status": e.status.value,
                "raised_at": e.raised_at.isoformat(),
                "cause_at": e.cause_at.isoformat(),
                "cause_received_at": e.cause_received_at.isoformat() if e.cause_received_at else None,
                "resolved_at": e.resolved_at.isoformat() if e.resolved_at else None,
                "resolved_by": e.resolved_by.value if e.resolved_by else None,
                "owner": e.owner.value,
                "escalated": e.escalated_at is not None,
            }
            for e in partition.incidents
        ],
    }
