"""Support over HTTP against the local stack: a warehouse's scans come in by webhook, support
records a not-received claim, reads its queue, asks for the refund decision as the days pass,
then closes the claim; the bus carries both changes."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from infra.formats.generic import generic_body, generic_event
from infra.local.runtime import LocalRuntime, RuntimeOptions
from shared.clock import FrozenClock
from shared.sources import GENERIC_SIGNATURE
from tests.e2e.conftest import SECRETS, http

ROOT = Path(__file__).resolve().parents[2]
START = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)  # a Monday


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[tuple[LocalRuntime, FrozenClock]]:
    moment = FrozenClock(START)
    options = RuntimeOptions(
        port=0, secrets=SECRETS, state_dir=tmp_path, retry_delay=0, clock=moment, schedules=False, bus_tap=True
    )
    with LocalRuntime(options) as runtime:
        yield runtime, moment


def api_key(url: str) -> str:
    made = subprocess.run(
        [sys.executable, "-m", "infra.cli", "api-key", "create", "--label", "support desk", "--local", url, "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert made.returncode == 0, made.stderr
    key: str = json.loads(made.stdout)["api_key"]
    return key


def warehouse_scans(runtime: LocalRuntime, moment: FrozenClock, *scans: tuple[str, datetime]) -> None:
    body = generic_body(
        [
            generic_event(
                carrier="ups",
                tracking_number="1Z4Y0A190348261953",
                code=code,
                occurred_at=at,
                city="Toronto",
                region="ON",
                country="CA",
            )
            for code, at in scans
        ]
    )
    signature = GENERIC_SIGNATURE.sign(body, SECRETS["generic"][0], int(moment.now().timestamp()))
    headers = {"content-type": "application/json", "shiplight-signature": signature}
    assert http("POST", f"{runtime.url}/webhooks/generic", body, headers)[0] == 202
    runtime.wait_idle()


def test_support_records_a_claim_follows_the_refund_decision_and_closes_it(
    stack: tuple[LocalRuntime, FrozenClock],
) -> None:
    runtime, moment = stack
    url = runtime.url
    auth = {"authorization": f"Bearer {api_key(url)}", "content-type": "application/json"}
    # Given a parcel handed to UPS on Monday and delivered on Tuesday at 15:00 UTC
    warehouse_scans(
        runtime,
        moment,
        ("handed_to_carrier", START + timedelta(hours=1)),
        ("delivered", START + timedelta(hours=30)),
    )
    ddb = runtime.client("dynamodb")
    (meta,) = [
        i for i in ddb.scan(TableName=runtime.require_stack().ref("ShipmentsTable"))["Items"] if i["sk"]["S"] == "META"
    ]
    shipment_id = meta["shipment_id"]["S"]
    moment.set(START + timedelta(hours=34))
    # When support records the customer's not-received claim
    claim: dict[str, Any] = {
        "description": "Customer says the porch camera shows no delivery at all.",
        "claimed_at": "2026-11-24T13:30:00-05:00",
        "contact_channel": "chat",
    }
    status, recorded = http("POST", f"{url}/v1/shipments/{shipment_id}/claims", json.dumps(claim).encode(), auth)
    assert status == 201, recorded
    exception_id = recorded["claim"]["exception_id"]
    # Then it is first in support's queue, with the last scan and the time left to act
    status, queue = http("GET", f"{url}/v1/exceptions?owner=support", headers=auth)
    assert status == 200
    (row,) = queue["items"]
    assert (row["exception_id"], row["type"]) == (exception_id, "delivered_not_received")
    assert row["last_scan"]["milestone"] == "delivered"
    assert row["last_scan"]["place"]["city"] == "Toronto"
    assert row["sla_left"] == "1d"
    # And the refund waits two days after the delivery, then is allowed
    status, decision = http("GET", f"{url}/v1/shipments/{shipment_id}/refund-decision", headers=auth)
    assert (status, decision["decision"], decision["earliest_at"]) == (200, "wait", "2026-11-26T15:00:00Z")
    moment.set(START + timedelta(hours=78))
    status, decision = http("GET", f"{url}/v1/shipments/{shipment_id}/refund-decision", headers=auth)
    assert (status, decision["decision"], decision["reason"]) == (200, "allow", "claim_window_passed")
    # When support closes the claim
    note = json.dumps({"note": "Refunded; carrier claim filed."}).encode()
    status, closed = http("POST", f"{url}/v1/exceptions/{exception_id}/resolve", note, auth)
    assert (status, closed["status"]) == (200, "resolved")
    # Then closing it again is a conflict, an unknown id a 404, and a call without a key a 401
    assert http("POST", f"{url}/v1/exceptions/{exception_id}/resolve", note, auth)[0] == 409
    assert http("POST", f"{url}/v1/exceptions/exc_{'0' * 24}/resolve", note, auth) == (
        404,
        {"error": "not_found", "detail": "no exception with this id"},
    )
    assert http("GET", f"{url}/v1/exceptions", headers={})[0] == 401
    # And the merchant's bus carried the claim and its resolution
    kinds = [e["detail-type"] for e in runtime.published_events() if "Exception" in e["detail-type"]]
    assert kinds == ["Shipment Exception Raised", "Shipment Exception Resolved"]
