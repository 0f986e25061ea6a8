"""Shared fixtures: fake AWS credentials, a clean clock and clients per test, event files."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shared import clock
from shared.dal.aws import reset_clients
from shared.dal.secrets import forget_cached_secrets

EVENTS = Path(__file__).parent / "events"
REFERENCE_PAYLOADS = Path(__file__).resolve().parents[2] / "shared" / "reference-payloads"


@pytest.fixture(autouse=True)
def aws_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No test can reach real AWS: dummy credentials, one region, Powertools quiet."""
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
        "POWERTOOLS_SERVICE_NAME": "tests",
        "POWERTOOLS_METRICS_NAMESPACE": "ShiplightTests",
        "POWERTOOLS_TRACE_DISABLED": "true",
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    reset_clients()
    forget_cached_secrets()
    clock.install(None)
    yield
    clock.install(None)
    reset_clients()
    forget_cached_secrets()


def event_bytes(source: str, name: str) -> bytes:
    """A payload file from tests/events/<source>/ exactly as a sender would post it."""
    return (EVENTS / source / name).read_bytes()


def event_json(source: str, name: str) -> Any:
    return json.loads(event_bytes(source, name))
