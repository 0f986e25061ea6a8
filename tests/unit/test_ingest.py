"""The webhook receiver's body handling, before any AWS call."""

from __future__ import annotations

import base64

import pytest

from shared.errors import MalformedPayload, PayloadTooLarge
from shared.logic.ingest.receive import request_body
from shared.settings import IngressSettings, SettingsError, load

LIMIT = 256 * 1024


def test_text_and_base64_bodies_decode_to_the_same_bytes() -> None:
    raw = '{"a":"é"}'
    assert request_body(raw, False, LIMIT) == raw.encode()
    assert request_body(base64.b64encode(raw.encode()).decode(), True, LIMIT) == raw.encode()


@pytest.mark.parametrize("is_base64", [False, True])
def test_a_body_at_the_limit_passes_and_one_byte_more_is_refused(is_base64: bool) -> None:
    def encode(data: bytes) -> str:
        return base64.b64encode(data).decode() if is_base64 else data.decode()

    assert len(request_body(encode(b"x" * LIMIT), is_base64, LIMIT)) == LIMIT
    with pytest.raises(PayloadTooLarge):
        request_body(encode(b"x" * (LIMIT + 1)), is_base64, LIMIT)


def test_a_huge_body_is_refused_before_it_is_decoded() -> None:
    with pytest.raises(PayloadTooLarge):
        request_body("!" * (10 * LIMIT), True, LIMIT)  # not even valid base64: never looked at


def test_invalid_base64_is_malformed() -> None:
    with pytest.raises(MalformedPayload):
        request_body("not base64!", True, LIMIT)


def test_settings_name_the_missing_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INGEST_QUEUE_URL", "https://sqs/q")
    monkeypatch.setenv("RAW_ARCHIVE_BUCKET", "bucket")
    monkeypatch.delenv("WEBHOOK_SECRETS_ARN", raising=False)
    with pytest.raises(SettingsError, match="WEBHOOK_SECRETS_ARN"):
        load(IngressSettings)
    monkeypatch.setenv("WEBHOOK_SECRETS_ARN", "arn:secret")
    monkeypatch.setenv("MAX_WEBHOOK_BYTES", "1024")
    settings = load(IngressSettings)
    assert settings.max_webhook_bytes == 1024
    assert settings.secrets_cache_seconds == 300
    monkeypatch.setenv("MAX_WEBHOOK_BYTES", "lots")
    with pytest.raises(SettingsError, match="MAX_WEBHOOK_BYTES must be an integer"):
        load(IngressSettings)
