"""The carrier poller end to end: due-index → fake carrier API → ingest queue → processor."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from moto import mock_aws

from infra.fake_carriers import FAKE_CREDENTIALS, CarrierWorld, FakeCarrierApi
from infra.formats.generic import generic_body, generic_event
from infra.formats.scan import Leg, Parcel, Place, TrueScan
from infra.local.functions import FunctionHost
from infra.local.stack import aws_client, deploy
from infra.local.template import Template
from shared import clock
from shared.clock import FrozenClock
from tests.integration.conftest import SECRETS, Deployed

START = datetime(2026, 11, 2, 14, 0, tzinfo=UTC)
RENO = Place("Reno", "NV", "89502", "US", "America/Los_Angeles")
DENVER = Place("Commerce City", "CO", "80022", "US", "America/Denver")
AKRON = Place("Akron", "OH", "44308", "US", "America/New_York")


@pytest.fixture
def world() -> CarrierWorld:
    return CarrierWorld(now=clock.now)


@pytest.fixture
def polled(tmp_path: Path, world: CarrierWorld) -> Iterator[tuple[Deployed, FakeCarrierApi, FrozenClock]]:
    frozen = FrozenClock(START)
    clock.install(frozen)
    carriers = FakeCarrierApi(world, rate_limits={"ups": (50.0, 50.0)}).start()
    try:
        with mock_aws():
            template = Template.load(
                parameters={"CarrierApiUrls": json.dumps(carriers.base_urls()), "PollSources": "ups"}
            )
            stack = deploy(
                template,
                secret_values={
                    "WebhookSecrets": json.dumps(SECRETS),
                    "CarrierCredentials": json.dumps(FAKE_CREDENTIALS),
                },
            )
            sqs, events = aws_client("sqs"), aws_client("events")
            tap = sqs.create_queue(QueueName="tap")["QueueUrl"]
            arn = sqs.get_queue_attributes(QueueUrl=tap, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            events.put_rule(Name="tap", EventBusName=stack.ref("EventBus"), EventPattern='{"source":["shiplight"]}')
            events.put_targets(Rule="tap", EventBusName=stack.ref("EventBus"), Targets=[{"Id": "t", "Arn": arn}])
            host = FunctionHost(stack.functions, base_environment={}, log_dir=tmp_path)
            yield Deployed(stack, host, tap), carriers, frozen
            host.close()
    finally:
        carriers.stop()


def run_poller(deployed: Deployed) -> dict[str, int]:
    from infra.local.scheduler import scheduled_event

    (schedule,) = deployed.stack.template.schedules()
    result: dict[str, int] = deployed.host.invoke(schedule.function, scheduled_event(schedule, "test", clock.now()))
    return result


def test_a_polled_carrier_feeds_the_timeline(
    polled: tuple[Deployed, FakeCarrierApi, FrozenClock], world: CarrierWorld
) -> None:
    deployed, carriers, frozen = polled
    parcel = Parcel(legs=(Leg("ups", "1Z4Y0A190348261953"),), origin=RENO, destination=AKRON)
    scans = [
        TrueScan("label_created", START - timedelta(hours=1), RENO),
        TrueScan("picked_up", START + timedelta(hours=3), RENO),
        TrueScan("arrived_hub", START + timedelta(hours=20), DENVER),
        TrueScan("out_for_delivery", START + timedelta(hours=50), AKRON),
        TrueScan("delivered", START + timedelta(hours=55), AKRON),
    ]
    world.add(parcel, scans)
    # Given the warehouse tells Shiplight it handed the parcel to UPS (the shipment now exists)
    body = generic_body(
        [
            generic_event(
                carrier="ups",
                tracking_number="1Z4Y0A190348261953",
                code="handed_to_carrier",
                occurred_at=START + timedelta(hours=2, minutes=30),
            )
        ]
    )
    assert deployed.post_webhook("generic", body).status == 202
    deployed.drain()
    # When the schedule fires (every 10 minutes here, to keep the test short) for three days
    polls = 0
    for _ in range(3 * 24 * 6):
        frozen.advance(timedelta(minutes=10))
        polls += run_poller(deployed).get("polled", 0)
        deployed.drain()
    # Then UPS's scans joined the timeline through the one processing path
    items = deployed.table_items()
    (meta,) = [i for i in items if i["sk"]["S"] == "META"]
    assert meta["status"]["S"] == "delivered"
    milestones = [e["detail"]["milestone"] for e in deployed.bus_events()]
    assert milestones[-1] == "delivered"
    # polled while useful, at the cadence of the status (not every 5 minutes), and no more once delivered
    assert 5 <= polls <= 40
    assert "poll_due_at" not in meta
    assert carriers.answers["ups"] == {200: polls}
