"""A merchant over HTTP against the local stack, with keys made by `shiplight api-key`."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from infra.local.runtime import LocalRuntime, RuntimeOptions
from shared.clock import FrozenClock
from tests.e2e.conftest import SECRETS, http

ROOT = Path(__file__).resolve().parents[2]
START = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


def shiplight(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "infra.cli", *args], capture_output=True, text=True, timeout=120, cwd=ROOT
    )


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[tuple[LocalRuntime, FrozenClock]]:
    moment = FrozenClock(START)
    options = RuntimeOptions(
        port=0, secrets=SECRETS, state_dir=tmp_path, retry_delay=0, clock=moment, schedules=False, bus_tap=True
    )
    with LocalRuntime(options) as runtime:
        yield runtime, moment


def registration() -> bytes:
    return json.dumps(
        {
            "carrier": "UPS",
            "tracking_number": "1Z4Y0A190348261953",
            "order_id": "ORD-77",
            "origin": {"country": "US", "region": "NV"},
            "destination": {"country": "CA", "region": "ON", "city": "Toronto", "postal_code": "M5V 2T6"},
            "customer": {"name": "Sam Roe", "email": "sam.roe@example.com", "phone": "+14165550123"},
            "locale": "en-CA",
            "time_zone": "America/Toronto",
            "promised_delivery_date": "2026-11-30",
            "label_created_at": "2026-11-24T08:30:00-05:00",
        }
    ).encode()


def as_merchant(key: str | None) -> dict[str, str]:
    headers = {"content-type": "application/json"}
    if key is not None:
        headers["authorization"] = f"Bearer {key}"
    return headers


def test_a_merchant_registers_and_reads_shipments_with_a_cli_made_key(
    stack: tuple[LocalRuntime, FrozenClock], tmp_path: Path
) -> None:
    runtime, moment = stack
    url = runtime.url
    # Given a key made with the CLI against the running local stack
    made = shiplight("api-key", "create", "--label", "e2e shop", "--local", url, "--json")
    assert made.returncode == 0, made.stderr
    created_key: dict[str, Any] = json.loads(made.stdout)
    key = created_key["api_key"]
    assert key.startswith(f"shl_{created_key['key_id']}_")
    # When the merchant calls without it, then with it
    assert http("POST", f"{url}/v1/shipments", registration(), as_merchant(None)) == (
        401,
        {"message": "Unauthorized"},
    )
    status, first = http("POST", f"{url}/v1/shipments", registration(), as_merchant(key))
    assert status == 201, first
    status, again = http("POST", f"{url}/v1/shipments", registration(), as_merchant(key))
    assert status == 200
    assert (again["shipment_id"], again["tracking_token"]) == (first["shipment_id"], first["tracking_token"])
    assert first["tracking_url"] == f"{url}/t/{first['tracking_token']}"
    # Then the shipment reads back by id and by order, and nothing else is found
    status, view = http("GET", f"{url}/v1/shipments/{first['shipment_id']}", headers=as_merchant(key))
    assert status == 200
    assert view["registration"]["destination"]["country"] == "CA"
    assert view["registration"]["label_created_at"] == "2026-11-24T13:30:00Z"
    status, page = http("GET", f"{url}/v1/shipments?order_id=ORD-77", headers=as_merchant(key))
    assert status == 200
    assert [s["shipment_id"] for s in page["shipments"]] == [first["shipment_id"]]
    assert http("GET", f"{url}/v1/shipments/shp_nope", headers=as_merchant(key)) == (
        404,
        {"error": "not_found", "detail": "no shipment with this id"},
    )
    assert http("GET", f"{url}/v1/shipments/{first['shipment_id']}", headers=as_merchant("shl_x"))[0] == 401
    # and the customer's tracking JSON works with the token, showing no registration data
    status, public = http("GET", f"{url}/v1/track/{first['tracking_token']}")
    assert status == 200
    assert "sam.roe@example.com" not in json.dumps(public)
    assert "ORD-77" not in json.dumps(public)
    # and the bus carried the registration
    assert [e["detail-type"] for e in runtime.published_events()] == ["Shipment Registered"]

    # When the key is listed, then revoked
    (tmp_path / "local.json").write_text(json.dumps({"url": url}))  # as `shiplight serve` writes it
    listed = shiplight("api-key", "list", "--local", "--state-dir", str(tmp_path))
    assert listed.returncode == 0, listed.stderr
    assert created_key["key_id"] in listed.stdout
    assert "e2e shop" in listed.stdout
    assert key not in listed.stdout
    revoked = shiplight("api-key", "revoke", created_key["key_id"], "--local", url)
    assert revoked.returncode == 0, revoked.stderr
    assert created_key["key_id"] in revoked.stdout
    # Then the gateway's cached verdict holds for its five minutes, then the key is refused
    assert http("GET", f"{url}/v1/shipments?order_id=ORD-77", headers=as_merchant(key))[0] == 200
    moment.advance(timedelta(seconds=301))
    status, refused = http("GET", f"{url}/v1/shipments?order_id=ORD-77", headers=as_merchant(key))
    assert (status, refused["error"]) == (403, "forbidden")
    (entry,) = json.loads(shiplight("api-key", "list", "--local", url, "--json").stdout)
    assert entry["revoked_at"] is not None
    # and an unknown key id cannot be revoked
    unknown = shiplight("api-key", "revoke", "0123456789abcdef", "--local", url)
    assert unknown.returncode == 1
    assert "no API key" in unknown.stderr
    # and no log line of any function holds the key or the customer's contact
    logs = "".join(path.read_text() for path in (tmp_path / "logs").glob("*.log"))
    assert "api key checked" in logs
    for secret in (key, "sam.roe@example.com", "+14165550123"):
        assert secret not in logs


def test_the_cli_says_when_no_local_stack_answers(tmp_path: Path) -> None:
    done = shiplight("api-key", "list", "--local", "http://127.0.0.1:9")
    assert done.returncode == 1
    assert "no Shiplight local stack answers" in done.stderr
