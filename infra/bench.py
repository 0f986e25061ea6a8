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


def normalize_rates() -> dict[str, float]:
    from infra.formats.easypost import Scan, tracker_event
    from shared.adapters import load_adapter

    start = datetime(2026, 11, 2, 12, tzinfo=UTC)
    places = [
        ("PORTLAND", "OR", "97203"),
        ("SALT LAKE CITY", "UT", "84104"),
        ("DENVER", "CO", "80216"),
        ("OMAHA", "NE", "68102"),
        ("CHICAGO", "IL", "60607"),
    ]
    steps = [("in_transit", "arrived_at_facility"), ("in_transit", "departed_facility")]
    scans = [Scan(start, "pre_transit", "label_created", "Label created", *places[0])]
    for hour in range(1, 20):
        status, detail = steps[hour % 2]
        scans.append(Scan(start + timedelta(hours=5 * hour), status, detail, "Scan", *places[hour % len(places)]))
    body = tracker_event("9205590221582712345678", "USPS", scans, event_id="evt_bench", tracker_id="trk_bench")
    received = datetime.now(UTC)
    adapter = load_adapter("easypost")

    def normalize_once() -> int:
        return len(adapter.normalize(body, received_at=received).events)

    def parse_once() -> int:
        json.loads(body)
        return len(scans)

    eps = _rate(normalize_once)
    baseline = _rate(parse_once)
    print(
        f"  easypost: {eps:,.0f} canonical events/s on one core; json.loads alone: {baseline:,.0f} details/s "
        f"(normalize costs {baseline / eps:.1f}x parsing)"
    )
    return {"normalize_eps.easypost": eps}


GOALS = {
    "import_ratio.webhook_receiver": ("<=", 1.15),
    "import_ratio.event_processor": ("<=", 1.6),
    "ddb_writes_per_event": ("<=", 1.5),
    "putevents_per_change": ("<=", 0.2),
    "normalize_eps.easypost": (">=", 5000),
}


def main() -> int:
    figures: dict[str, float] = {}
    print("import cost of the handlers")
    figures |= import_ratios()
    print("processor write cost")
    figures |= processor_write_costs()
    print("normalization throughput")
    figures |= normalize_rates()
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
