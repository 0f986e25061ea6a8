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
        [sys.executable, "-m", "compileall", "-q", "shared", "functions"],
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
    return {f"import_ratio.{name}": medians[name] / medians["boto3"] for name in targets if name != "boto3"}


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
    """A 20-scan journey in the source's own payload, rendered by its builder."""
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
    """Canonical events per second on one core, per source, over a 20-scan journey."""
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
    from shared.logic.cadence import shard_of
    from shared.logic.poll import poll_due
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
    "ddb_writes_per_event": ("<=", 1.5),
    "putevents_per_change": ("<=", 0.2),
    "poller_reads_per_polled": ("<=", 1.2),
    "poller_scan_calls": ("<=", 0),
    **{
        f"normalize_eps.{source}": (">=", 5000)
        for source in ("generic", "easypost", "aftership", "shippo", "seventeentrack", "ups", "fedex", "usps", "dhl")
    },
}


def main() -> int:
    figures: dict[str, float] = {}
    print("import cost of the handlers")
    figures |= import_ratios()
    print("processor write cost")
    figures |= processor_write_costs()
    print("normalization throughput (20-scan journeys)")
    figures |= normalize_rates()
    print("poller read cost")
    figures |= poller_read_cost()
    print("time zones")
    figures |= assumed_utc_share()
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
