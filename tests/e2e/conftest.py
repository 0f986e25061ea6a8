"""End-to-end tier: the embedded local stack over real HTTP, as a carrier or a user calls it."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from infra.local.runtime import LocalRuntime, RuntimeOptions

pytestmark = pytest.mark.e2e

SECRETS = {"easypost": ["e2e-easypost"], "generic": ["e2e-generic"]}


def http(method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(url, data=body, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            payload = response.read()
            return response.status, json.loads(payload) if payload else None
    except urllib.error.HTTPError as error:
        payload = error.read()
        return error.code, json.loads(payload) if payload else None


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[LocalRuntime]:
    with LocalRuntime(
        RuntimeOptions(port=0, secrets=SECRETS, state_dir=tmp_path, retry_delay=0, bus_tap=True)
    ) as started:
        yield started
