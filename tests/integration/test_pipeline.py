"""Webhook → queue → processor → DynamoDB → EventBridge, on moto, through the real handlers."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from shared import clock
from shared.clock import FrozenClock
from shared.dal.bus import EventBridgePublisher
from shared.envelope import build_envelope
from tests.builders import T0, generic_scans
from tests.conftest import event_bytes
from tests.fakes import ProcessCrash
from tests.integration.conftest import Deployed

NOW = T0 + timedelta(days=2)


@pytest.fixture(autouse=True)
def frozen_clock() -> FrozenClock:
    frozen = FrozenClock(NOW)
    clock.install(frozen)
    return frozen


def one_scan(code: str = "handed_to_carrier", hours: float = 6) -> bytes:
    return generic_scans((code, hours))


def events_stored(deployed: Deployed) -> list[dict]:  # type: ignore[type-arg]
    return [item for item in deployed.table_items() if item["sk"]["S"].startswith("EVT#")]


def test_the_same_webhook_delivered_ten_times_stores_one_event_and_publishes_one_change(deployed: Deployed) -> None:
    body = one_scan()
    for _ in range(10):
        assert deployed.post_webhook("generic", body).status == 202
    deployed.drain()
    assert len(events_stored(deployed)) == 1
    published = deployed.bus_events()
    assert [e["detail"]["milestone"] for e in published] == ["picked_up"]
    assert published[0]["detail-type"] == "Shipment Milestone Reached"
    assert published[0]["source"] == "shiplight"
    assert deployed.host.metrics.get("DuplicatesDropped") == 9
    assert deployed.queued() == 0


def test_a_failing_record_is_retried_alone_then_dead_lettered(deployed: Deployed) -> None:
    # Given a batch where one message points at an archived payload that is not there
    sqs = deployed.client("sqs")
    queue = deployed.stack.ref("IngestQueue")
    broken = build_envelope(
        source="generic",
        channel="webhook",
        received_at=NOW,
        delivery_id="lost",
        body=b"{}",
        archive_bucket=deployed.stack.ref("RawArchiveBucket"),
    )
    broken_json = json.loads(broken.to_json()) | {"body": None}
    sqs.send_message(QueueUrl=queue, MessageBody=json.dumps(broken_json))
    for hours, code in ((0, "packed"), (6, "handed_to_carrier")):
        assert deployed.post_webhook("generic", one_scan(code, hours)).status == 202
    # When the event source delivers until the queue is empty
    poller = deployed.poller(retry_delay=0)
    deliveries = 0
    while poller.poll_once():
        deliveries += 1
    # Then the good messages were processed once, the broken one received 5 times, then dead-lettered
    assert poller.stats.messages == 3 + 4
    assert deployed.host.invocations["EventProcessorFunction"] == deliveries == 5
    assert len(events_stored(deployed)) == 2
    dead = sqs.receive_message(QueueUrl=deployed.stack.ref("IngestDeadLetterQueue"), AttributeNames=["All"])["Messages"]
    assert [json.loads(m["Body"])["delivery_id"] for m in dead] == ["lost"]
    assert deployed.queued() == 0


def test_a_crash_between_the_write_and_the_publish_publishes_exactly_once(
    deployed: Deployed, monkeypatch: pytest.MonkeyPatch, frozen_clock: FrozenClock
) -> None:
    # Given the processor dies right after its DynamoDB transaction, before PutEvents
    real_publish = EventBridgePublisher.publish
    crashes = {"left": 1}

    def crash_once(self, entries):  # type: ignore[no-untyped-def]
        if crashes["left"]:
            crashes["left"] -= 1
            raise ProcessCrash
        return real_publish(self, entries)

    monkeypatch.setattr(EventBridgePublisher, "publish", crash_once)
    body = generic_scans(("packed", 0), ("handed_to_carrier", 6), ("arrived_hub", 20))
    assert deployed.post_webhook("generic", body).status == 202
    poller = deployed.poller(retry_delay=0)
    with pytest.raises(ProcessCrash):
        poller.poll_once()
    assert deployed.bus_events() == []
    # When SQS redelivers the message (minutes later, as its visibility timeout expires)
    frozen_clock.advance(timedelta(minutes=3))
    while poller.poll_once():
        pass
    # Then every change is on the bus exactly once and nothing is left in the outbox
    milestones = [e["detail"]["milestone"] for e in deployed.bus_events()]
    assert milestones == ["label_created", "picked_up", "arrived_hub"]
    assert not [i for i in deployed.table_items() if i["sk"]["S"].startswith("OUT#")]
    sequences = sorted(int(i["sequence"]["N"]) for i in deployed.table_items() if i["sk"]["S"] == "META")
    assert sequences == [3]


def test_tracking_json_is_public_safe_and_addressed_only_by_token(deployed: Deployed) -> None:
    deployed.post_webhook("easypost", event_bytes("easypost", "tracker_updated_usps_in_transit.json"))
    deployed.drain()
    (meta,) = [i for i in deployed.table_items() if i["sk"]["S"] == "META"]
    token = meta["public_token"]["S"]
    view = deployed.call("GET", f"/v1/track/{token}")
    assert view.status == 200
    assert view.body["status"] == "arrived_hub"
    assert view.body["status_label"] == "At a sorting facility"
    assert [e["milestone"] for e in view.body["events"]] == [
        "arrived_hub",
        "departed_origin",
        "picked_up",
        "label_created",
    ]
    # no postal codes, no ids, no sources, no internal fields
    flat = json.dumps(view.body)
    for private in (
        "postal_code",
        "97203",
        "shipment_id",
        "order_id",
        "public_token",
        "event_id",
        "easypost",
        "version",
    ):
        assert private not in flat
    # order and tracking numbers never address a public resource; unknown tokens all look alike
    for guess in ("9205590221582712345678", token[:-1] + ("A" if token[-1] != "A" else "B"), "x", "%2e%2e"):
        answer = deployed.call("GET", f"/v1/track/{guess}")
        assert answer.status == 404
        assert answer.body == {"error": "not_found", "detail": "no shipment is tracked under this link"}
    assert deployed.call("GET", "/v1/track/../../etc/passwd").status == 404
