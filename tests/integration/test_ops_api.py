"""The ops routes on moto, through the template's routes, the API key authorizer and the real
merchant_api handler: claims, the exception queue (ordering and pages across owners on the
ByQueue index), operator resolutions on the bus, refund decisions, and their refusals."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from moto import mock_aws

from infra.formats.generic import generic_body, generic_event
from infra.local.functions import FunctionHost
from infra.local.stack import deploy
from infra.local.template import Template
from shared import clock
from shared.clock import FrozenClock
from shared.dal.apikeys import DynamoApiKeyStore
from shared.logic.api.auth import create_api_key
from tests.builders import T0
from tests.integration.conftest import SECRETS, Deployed, Response


@pytest.fixture(autouse=True)
def frozen_clock() -> FrozenClock:
    frozen = FrozenClock(T0)
    clock.install(frozen)
    return frozen


class Support:
    """A support agent calling the merchant API with a valid key."""

    def __init__(self, deployed: Deployed) -> None:
        self.deployed = deployed
        _, self.key = create_api_key(
            DynamoApiKeyStore(deployed.stack.ref("ApiKeysTable")), label="ops", now=clock.now()
        )

    def call(self, method: str, path: str, body: Any = None, raw: bytes | None = None) -> Response:
        payload = raw if raw is not None else (json.dumps(body).encode() if body is not None else b"")
        headers = {"authorization": f"Bearer {self.key}", "content-type": "application/json"}
        return self.deployed.call(method, path, body=payload, headers=headers)


@pytest.fixture
def support(deployed: Deployed) -> Support:
    return Support(deployed)


def scans(deployed: Deployed, number: str, *events: tuple[str, float, str | None]) -> str:
    """The warehouse's generic webhook with ``(code, hours after T0, exception)`` scans of
    parcel ``number``, processed; returns its shipment id."""
    body = generic_body(
        [
            generic_event(
                carrier="ups",
                tracking_number=number,
                code=code,
                occurred_at=T0 + timedelta(hours=hours),
                city="Chicago",
                region="IL",
                country="US",
                exception=exception,
            )
            for code, hours, exception in events
        ]
    )
    assert deployed.post_webhook("generic", body).status == 202
    deployed.drain()
    items = deployed.table_items()
    (meta,) = [i for i in items if i["sk"]["S"] == "META" and i.get("tracking_number", {}).get("S") == number.upper()]
    return str(meta["shipment_id"]["S"])


def claim_body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "description": "Customer found no parcel on the doormat and asked next door too.",
        "claimed_at": "2026-11-04T19:00:00Z",
        "contact_channel": "phone",
        "reference": "CASE-88",
    }
    body.update(changes)
    return body


def test_a_claim_from_record_to_refund_to_resolution(
    deployed: Deployed, support: Support, frozen_clock: FrozenClock
) -> None:
    # Given a parcel delivered on Wednesday 4 Nov at 12:00 UTC
    shipment_id = scans(deployed, "1Z4Y0A190348261953", ("handed_to_carrier", 0, None), ("delivered", 48, None))
    deployed.bus_events()
    frozen_clock.set(T0 + timedelta(hours=56))
    # When support records the customer's not-received claim
    recorded = support.call("POST", f"/v1/shipments/{shipment_id}/claims", claim_body())
    # Then the claim is open in support's queue and the refund waits two days after delivery
    assert recorded.status == 201, recorded.body
    claim = recorded.body["claim"]
    assert claim["type"] == "delivered_not_received"
    assert claim["details"]["reference"] == "CASE-88"
    assert recorded.body["refund_decision"]["decision"] == "wait"
    assert recorded.body["refund_decision"]["earliest_at"] == "2026-11-06T12:00:00Z"
    queue = support.call("GET", "/v1/exceptions?owner=support&type=delivered_not_received")
    assert queue.status == 200
    assert [row["exception_id"] for row in queue.body["items"]] == [claim["exception_id"]]
    row = queue.body["items"][0]
    assert row["last_scan"]["milestone"] == "delivered"
    assert row["last_scan"]["place"]["city"] == "Chicago"
    assert row["sla_left"] == "1d"  # the claim playbook: 24 h from raising
    # And the same claim retried is recorded once
    again = support.call("POST", f"/v1/shipments/{shipment_id}/claims", claim_body())
    assert (again.status, again.body["claim"]["exception_id"]) == (200, claim["exception_id"])
    # When two days have passed since the delivery
    frozen_clock.set(T0 + timedelta(hours=96))
    decision = support.call("GET", f"/v1/shipments/{shipment_id}/refund-decision")
    # Then the refund is allowed, resting on the delivery scan
    assert decision.status == 200
    assert (decision.body["decision"], decision.body["reason"]) == ("allow", "claim_window_passed")
    assert [e["milestone"] for e in decision.body["evidence"]] == ["delivered"]
    # When support closes the claim with a note
    closed = support.call("POST", f"/v1/exceptions/{claim['exception_id']}/resolve", {"note": "Refunded, case 88."})
    assert closed.status == 200
    assert (closed.body["status"], closed.body["resolution_note"]) == ("resolved", "Refunded, case 88.")
    # Then it leaves the open queue, shows in the resolved one, and cannot be closed twice
    assert support.call("GET", "/v1/exceptions?owner=support").body["items"] == []
    resolved = support.call("GET", "/v1/exceptions?status=resolved").body["items"]
    assert [r["exception_id"] for r in resolved] == [claim["exception_id"]]
    twice = support.call("POST", f"/v1/exceptions/{claim['exception_id']}/resolve", {"note": "again"})
    assert (twice.status, twice.body["error"]) == (409, "conflict")
    # And the bus heard of the claim and its resolution once each, in the shipment's sequence,
    # without the customer's words
    published = [e for e in deployed.bus_events() if e["detail"]["shipment_id"] == shipment_id]
    assert [e["detail-type"] for e in published] == ["Shipment Exception Raised", "Shipment Exception Resolved"]
    assert published[0]["detail"]["sequence"] < published[1]["detail"]["sequence"]
    assert "doormat" not in json.dumps(published)
    assert "CASE-88" not in json.dumps(published)


def test_the_queue_is_oldest_sla_first_across_owners_and_pages_without_repeats(
    deployed: Deployed, support: Support, frozen_clock: FrozenClock
) -> None:
    # Given exceptions raised at different times for different owners (SLA: address 8 h,
    # held 24 h, delayed 48 h, customs hold 24 h)
    raised = [
        ("1Z0000000000000001", 0, "delayed"),  # carrier_desk, due T0 + 48 h
        ("1Z0000000000000002", 1, "address_issue"),  # support, due T0 + 9 h
        ("1Z0000000000000003", 2, "held"),  # carrier_desk, due T0 + 26 h
        ("1Z0000000000000004", 3, "customs_hold"),  # support, due T0 + 27 h
        ("1Z0000000000000005", 4, "address_issue"),  # support, due T0 + 12 h
    ]
    for number, hours, exception in raised:
        frozen_clock.set(T0 + timedelta(hours=hours))
        scans(deployed, number, ("handed_to_carrier", hours - 0.5, None), ("note", hours, exception))
    frozen_clock.set(T0 + timedelta(hours=10))
    # When the whole queue is read two rows at a time
    rows: list[dict[str, Any]] = []
    cursor = None
    for _ in range(5):
        query = "limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = support.call("GET", f"/v1/exceptions?{query}")
        assert page.status == 200, page.body
        rows.extend(page.body["items"])
        cursor = page.body["next_cursor"]
        if cursor is None:
            break
    # Then every open exception comes once, the most urgent first
    assert [r["tracking_number"] for r in rows] == [
        "1Z0000000000000002",
        "1Z0000000000000005",
        "1Z0000000000000003",
        "1Z0000000000000004",
        "1Z0000000000000001",
    ]
    assert [r["overdue"] for r in rows] == [True, False, False, False, False]
    assert rows[0]["sla_left"] == "overdue 1h"
    # And one owner's queue holds only its own, in the same order
    desk = support.call("GET", "/v1/exceptions?owner=carrier_desk").body["items"]
    assert [(r["type"], r["owner"]) for r in desk] == [("held", "carrier_desk"), ("delayed", "carrier_desk")]
    # And a cursor cannot be carried over to other filters
    first = support.call("GET", "/v1/exceptions?limit=2").body["next_cursor"]
    other = support.call("GET", f"/v1/exceptions?limit=2&owner=support&cursor={first}")
    assert (other.status, other.body["error"]) == (400, "invalid_input")
    assert other.body["detail"].startswith("cursor: ")


def test_refusals_name_the_field_and_keep_one_not_found_shape(deployed: Deployed, support: Support) -> None:
    shipment_id = scans(deployed, "1Z4Y0A190348261953", ("handed_to_carrier", 0, None))
    before = len(deployed.table_items())
    not_found = {"error": "not_found", "detail": "no exception with this id"}
    # Unknown exception ids, whatever they look like
    for exception_id in ("exc_" + "a" * 24, "exc_1", "shp_" + "0" * 24, "%2e%2e"):
        answer = support.call("POST", f"/v1/exceptions/{exception_id}/resolve", {"note": "n"})
        assert (answer.status, answer.body) == (404, not_found), exception_id
    # Unknown shipments, for claims and refund decisions
    for path in ("/v1/shipments/shp_000000000000000000000000/claims", "/v1/shipments/nope/claims"):
        answer = support.call("POST", path, claim_body())
        assert (answer.status, answer.body) == (404, {"error": "not_found", "detail": "no shipment with this id"})
    assert support.call("GET", "/v1/shipments/nope/refund-decision").status == 404
    # A claim on a parcel that is not delivered
    early = support.call("POST", f"/v1/shipments/{shipment_id}/claims", claim_body())
    assert (early.status, early.body["error"]) == (409, "conflict")
    assert early.body["detail"].startswith("status: the parcel is not delivered (picked_up)")
    # Bad fields and filters
    bad_claim = support.call("POST", f"/v1/shipments/{shipment_id}/claims", claim_body(contact_channel="fax"))
    assert (bad_claim.status, bad_claim.body["detail"].split(":")[0]) == (400, "contact_channel")
    not_json = support.call("POST", f"/v1/shipments/{shipment_id}/claims", raw=b"{")
    assert (not_json.status, not_json.body["error"]) == (400, "malformed_payload")
    for query, field in (
        ("owner=boss", "owner"),
        ("type=x", "type"),
        ("status=done", "status"),
        ("limit=500", "limit"),
    ):
        answer = support.call("GET", f"/v1/exceptions?{query}")
        assert (answer.status, answer.body["detail"].split(":")[0]) == (400, field), query
    # And none of it wrote anything
    assert len(deployed.table_items()) == before


def test_refund_decision_before_the_first_scan_is_a_deny_with_its_reason(deployed: Deployed, support: Support) -> None:
    # Given a parcel only packed at the warehouse
    shipment_id = scans(deployed, "1Z4Y0A190348261953", ("packed", 0, None))
    # Then no refund before the carrier's first scan
    answer = support.call("GET", f"/v1/shipments/{shipment_id}/refund-decision")
    assert answer.status == 200
    assert answer.body["decision"] == "deny"
    assert answer.body["reason"] == "no_first_scan"
    assert answer.body["earliest_at"] is None
    assert answer.body["status"] == "label_created"


def test_the_deployments_policy_overrides_reach_the_refund_rules(tmp_path: Path) -> None:
    # Given a stack deployed with PolicyOverrides: claims refundable 3 days after delivery
    overrides = json.dumps({"refunds": {"delivered_not_received": {"days": 3}}})
    with mock_aws():
        stack = deploy(
            Template.load(parameters={"PolicyOverrides": overrides}),
            secret_values={"WebhookSecrets": json.dumps(SECRETS)},
        )
        host = FunctionHost(stack.functions, base_environment={}, log_dir=tmp_path / "logs")
        try:
            deployed = Deployed(stack, host, tap_url="")
            assert stack.functions["MerchantApiFunction"].environment["SHIPLIGHT_POLICY"] == overrides
            shipment_id = scans(deployed, "1Z4Y0A190348261953", ("handed_to_carrier", 0, None), ("delivered", 48, None))
            clock.install(FrozenClock(T0 + timedelta(hours=56)))
            support = Support(deployed)
            assert support.call("POST", f"/v1/shipments/{shipment_id}/claims", claim_body()).status == 201
            # When support asks for the refund decision
            decision = support.call("GET", f"/v1/shipments/{shipment_id}/refund-decision").body
        finally:
            host.close()
    # Then the merchant's window applies: three days after the delivery, not two
    assert (decision["decision"], decision["earliest_at"]) == ("wait", "2026-11-07T12:00:00Z")
