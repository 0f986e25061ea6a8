"""POST /webhooks/{carrier}: 202 means durably stored; every rejection writes nothing."""

from __future__ import annotations

import base64
import json

import pytest

from tests.conftest import event_bytes
from tests.integration.conftest import SECRETS, Deployed, sign

EASYPOST = event_bytes("easypost", "tracker_updated_usps_in_transit.json")


def test_a_verified_webhook_is_archived_byte_for_byte_and_queued(deployed: Deployed) -> None:
    # When EasyPost posts a signed tracker update
    response = deployed.post_webhook("easypost", EASYPOST)
    # Then it is accepted, its raw bytes are in the archive and its envelope on the queue
    assert response.status == 202
    assert response.body["status"] == "accepted"
    (key,) = deployed.archived_keys()
    assert key.startswith("raw/easypost/")
    assert key.endswith(".json")
    stored = deployed.client("s3").get_object(Bucket=deployed.stack.ref("RawArchiveBucket"), Key=key)["Body"].read()
    assert stored == EASYPOST
    message = deployed.client("sqs").receive_message(QueueUrl=deployed.stack.ref("IngestQueue"))["Messages"][0]
    envelope = json.loads(message["Body"])
    assert (envelope["source"], envelope["archive_key"], envelope["body"]) == ("easypost", key, EASYPOST.decode())


def test_the_previous_secret_still_verifies_during_a_rotation(deployed: Deployed) -> None:
    response = deployed.post_webhook("easypost", EASYPOST, sign("easypost", EASYPOST, SECRETS["easypost"][1]))
    assert response.status == 202


def test_a_base64_encoded_body_is_verified_on_its_raw_bytes(deployed: Deployed) -> None:
    # API Gateway base64-encodes bodies it does not consider text
    body = event_bytes("generic", "warehouse_packed_and_handed.json")
    headers = {**sign("generic", body), "content-type": "application/octet-stream"}
    assert deployed.post_webhook("generic", body, headers).status == 202


REJECTIONS = {
    "missing signature": ("easypost", EASYPOST, {}, 401, "unauthorized"),
    "wrong signature": (
        "easypost",
        EASYPOST,
        {"x-hmac-signature": "hmac-sha256-hex=" + "ab" * 32},
        401,
        "unauthorized",
    ),
    "signed with another secret": ("easypost", EASYPOST, sign("easypost", EASYPOST, "stolen"), 401, "unauthorized"),
    "tampered body": (
        "easypost",
        EASYPOST.replace(b"MADISON", b"NOWHERE"),
        sign("easypost", EASYPOST),
        401,
        "unauthorized",
    ),
    "unknown carrier": ("pony_express", b"{}", {}, 404, "not_found"),
    "over 256 KiB": ("easypost", b"{" + b" " * (256 * 1024) + b"}", None, 413, "payload_too_large"),
    "not JSON": ("easypost", b"tracking update!", None, 400, "malformed_payload"),
    "JSON but not an object": ("easypost", b"[1, 2, 3]", None, 400, "malformed_payload"),
    "not UTF-8": ("easypost", b'{"city": "\xff\xfe"}', None, 400, "malformed_payload"),
}


@pytest.mark.parametrize("case", list(REJECTIONS))
def test_rejections_answer_json_and_write_nothing(deployed: Deployed, case: str) -> None:
    source, body, headers, status, error = REJECTIONS[case]
    response = deployed.post_webhook(source, body, sign(source, body) if headers is None else headers)
    assert response.status == status
    assert response.body["error"] == error
    assert response.body["detail"]
    assert deployed.writes() == (0, 0, 0)


def test_a_source_without_a_configured_secret_fails_closed(deployed: Deployed) -> None:
    deployed.client("secretsmanager").put_secret_value(
        SecretId=deployed.stack.ref("WebhookSecrets"), SecretString=json.dumps({"generic": ["k"]})
    )
    from shared.dal.secrets import forget_cached_secrets

    forget_cached_secrets()
    response = deployed.post_webhook("easypost", EASYPOST)
    assert response.status == 401
    assert "no webhook secret" in response.body["detail"]
    assert deployed.writes() == (0, 0, 0)


def test_the_receiver_never_logs_bodies_or_signatures(deployed: Deployed) -> None:
    deployed.post_webhook("easypost", EASYPOST)
    deployed.post_webhook("easypost", EASYPOST, {"x-hmac-signature": "hmac-sha256-hex=" + "cd" * 32})
    log = deployed.host.log_path("WebhookReceiverFunction")
    assert log is not None
    text = log.read_text()
    assert "MADISON" not in text
    assert "cdcdcd" not in text
    assert "9205590221582712345678" not in text
    assert "WebhookAccepted" in text
    assert "WebhookRejected" in text


def test_gateway_body_encoding_is_what_api_gateway_sends() -> None:
    from datetime import UTC, datetime

    from infra.local.gateway import http_event
    from infra.local.template import Route

    route = Route("POST", "/webhooks/{carrier}", "WebhookReceiverFunction")
    event = http_event(
        route=route,
        method="POST",
        raw_path="/webhooks/ups",
        query="a=1&a=2",
        headers=[("Content-Type", "image/png"), ("X-A", "1"), ("x-a", "2"), ("Cookie", "s=1; t=2")],
        body=b"\x89PNG",
        path_parameters={"carrier": "ups"},
        source_ip="1.2.3.4",
        now=datetime(2026, 11, 24, tzinfo=UTC),
    )
    assert event["isBase64Encoded"]
    assert base64.b64decode(event["body"]) == b"\x89PNG"
    assert event["headers"]["x-a"] == "1,2"
    assert event["cookies"] == ["s=1", "t=2"]
    assert event["queryStringParameters"] == {"a": "1,2"}
    assert event["requestContext"]["stage"] == "$default"
