"""A carrier posts to the local stack over HTTP; a customer reads the tracking JSON."""

from __future__ import annotations

from infra.local.runtime import LocalRuntime
from shared.sources import EASYPOST_SIGNATURE
from tests.conftest import event_bytes
from tests.e2e.conftest import SECRETS, http


def signed(body: bytes) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "x-hmac-signature": EASYPOST_SIGNATURE.sign(body, SECRETS["easypost"][0]),
    }


def test_webhooks_over_http_become_a_tracking_page(runtime: LocalRuntime) -> None:
    # Given two EasyPost updates of one UPS parcel, the newer one delivered first, one twice
    later = event_bytes("easypost", "tracker_updated_ups_delivered_after_retry.json")
    earlier = event_bytes("easypost", "tracker_bare_api_response.json")  # another parcel, bare tracker
    for body in (later, later, earlier):
        status, answer = http("POST", f"{runtime.url}/webhooks/easypost", body, signed(body))
        assert status == 202
        assert answer["status"] == "accepted"
    status, answer = http("POST", f"{runtime.url}/webhooks/easypost", later, {"x-hmac-signature": "hmac-sha256-hex=00"})
    assert status == 401
    assert answer["error"] == "unauthorized"
    # When the queue has been processed
    runtime.wait_idle()
    # Then each parcel's tracking JSON is served by its token, with its whole timeline
    metrics = runtime.require_host().metrics
    assert metrics.get("WebhookAccepted") == 3
    assert metrics.get("WebhookRejected") == 1
    assert metrics.get("EventsStored") == 7 + 2
    assert metrics.get("DuplicatesDropped") == 7
    published = runtime.published_events()
    assert len(published) == metrics.get("ChangesPublished") > 0
    tokens = {}
    ddb = runtime.client("dynamodb")
    for item in ddb.scan(TableName=runtime.require_stack().ref("ShipmentsTable"))["Items"]:
        if item["sk"]["S"] == "META":
            tokens[item["tracking_number"]["S"]] = item["public_token"]["S"]
    status, view = http("GET", f"{runtime.url}/v1/track/{tokens['1Z4Y0A190348261953']}")
    assert status == 200
    assert view["status"] == "delivered"
    assert view["carrier"] == "ups"
    assert [e["milestone"] for e in view["events"]][:3] == ["delivered", "out_for_delivery", "delivery_failed"]
    assert http("GET", f"{runtime.url}/v1/track/{'A' * 24}")[0] == 404
    assert http("GET", f"{runtime.url}/no/such/route") == (404, {"message": "Not Found"})
    status, health = http("GET", f"{runtime.url}/_local/health")
    assert status == 200
    assert health["status"] == "ok"


def test_a_processor_failure_is_retried_then_dead_lettered(runtime: LocalRuntime) -> None:
    # Given a message on the ingest queue that can never be processed
    stack = runtime.require_stack()
    sqs = runtime.client("sqs")
    sqs.send_message(QueueUrl=stack.ref("IngestQueue"), MessageBody='{"version": 9}')
    # When the event source has retried it
    runtime.wait_idle(timeout=60)
    # Then it waits in the dead-letter queue, for an operator to redrive
    dead = sqs.receive_message(QueueUrl=stack.ref("IngestDeadLetterQueue"))["Messages"]
    assert [m["Body"] for m in dead] == ['{"version": 9}']
    assert runtime.require_host().errors["EventProcessorFunction"] == 5


def test_the_stack_outputs_give_the_local_gateway_address(runtime: LocalRuntime) -> None:
    # Given a running local stack
    # When a developer reads its outputs, as they would a deployed stack's
    status, stack = http("GET", f"{runtime.url}/_local/stack")
    # Then every URL output is the local gateway's address, and each answers there
    assert status == 200
    outputs = stack["outputs"]
    assert runtime.url.startswith("http://127.0.0.1:")
    assert outputs["ApiUrl"] == runtime.url
    assert outputs["TrackingJsonUrl"] == f"{runtime.url}/v1/track/{{token}}"
    assert outputs["WebhookUrl"] == f"{runtime.url}/webhooks/{{carrier}}"
    assert http("GET", outputs["TrackingJsonUrl"].replace("{token}", "A" * 24))[0] == 404
    assert http("POST", outputs["WebhookUrl"].replace("{carrier}", "easypost"), b"{}")[0] == 401
