"""``make bench``: the figures the issues name, measured now, written to bench-results.json.

Every figure is a ratio against a baseline measured in the same run, or a count; none is
compared with a number from another machine. Nothing here is a test: goals are printed
beside the figures, never asserted.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from infra.costs import item_bytes
from infra.local.template import REPO_ROOT, Template

RESULTS = REPO_ROOT / "bench-results.json"
RUNS = 15

_IMPORT_PROBE = """
import importlib.util, sys, time
path = sys.argv[1]
start = time.perf_counter()
if path == "boto3":
    import boto3
else:
    spec = importlib.util.spec_from_file_location("handler", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
print(time.perf_counter() - start)
"""


def _cold_import(target: str, environment: dict[str, str]) -> float:
    done = subprocess.run(
        [sys.executable, "-c", _IMPORT_PROBE, target],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO_ROOT,
        env=environment,
    )
    return float(done.stdout.strip())


def import_ratios() -> dict[str, float]:
    """Cold import of each handler module ÷ cold ``import boto3``, medians of fresh interpreters.

    As in Lambda, where the layer ships byte-compiled (shared/Makefile), the code is
    compiled first, and each handler is imported with its template environment.
    """
    base = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", "shared", "functions", "infra/processor_import_floor.py"],
        check=True,
        cwd=REPO_ROOT,
        env=base,
        capture_output=True,
    )
    functions = Template.load().functions()
    targets: dict[str, tuple[str, dict[str, str]]] = {"boto3": ("boto3", base)}
    for name, logical_id in (
        ("webhook_receiver", "WebhookReceiverFunction"),
        ("event_processor", "EventProcessorFunction"),
        ("public_api", "PublicApiFunction"),
    ):
        spec = functions[logical_id]
        literal = {key: str(value) for key, value in spec.environment.items() if not isinstance(value, dict)}
        targets[name] = (str(spec.module_path), base | literal)
        if name == "event_processor":  # the libraries the processor must import, nothing of ours
            targets["event_processor_floor"] = (str(REPO_ROOT / "infra" / "processor_import_floor.py"), base | literal)
    for target, environment in targets.values():  # warm the OS file cache
        _cold_import(target, environment)
    samples: dict[str, list[float]] = {name: [] for name in targets}
    for _ in range(RUNS):  # interleaved, so machine noise hits every target alike
        for name, (target, environment) in targets.items():
            samples[name].append(_cold_import(target, environment))
    medians = {name: statistics.median(values) for name, values in samples.items()}
    print(
        f"  cold import medians of {RUNS} fresh interpreters (ms): "
        + ", ".join(f"{name} {value * 1000:.0f}" for name, value in medians.items())
    )
    figures = {f"import_ratio.{name}": medians[name] / medians["boto3"] for name in targets if name != "boto3"}
    # The processor's own code over the libraries it must use: both medians come from the same
    # interleaved runs, so machine noise divides out.
    figures["import_overhead.event_processor"] = medians["event_processor"] / medians["event_processor_floor"]
    return figures


def _batch_of_ten() -> list[bytes]:
    """Ten generic webhooks, one scan each, over three shipments (4 + 3 + 3)."""
    from infra.formats.generic import generic_body, generic_event

    start = datetime(2026, 11, 2, 12, tzinfo=UTC)
    codes = ["packed", "handed_to_carrier", "arrived_hub", "out_for_delivery"]
    bodies = []
    for parcel, count in (("1Z4Y0A190348261953", 4), ("1Z999AA10123456784", 3), ("1Z999AA10123456785", 3)):
        for step in range(count):
            bodies.append(
                generic_body(
                    [
                        generic_event(
                            carrier="ups",
                            tracking_number=parcel,
                            code=codes[step],
                            occurred_at=start + timedelta(hours=6 * step),
                            city="Reno",
                            region="NV",
                            country="US",
                        )
                    ]
                )
            )
    return bodies


def processor_write_costs() -> dict[str, float]:
    """DynamoDB write requests per stored event, PutEvents calls per published change."""
    from moto import mock_aws

    from infra.local.functions import FunctionHost
    from infra.local.pollers import sqs_event
    from infra.local.stack import aws_client, deploy
    from shared.dal.aws import client, reset_clients
    from shared.envelope import build_envelope

    calls: Counter[str] = Counter()
    os.environ.update(
        {
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
        }
    )
    os.environ.pop("AWS_ENDPOINT_URL", None)

    def count(event_name: str, **_: Any) -> None:
        calls[event_name.rsplit(".", 1)[-1]] += 1

    with mock_aws():
        reset_clients()
        stack = deploy(Template.load())
        host = FunctionHost(stack.functions, base_environment={}, log_dir=None)
        sqs = aws_client("sqs")
        queue = stack.ref("IngestQueue")
        for body in _batch_of_ten():
            envelope = build_envelope(
                source="generic",
                channel="webhook",
                received_at=datetime.now(UTC),
                delivery_id="bench",
                body=body,
                archive_bucket=stack.ref("RawArchiveBucket"),
            )
            sqs.send_message(QueueUrl=queue, MessageBody=envelope.to_json())
        messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, AttributeNames=["All"])["Messages"]
        # The processor's own clients, with a counter on every call they make.
        for service in ("dynamodb", "events"):
            client(service).meta.events.register(f"before-call.{service}", count)
        response = host.invoke("EventProcessorFunction", sqs_event(messages, stack.att("IngestQueue", "Arn")))
        stored = host.metrics.get("EventsStored")
        published = host.metrics.get("ChangesPublished")
        host.close()
        reset_clients()
    writes = sum(calls[op] for op in ("PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"))
    print(
        f"  batch of {len(messages)} messages: {int(stored)} events stored, {int(published)} changes published, "
        f"failures {len(response.get('batchItemFailures', []))}; calls {dict(sorted(calls.items()))}"
    )
    return {
        "ddb_writes_per_event": writes / stored,
        "putevents_per_change": calls["PutEvents"] / published,
    }


def _rate(work: Callable[[], int], seconds: float = 2.0) -> float:
    """Items per second of ``work`` (which returns how many items it did), on one core."""
    work()  # warm caches (mapping tables, zone data)
    done, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        done += work()
    return done / elapsed


_PLACES = [
    ("Reno", "NV", "89502", "US", "America/Los_Angeles"),
    ("Salt Lake City", "UT", "84104", "US", "America/Denver"),
    ("Denver", "CO", "80216", "US", "America/Denver"),
    ("Omaha", "NE", "68102", "US", "America/Chicago"),
    ("Chicago", "IL", "60607", "US", "America/Chicago"),
]
_CARRIER_OF = {
    "easypost": "usps",
    "aftership": "ups",
    "shippo": "fedex",
    "seventeentrack": "usps",
    "ups": "ups",
    "fedex": "fedex",
    "usps": "usps",
    "dhl": "dhl",
}
_NUMBERS = {
    "usps": "9400111899223344556677",
    "ups": "1Z4Y0A190348261953",
    "fedex": "794611112222",
    "dhl": "JD014600006281230704",
}


def _journey_payload(source: str) -> bytes:
    """A journey (about 20 scans) in the source's own payload, rendered by its builder."""
    import importlib

    from infra.formats.generic import generic_body, generic_event
    from infra.formats.scan import Leg, Parcel, Place, TrueScan

    start = datetime(2026, 11, 2, 12, tzinfo=UTC)
    places = [Place(*p) for p in _PLACES]
    kinds = (
        ["label_created", "picked_up", "departed_origin"]
        + ["arrived_hub", "in_transit"] * 7
        + ["handed_to_last_mile", "out_for_delivery", "delivery_failed", "out_for_delivery", "delivered"]
    )
    scans = [TrueScan(kind, start + timedelta(hours=5 * i), places[i % len(places)]) for i, kind in enumerate(kinds)]
    if source == "generic":
        return generic_body(
            [
                generic_event(
                    carrier="ups",
                    tracking_number=_NUMBERS["ups"],
                    code=s.kind,
                    occurred_at=s.at,
                    city=s.place.city if s.place else None,
                )
                for s in scans
            ]
        )
    carrier = _CARRIER_OF[source]
    parcel = Parcel((Leg(carrier, _NUMBERS[carrier]),), places[0], places[-1])
    builder = importlib.import_module(f"infra.formats.{source}")
    now = scans[-1].at + timedelta(minutes=10)
    # A polled answer when the source has one (UPS's Track Alert carries a single event).
    body: bytes = (
        builder.poll_response(parcel, scans, now=now)
        if hasattr(builder, "poll_response")
        else builder.webhook_body(parcel, scans, now=now)
    )
    return body


def normalize_rates() -> dict[str, float]:
    """Canonical events per second on one core, per source, over a journey of about 20 scans."""
    from shared.adapters import load_adapter
    from shared.sources import SOURCES

    received = datetime.now(UTC)
    figures: dict[str, float] = {}
    for source in SOURCES:
        body = _journey_payload(source)
        adapter = load_adapter(source)

        def normalize_once(adapter: Any = adapter, body: bytes = body) -> int:
            return len(adapter.normalize(body, received_at=received).events)

        def parse_once(body: bytes = body) -> int:
            json.loads(body)
            return 20

        eps = _rate(normalize_once, seconds=1.0)
        baseline = _rate(parse_once, seconds=0.5)
        print(
            f"  {source:<15} {eps:>9,.0f} events/s  (json.loads alone: {baseline:,.0f} scans/s, {baseline / eps:.1f}x)"
        )
        figures[f"normalize_eps.{source}"] = eps
    return figures


def poller_read_cost() -> dict[str, float]:
    """DynamoDB items read per polled shipment: 400 shipments in the index, 100 of them due."""
    from moto import mock_aws

    from infra.local.stack import deploy
    from shared.dal.aws import client, reset_clients
    from shared.dal.carrier_api import Answer
    from shared.dal.shipments import Commit, DynamoShipmentStore
    from shared.logic.polling.cadence import shard_of
    from shared.logic.polling.poller import poll_due
    from shared.models.canonical import Milestone
    from shared.models.shipment import Shipment, TrackingKey

    os.environ.update(
        {
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
        }
    )
    now = datetime(2026, 11, 24, 12, tzinfo=UTC)
    read = Counter[str]()

    def count_items(parsed: dict[str, Any], model: Any, **_: Any) -> None:
        if model.name in ("Query", "Scan", "GetItem", "BatchGetItem"):
            read[model.name] += 1
            read["items"] += int(parsed.get("ScannedCount", parsed.get("Count", 0)))

    class Carriers:
        def has_credentials(self, source: str) -> bool:
            return True

        def fetch(self, source: str, number: str) -> Answer:
            return Answer(200, b"{}")

        def worst_case_seconds(self, source: str) -> float:
            return 0.0

    with mock_aws():
        reset_clients()
        store = DynamoShipmentStore(deploy(Template.load()).ref("ShipmentsTable"))
        for i in range(400):
            shipment_id = f"shp_bench{i:05d}"
            due = now - timedelta(minutes=5) if i % 4 == 0 else now + timedelta(hours=1 + i % 5)
            store.commit(
                Commit(
                    Shipment(
                        shipment_id=shipment_id,
                        carrier="ups",
                        tracking_number=f"1ZBENCH{i:011d}",
                        public_token=f"t{i:023d}",
                        created_at=now - timedelta(days=1),
                        updated_at=now - timedelta(days=1),
                        first_source="generic",
                        status=Milestone.IN_TRANSIT,
                        poll_source="ups",
                        poll_number=f"1ZBENCH{i:011d}",
                        poll_due_at=due,
                        poll_shard=shard_of(shipment_id),
                        version=1,
                    ),
                    None,
                    claim_keys=[TrackingKey("ups", f"1ZBENCH{i:011d}")],
                )
            )
        client("dynamodb").meta.events.register("after-call.dynamodb", count_items)
        outcome = poll_due(
            now=now,
            index=store,
            carriers=Carriers(),
            enqueue=lambda *a: None,
            time_left=lambda: 1e9,
            rate_limits={"ups": (1e6, 1e6)},
        )
        reset_clients()
    polled = outcome.counts["polled"]
    print(
        f"  {polled} of 400 shipments due and polled; {read['items']} items read in {read['Query']} index Queries, "
        f"{read['Scan']} Scans"
    )
    return {"poller_reads_per_polled": read["items"] / polled, "poller_scan_calls": float(read["Scan"])}


def _seeder(table: Any, template: dict[str, Any]) -> Callable[[dict[str, Any]], None]:
    """Puts items straight into a moto table: moto's own put re-measures the whole item for
    every attribute it sets (seconds per thousand items). Items differ from ``template``
    (encoded) only in the attributes given; the values they share are shared objects."""
    from moto.dynamodb.models.dynamo_type import DynamoType, Item, LimitedSizeDict

    shared = {name: DynamoType(value) for name, value in template.items()}

    def put(changes: dict[str, Any]) -> None:
        item: Any = Item.__new__(Item)  # moto types __new__ as its BaseModel
        item.attrs = LimitedSizeDict()
        dict.update(item.attrs, shared)
        dict.update(item.attrs, {name: DynamoType(value) for name, value in changes.items()})
        item.hash_key, item.range_key = item.attrs["pk"], item.attrs["sk"]
        table.items[item.hash_key][item.range_key] = item

    return put


def silence_checker_cost(active: int, due_share: float = 0.01) -> dict[str, float]:
    """One silence-checker run over ``active`` armed shipments of which ``due_share`` are due.

    The checker is in steady state (its cursor 15 minutes back, as after a run 5 minutes
    ago); the due ones passed their deadline in the last 5 minutes, the others are armed over
    the next three days. Items are written straight into moto's table (seconds, not minutes).
    """
    import math
    import random

    from moto import mock_aws
    from moto.dynamodb.models import dynamodb_backends

    from infra.local import moto_speedups
    from infra.local.stack import deploy
    from shared.clock import isoformat_z
    from shared.dal.aws import client, reset_clients
    from shared.dal.bus import EventBridgePublisher
    from shared.dal.codec import encode_item
    from shared.dal.items import bucket_hour, event_item, shipment_item, timer_bucket
    from shared.dal.timers import DynamoTimerIndex
    from shared.logic.timers.checker import CURSOR_LAG, check_timers
    from shared.models.canonical import CanonicalEvent, IncidentType, Location, Milestone, TimeSource, sortable_text
    from shared.models.shipment import Shipment

    os.environ.update(
        {
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
        }
    )
    os.environ.pop("AWS_ENDPOINT_URL", None)
    now = datetime(2026, 11, 24, 12, 2, tzinfo=UTC)
    rng = random.Random(f"silence-bench:{active}")  # noqa: S311 - seeded spread of deadlines
    reads: Counter[str] = Counter()
    units = [0.0]

    def note(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["consistent"] = bool(params.get("ConsistentRead"))

    def count(parsed: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        name = model.name
        if name not in ("Query", "Scan", "GetItem", "BatchGetItem"):
            return
        reads[name] += 1
        consistent = bool(context.get("consistent"))
        if name in ("Query", "Scan"):
            returned = parsed.get("Items", [])
            reads["items"] += int(parsed.get("ScannedCount", len(returned)))
            size = sum(item_bytes(item) for item in returned)
            units[0] += max(1, math.ceil(size / 4096)) * (1.0 if consistent else 0.5)
        elif name == "GetItem" and "Item" in parsed:
            reads["items"] += 1
            reads["records"] += parsed["Item"]["pk"]["S"].startswith("SHP#")  # not the cursor item
            units[0] += math.ceil(item_bytes(parsed["Item"]) / 4096) * (1.0 if consistent else 0.5)

    moto_speedups.install()
    try:
        with mock_aws():
            reset_clients()
            stack = deploy(Template.load())
            table_name = stack.ref("ShipmentsTable")
            table = dynamodb_backends["123456789012"]["us-east-1"].get_table(table_name)
            due_count = round(active * due_share)
            started = time.perf_counter()
            template = Shipment(
                shipment_id="shp_template",
                carrier="ups",
                tracking_number="1ZBENCH",
                public_token="t" * 24,
                created_at=now - timedelta(days=3),
                updated_at=now - timedelta(days=2),
                first_source="ups",
                status=Milestone.IN_TRANSIT,
                status_since=now - timedelta(days=2),
                last_event_at=now - timedelta(days=2),
                event_count=4,
                sequence=3,
                version=4,
                tracking_keys=["ups:1ZBENCH"],
                silence_type=IncidentType.STALLED,
                silence_anchor=now - timedelta(days=2),
                silence_due_at=now,
                timer_due_at=now,
            )
            put = _seeder(table, encode_item(shipment_item(template)))
            scan = CanonicalEvent(
                event_id="0" * 32,
                carrier="ups",
                tracking_number="1ZBENCH",
                milestone=Milestone.IN_TRANSIT,
                exception=None,
                occurred_at=now - timedelta(days=2),
                occurred_at_local=None,
                time_source=TimeSource.CARRIER_OFFSET,
                location=Location(city="LOUISVILLE", region="KY", postal_code=None, country="US"),
                description="Departed from Facility",
                raw_code="DP",
                received_at=now - timedelta(days=2),
            )
            put_event = _seeder(table, encode_item(event_item(scan, shipment=template, source="ups")))
            for i in range(active):
                due = i < due_count
                deadline = (
                    now - timedelta(seconds=rng.uniform(1, 299))
                    if due
                    else now + timedelta(minutes=rng.uniform(5, 72 * 60))
                )
                shipment_id = f"shp_{i:024x}"
                number = f"1ZBENCH{i:011d}"
                put(
                    encode_item(
                        {
                            "pk": f"SHP#{shipment_id}",
                            "shipment_id": shipment_id,
                            "tracking_number": number,
                            "tracking_keys": [f"ups:{number}"],
                            "public_token": f"t{i:023d}",
                            "silence_anchor": isoformat_z(deadline - timedelta(hours=48)),
                            "silence_due_at": isoformat_z(deadline),
                            "timer_due_at": sortable_text(deadline),
                            "timer_bucket": timer_bucket(shipment_id, deadline, deadline),
                        }
                    )
                )
                if due:  # its timeline's newest scan, which a raised silence shows (an eventually consistent read)
                    put_event(
                        encode_item(
                            {"pk": f"SHP#{shipment_id}", "tracking_number": number, "public_token": f"t{i:023d}"}
                        )
                    )
            seeded = time.perf_counter() - started
            index = DynamoTimerIndex(table_name)
            index.advance_cursor(bucket_hour(now - timedelta(minutes=5) - CURSOR_LAG))
            client("dynamodb").meta.events.register("before-parameter-build.dynamodb", note)
            client("dynamodb").meta.events.register("after-call.dynamodb", count)
            started = time.perf_counter()
            outcome = check_timers(index=index, publisher=EventBridgePublisher(stack.ref("EventBus")), now=now)
            elapsed = time.perf_counter() - started
            client("dynamodb").meta.events.unregister("after-call.dynamodb", count)
            client("dynamodb").meta.events.unregister("before-parameter-build.dynamodb", note)
            reset_clients()
    finally:
        moto_speedups.uninstall()
    raised = sum(v for k, v in outcome.counts.items() if k.startswith("raised."))
    print(
        f"  {active:,} armed, {due_count} due: {raised} raised; {reads['Query']} Queries, {reads['GetItem']} GetItems, "
        f"{reads['Scan']} Scans; {reads['items']} items and {units[0]:.1f} read units "
        f"(seeded in {seeded:.1f} s, checked in {elapsed:.1f} s)"
    )
    return {
        f"silence_reads_per_due.{active}": units[0] / due_count,
        f"silence_items_per_due.{active}": reads["items"] / due_count,
        f"silence_records_per_due.{active}": reads["records"] / due_count,
        "silence_scan_calls": float(reads["Scan"]),
    }


def assumed_utc_share() -> dict[str, float]:
    """Share of canonical events whose instant had to be assumed UTC, over the project's fixtures."""
    from shared.adapters import load_adapter
    from shared.errors import PayloadError
    from shared.sources import SOURCES

    received = datetime.now(UTC)
    total = assumed = 0
    for folder in sorted((REPO_ROOT / "tests" / "events").iterdir()):
        if folder.name not in SOURCES:
            continue
        adapter = load_adapter(folder.name)
        for path in sorted(folder.glob("*.json")):
            try:
                events = adapter.normalize(path.read_bytes(), received_at=received).events
            except PayloadError:
                continue
            total += len(events)
            assumed += sum(1 for e in events if e.time_source.value == "assumed_utc")
    print(f"  {assumed} of {total} events from the fixtures had no knowable time zone (assumed UTC)")
    return {"assumed_utc_share": assumed / total}


GOALS = {
    "import_ratio.webhook_receiver": ("<=", 1.15),
    "import_ratio.event_processor": ("<=", 1.6),
    "import_overhead.event_processor": ("<=", 1.05),
    "import_ratio.public_api": ("<=", 1.2),
    "ddb_writes_per_event": ("<=", 1.5),
    "putevents_per_change": ("<=", 0.2),
    "poller_reads_per_polled": ("<=", 1.2),
    "poller_scan_calls": ("<=", 0),
    "silence_reads_per_due.10000": ("<=", 1.2),
    "silence_reads_per_due.100000": ("<=", 1.2),
    # the same goal counted in items, the keys-only index entries included (see docs/decisions.md)
    "silence_items_per_due.10000": ("<=", 1.2),
    "silence_items_per_due.100000": ("<=", 1.2),
    "silence_scan_calls": ("<=", 0),
    "usd_per_1000_shipments": ("<=", 0.25),  # AWS list prices, customer messages excluded
    **{
        f"normalize_eps.{source}": (">=", 5000)
        for source in ("generic", "easypost", "aftership", "shippo", "seventeentrack", "ups", "fedex", "usps", "dhl")
    },
}


# A hosted tracking service's price per 1,000 shipments: on its 10,000-shipment plan, and over quota.
HOSTED_USD_PER_1000 = (52.0, 80.0)


def stack_figures(shipments: int = 500, days: int = 10) -> dict[str, float]:
    """The whole local stack under the simulator: ``shiplight demo --no-serve --shipments 500``
    (the default 10 simulated days) timed end to end, canonical events per second of its
    simulation, and what its AWS requests would cost (the demo runs under ``infra.costs``'s
    meter, which counts them as it goes)."""
    import os
    import subprocess
    import sys
    import tempfile

    with tempfile.TemporaryDirectory() as state:
        summary_path = Path(state) / "summary.json"
        usage_path = Path(state) / "usage.json"
        started = time.perf_counter()
        command = [sys.executable, "-m", "infra.costs", "--usage-json", str(usage_path)]
        command += ["demo", "--no-serve", "--shipments", str(shipments), "--days", str(days)]
        done = subprocess.run(
            [*command, "--port", "0", "--state-dir", state, "--summary-json", str(summary_path)],
            capture_output=True,
            text=True,
            check=False,
        )
        wall = time.perf_counter() - started
        if done.returncode != 0:
            raise RuntimeError(f"the demo failed: {done.stderr[-2000:]}")
        summary = json.loads(summary_path.read_text())
        usage = json.loads(usage_path.read_text())
    figures = {
        f"demo_{shipments}_seconds": wall,
        "stack_eps": summary["events_received"] / summary.get("timing", summary)["wall_seconds"],
        "cores": float(os.cpu_count() or 1),
    }
    print(f"  {shipments} shipments over {days} simulated days in {wall:.0f} s")
    print("what a shipment would cost on AWS (the same run's requests, priced)")
    return figures | aws_cost_figures(usage, shipments)


def aws_cost_figures(usage: dict[str, Any], shipments: int) -> dict[str, float]:
    """``usd_per_1000_shipments`` and ``aws_requests_per_shipment`` from a metered run's usage
    (``infra.costs``), with the schedules' empty ticks measured here on a stack of their own."""
    from infra.costs import Usage, cost_report, measure_empty_ticks

    report = cost_report(
        Usage.from_json(usage["usage"]),
        shipments=shipments,
        empty_ticks=measure_empty_ticks(),
        custom_metrics=int(usage.get("custom_metrics", 0)),
        cold_ms=usage.get("cold_ms", {}),
    )
    report.print(sys.stdout, goal=GOALS["usd_per_1000_shipments"][1], hosted=HOSTED_USD_PER_1000)
    return report.figures()


def main() -> int:
    figures: dict[str, float] = {}
    print("import cost of the handlers")
    figures |= import_ratios()
    print("processor write cost")
    figures |= processor_write_costs()
    print("normalization throughput (journeys of about 20 scans)")
    figures |= normalize_rates()
    print("poller read cost")
    figures |= poller_read_cost()
    print("silence checker read cost")
    for active in (10_000, 100_000):
        measured = silence_checker_cost(active)
        figures |= measured | {
            "silence_scan_calls": figures.get("silence_scan_calls", 0) + measured["silence_scan_calls"]
        }
    print("time zones")
    figures |= assumed_utc_share()
    print("the whole local stack: shiplight demo --no-serve --shipments 500 (takes minutes)")
    figures |= stack_figures()
    print("\nfigure                                 value      goal")
    for name, value in sorted(figures.items()):
        goal = GOALS.get(name)
        verdict = ""
        if goal:
            ok = value <= goal[1] if goal[0] == "<=" else value >= goal[1]
            verdict = f"{goal[0]} {goal[1]:<8} {'met' if ok else 'MISSED'}"
        print(f"  {name:<36} {value:>10.3f}  {verdict}")
    RESULTS.write_text(json.dumps({k: round(v, 4) for k, v in sorted(figures.items())}, indent=2) + "\n")
    print(f"\nwritten to {RESULTS.relative_to(Path.cwd()) if RESULTS.is_relative_to(Path.cwd()) else RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
