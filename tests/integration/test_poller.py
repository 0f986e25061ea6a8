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
from shared.logic.polling.cadence import RUN_PERIOD
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

    (schedule,) = [s for s in deployed.stack.template.schedules() if s.function == "CarrierPollerFunction"]
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


def test_rotated_carrier_credentials_are_picked_up(
    polled: tuple[Deployed, FakeCarrierApi, FrozenClock], world: CarrierWorld
) -> None:
    deployed, carriers, frozen = polled
    number = "1Z4Y0A190348261960"
    world.add(
        Parcel(legs=(Leg("ups", number),), origin=RENO, destination=AKRON),
        [TrueScan("label_created", START - timedelta(hours=1), RENO)],
    )
    body = generic_body([generic_event(carrier="ups", tracking_number=number, code="label_created", occurred_at=START)])
    assert deployed.post_webhook("generic", body).status == 202
    deployed.drain()
    secrets = aws_client("secretsmanager")
    secret_id = deployed.stack.ref("CarrierCredentials")

    def next_due() -> datetime:
        (meta,) = [i for i in deployed.table_items() if i["sk"]["S"] == "META"]
        return datetime.fromisoformat(meta["poll_due_at"]["S"].replace("Z", "+00:00"))

    def rotate(client_secret: str, *, in_the_secret: bool = True) -> None:
        ups = {**FAKE_CREDENTIALS["ups"], "client_secret": client_secret}
        carriers.rotate_credentials("ups", ups)
        if in_the_secret:
            secrets.put_secret_value(SecretId=secret_id, SecretString=json.dumps({**FAKE_CREDENTIALS, "ups": ups}))

    # Given the poller has polled once (its container now holds the credentials and a UPS token)
    frozen.set(next_due() + timedelta(minutes=1))
    assert run_poller(deployed)["polled"] == 1
    # and re-read the secret a couple of minutes before the next poll is due
    frozen.set(next_due() - timedelta(minutes=2))
    assert "polled" not in run_poller(deployed)

    # When UPS's credentials are rotated (at UPS and in the secret) before the cached ones expire
    rotate("rotated-once")
    frozen.set(next_due() + timedelta(minutes=1))
    result = run_poller(deployed)
    # Then the refusal made the poller re-read the secret at once, and the poll went through
    assert (result.get("credentials_reloaded"), result.get("polled"), result.get("failed")) == (1, 1, None)

    # When they are rotated again and the next poll is hours later
    rotate("rotated-twice")
    frozen.set(next_due() + timedelta(minutes=1))
    result = run_poller(deployed)
    # Then the poller had already re-read them (older than five minutes): no refusal at all
    assert (result.get("credentials_reloaded"), result.get("polled")) == (None, 1)

    # When UPS rotates but the secret still holds the old ones
    rotate("only-at-ups", in_the_secret=False)
    at = next_due() + timedelta(minutes=1)
    frozen.set(at)
    result = run_poller(deployed)
    # Then one re-read found nothing new: UPS is rested and the shipment asked about again in an hour
    assert (result.get("credentials_reloaded"), result.get("failed"), result.get("carriers_rested")) == (1, 1, 1)
    assert next_due() == at + timedelta(hours=1)


def test_the_shard_rotation_follows_the_pollers_schedule() -> None:
    # Given the template's schedule for the poller, Then first_shard assumes the same period
    # (otherwise eight runs in a row would not start at eight different shards)
    (schedule,) = [s for s in Template.load().schedules() if s.function == "CarrierPollerFunction"]
    assert schedule.period == RUN_PERIOD
