"""The merchant API on moto, through the template's routes, its authorizer and the real
handlers: registration, views, refusals, the key store, the order index, and what must
never leak (the customer into the public index, keys and contacts into logs)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import boto3
import pytest
from moto import mock_aws

from infra.cli import main
from infra.local.scheduler import scheduled_event
from infra.local.template import REPO_ROOT, ScheduleSource, Template
from shared import clock
from shared.clock import FrozenClock
from shared.dal.apikeys import DynamoApiKeyStore
from shared.dal.bus import EventBridgePublisher
from shared.dal.codec import encode_item
from shared.dal.orders import DynamoOrderIndex
from shared.dal.shipments import Commit, DynamoShipmentStore
from shared.errors import Conflict
from shared.logic.api.auth import create_api_key, revoke_api_key
from shared.logic.ingest.process import Staged, commit_batch
from shared.logic.merchant.registration import parse_registration, register_shipment
from shared.logic.polling.cadence import DEFAULT_POLICY
from shared.logic.shipments.chain import CommitOptions
from shared.logic.shipments.unit_of_work import UnitOfWork
from shared.models.apikeys import ApiKeyRecord
from shared.models.canonical import IncidentType, Milestone
from tests.builders import T0, generic_scans, scan
from tests.integration.conftest import Deployed, Response

NOW = T0 + timedelta(hours=3)
UNKNOWN_KEY = "shl_0123456789abcdef_" + "A" * 43
EMAIL, PHONE = "ann.lee@example.com", "+13125550100"


@pytest.fixture(autouse=True)
def frozen_clock() -> FrozenClock:
    frozen = FrozenClock(NOW)
    clock.install(frozen)
    return frozen


def registration(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "carrier": "ups",
        "tracking_number": "1Z4Y0A190348261953",
        "order_id": "ORD-1001",
        "origin": {"country": "US", "region": "NV", "city": "Reno"},
        "destination": {"country": "US", "region": "IL", "city": "Chicago", "postal_code": "60601"},
        "customer": {"name": "Ann Lee", "email": EMAIL, "phone": PHONE},
        "locale": "en-US",
        "time_zone": "America/Chicago",
        "label_created_at": "2026-11-02T08:00:00Z",
    }
    body.update(changes)
    return body


def key_store(deployed: Deployed) -> DynamoApiKeyStore:
    return DynamoApiKeyStore(deployed.stack.ref("ApiKeysTable"))


def new_key(deployed: Deployed, label: str = "test") -> tuple[ApiKeyRecord, str]:
    return create_api_key(key_store(deployed), label=label, now=clock.now())


class Merchant:
    def __init__(self, deployed: Deployed, key: str) -> None:
        self.deployed = deployed
        self.key = key

    def call(self, method: str, path: str, body: Any = None) -> Response:
        headers = {"authorization": f"Bearer {self.key}", "content-type": "application/json", "host": "api.test"}
        return self.deployed.call(
            method, path, body=json.dumps(body).encode() if body is not None else b"", headers=headers
        )


@pytest.fixture
def merchant(deployed: Deployed) -> Merchant:
    return Merchant(deployed, new_key(deployed)[1])


# ------------------------------------------------------------------------------ round trip


def test_register_again_and_read_back(deployed: Deployed, merchant: Merchant) -> None:
    # When a merchant registers a parcel, then retries the same request
    created = merchant.call("POST", "/v1/shipments", registration())
    again = merchant.call("POST", "/v1/shipments", registration())
    # Then the first creates (201), the retry answers the same shipment (200)
    assert created.status == 201, created.body
    assert again.status == 200
    shipment_id, token = created.body["shipment_id"], created.body["tracking_token"]
    assert (again.body["shipment_id"], again.body["tracking_token"]) == (shipment_id, token)
    assert created.body["tracking_url"] == f"https://api.test/t/{token}"  # the address the API was called on
    assert created.headers["location"] == f"/v1/shipments/{shipment_id}"
    # and the shipment reads back by id and by order
    one = merchant.call("GET", f"/v1/shipments/{shipment_id}")
    assert one.status == 200
    assert one.body["registration"]["customer"]["email"] == EMAIL
    assert one.body["registration"]["label_created_at"] == "2026-11-02T08:00:00Z"
    assert one.body["exceptions"] == []
    assert one.body["eta"] is None
    listed = merchant.call("GET", "/v1/shipments?order_id=ORD-1001")
    assert listed.status == 200
    assert [s["shipment_id"] for s in listed.body["shipments"]] == [shipment_id]
    assert listed.body["next_cursor"] is None
    # and the bus heard of the registration once
    (announced,) = deployed.bus_events()
    assert announced["detail-type"] == "Shipment Registered"
    assert announced["detail"]["shipment_id"] == shipment_id
    assert announced["detail"]["sequence"] == 1


def test_the_first_webhook_and_the_registration_share_one_shipment(deployed: Deployed, merchant: Merchant) -> None:
    # Given the carrier's first scan arrived before the registration
    assert deployed.post_webhook("generic", generic_scans(("handed_to_carrier", 1))).status == 202
    deployed.drain()
    (meta,) = [i for i in deployed.table_items() if i["sk"]["S"] == "META"]
    # When the merchant registers the parcel
    answer = merchant.call("POST", "/v1/shipments", registration())
    # Then it is the shipment the scan created, with its token
    assert answer.status == 200
    assert answer.body["shipment_id"] == meta["shipment_id"]["S"]
    assert answer.body["tracking_token"] == meta["public_token"]["S"]
    view = merchant.call("GET", f"/v1/shipments/{answer.body['shipment_id']}").body
    assert view["status"] == "picked_up"
    assert view["order_id"] == "ORD-1001"
    assert len([i for i in deployed.table_items() if i["sk"]["S"] == "META"]) == 1


# ------------------------------------------------------------------------------ refusals


def test_refusals_keep_their_shapes(deployed: Deployed, merchant: Merchant) -> None:
    revoked_record, revoked = new_key(deployed, "old")
    revoke_api_key(key_store(deployed), revoked_record.key_id, now=clock.now())
    body = json.dumps(registration()).encode()
    # No Authorization header: API Gateway itself, before any function runs
    missing = deployed.call("POST", "/v1/shipments", body=body)
    assert (missing.status, missing.body) == (401, {"message": "Unauthorized"})
    # A header that is not a usable key: the function, in the error shape, with the challenge
    for header in ("Bearer nope", f"Bearer {UNKNOWN_KEY}", f"Basic {merchant.key}", merchant.key):
        refused = deployed.call("POST", "/v1/shipments", body=body, headers={"authorization": header})
        assert refused.status == 401, header
        assert refused.body["error"] == "unauthorized"
        assert refused.headers["www-authenticate"] == 'Bearer realm="shiplight"'
    # A revoked key
    forbidden = deployed.call("GET", "/v1/shipments?order_id=ORD-1", headers={"authorization": f"Bearer {revoked}"})
    assert (forbidden.status, forbidden.body["error"]) == (403, "forbidden")
    # Unknown ids, whatever they look like: one answer
    answers = [merchant.call("GET", f"/v1/shipments/{i}") for i in ("shp_" + "0" * 24, "nope", "1Z4Y0A190348261953")]
    assert {(a.status, json.dumps(a.body)) for a in answers} == {
        (404, json.dumps({"error": "not_found", "detail": "no shipment with this id"}))
    }
    # Bad input names the field
    bad = merchant.call("POST", "/v1/shipments", registration(destination={"country": "XX"}))
    assert bad.status == 400
    assert bad.body["error"] == "invalid_input"
    assert bad.body["detail"].startswith("destination.country: ")
    # and nothing was written by any of these
    assert [i for i in deployed.table_items() if i["sk"]["S"] == "META"] == []


def test_a_revocation_holds_once_the_cached_verdict_expires(
    deployed: Deployed, merchant: Merchant, frozen_clock: FrozenClock
) -> None:
    # Given a key in use (its verdict is cached by the gateway for 300 s)
    record, key = new_key(deployed, "to revoke")
    user = Merchant(deployed, key)
    assert user.call("POST", "/v1/shipments", registration()).status == 201
    # When it is revoked
    revoke_api_key(key_store(deployed), record.key_id, now=clock.now())
    # Then requests within the cache TTL still pass, as API Gateway's would
    frozen_clock.advance(timedelta(seconds=299))
    assert user.call("POST", "/v1/shipments", registration()).status == 200
    # and after it the key is refused
    frozen_clock.advance(timedelta(seconds=2))
    refused = user.call("POST", "/v1/shipments", registration())
    assert (refused.status, refused.body["error"]) == (403, "forbidden")
    # while other keys keep working
    assert merchant.call("POST", "/v1/shipments", registration()).status == 200


def example_path(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "shp_000000000000000000000000", path)


def test_every_route_behind_the_authorizer_refuses_an_unusable_key(deployed: Deployed) -> None:
    # Given every route the template puts behind the API key authorizer (today's and future ones)
    record, revoked = new_key(deployed, "revoked")
    revoke_api_key(key_store(deployed), record.key_id, now=clock.now())
    guarded = [r for r in deployed.stack.template.http_routes() if r.authorizer]
    assert {("POST", "/v1/shipments"), ("GET", "/v1/shipments"), ("GET", "/v1/shipments/{id}")} <= {
        (r.method, r.path) for r in guarded
    }
    for route in guarded:
        path = example_path(route.path)
        # When called with an unknown key, then with a revoked one
        unknown = deployed.call(route.method, path, headers={"authorization": f"Bearer {UNKNOWN_KEY}"})
        refused = deployed.call(route.method, path, headers={"authorization": f"Bearer {revoked}"})
        # Then the function refuses before doing anything
        assert (unknown.status, unknown.body["error"]) == (401, "unauthorized"), route
        assert (refused.status, refused.body["error"]) == (403, "forbidden"), route


# ------------------------------------------------------------------------------ privacy


def test_the_public_index_and_the_logs_never_hold_the_customer_or_the_key(
    deployed: Deployed, merchant: Merchant, tmp_path: Path
) -> None:
    # Given a registered parcel with its customer's contact, and scans
    token = merchant.call("POST", "/v1/shipments", registration()).body["tracking_token"]
    deployed.post_webhook("generic", generic_scans(("handed_to_carrier", 1), ("arrived_at_hub", 5)))
    deployed.drain()
    merchant.call("GET", "/v1/shipments?order_id=ORD-1001")
    # When the tracking page's index is read
    public = DynamoShipmentStore(deployed.stack.ref("ShipmentsTable")).public_items(token)
    # Then it holds the shipment and its scans, but no registration data
    assert {item["entity"] for item in public} == {"shipment", "event"}
    text = json.dumps(public)
    for private in (EMAIL, PHONE, "Ann Lee", "ORD-1001", "60601", "customer", "order_id"):
        assert private not in text
    # and no function's log line carries the key or the contact
    logs = "".join(path.read_text() for path in (tmp_path / "logs").glob("*.log"))
    assert "AuthorizerFunction" in {p.stem for p in (tmp_path / "logs").glob("*.log")}
    assert logs  # the functions did log
    key_secret = merchant.key.split("_", 2)[2]  # shl_<key id>_<secret>; the secret may itself hold "_"
    for secret in (merchant.key, key_secret, EMAIL, PHONE, "Ann Lee"):
        assert secret not in logs


# ------------------------------------------------------------------------------ races on DynamoDB


class RacingStore(DynamoShipmentStore):
    """The DynamoDB store, where ``meanwhile`` runs just before the first commit ``when``
    picks: the other writer commits between this writer's reads and its transaction.
    (Threads would not do: moto's transactions are not thread-safe.)"""

    def __init__(self, table: str) -> None:
        super().__init__(table)
        self.when: Any = None
        self.meanwhile: Any = None

    def commit(self, commit: Commit) -> None:
        if self.when is not None and self.when(commit):
            self.when, other = None, self.meanwhile
            other()
        super().commit(commit)


@pytest.mark.parametrize("first", ["registration", "scan"])
def test_a_registration_racing_the_first_scan_makes_one_shipment_on_dynamodb(deployed: Deployed, first: str) -> None:
    # Given a registration and a parcel's first scan, each having read "no such parcel"
    store = RacingStore(deployed.stack.ref("ShipmentsTable"))
    publisher = EventBridgePublisher(deployed.stack.ref("EventBus"))
    options = CommitOptions(poll_sources=frozenset({"ups"}))
    request = parse_registration(json.dumps(registration()), now=clock.now())
    registered: list[Any] = []

    def register() -> None:
        registered.append(register_shipment(request, uow=UnitOfWork(store, publisher), options=options))

    def first_scan() -> None:
        event = scan(Milestone.PICKED_UP, 1)
        outcome = commit_batch(
            [Staged(message_id="m1", source="ups", events=[event])], store=store, publisher=publisher
        )
        assert not outcome.failed_message_ids, outcome.errors

    creating = "registration" if first == "scan" else "ups"
    store.when = lambda commit: commit.expected_version is None and commit.shipment.first_source == creating
    # When the other one's transaction lands in between
    if first == "scan":
        store.meanwhile = first_scan
        register()
    else:
        store.meanwhile = register
        first_scan()
    assert store.when is None
    # Then the loser's conditional write fails, it re-reads and joins: one shipment with both
    metas = [i for i in deployed.table_items() if i["sk"]["S"] == "META"]
    assert len(metas) == 1
    (meta,) = metas
    assert (meta["order_id"]["S"], meta["status"]["S"]) == ("ORD-1001", "picked_up")
    assert registered[0].shipment.shipment_id == meta["shipment_id"]["S"]
    assert registered[0].created is (first == "registration")
    (owner,) = [i["shipment_id"]["S"] for i in deployed.table_items() if i["sk"]["S"] == "TRK"]
    assert owner == meta["shipment_id"]["S"]


# ------------------------------------------------------------------------------ stores


def test_the_order_index_pages_an_orders_shipments(
    deployed: Deployed, merchant: Merchant, frozen_clock: FrozenClock
) -> None:
    # Given an order shipped in three parcels, and an item of another kind that names the order
    ids = []
    for i in range(3):
        frozen_clock.advance(timedelta(seconds=1))
        answer = merchant.call("POST", "/v1/shipments", registration(tracking_number=f"1Z000000000000010{i}"))
        ids.append(answer.body["shipment_id"])
    deployed.client("dynamodb").put_item(
        TableName=deployed.stack.ref("ShipmentsTable"),
        Item=encode_item(
            {"pk": f"SHP#{ids[0]}", "sk": "NOTE#1", "order_id": "ORD-1001", "created_at": "2026-11-02T00:00:00Z"}
        ),
    )
    # When it is read two at a time through the route
    first = merchant.call("GET", "/v1/shipments?order_id=ORD-1001&limit=2")
    second = merchant.call("GET", f"/v1/shipments?order_id=ORD-1001&limit=2&cursor={first.body['next_cursor']}")
    # Then each shipment comes once, oldest first
    assert first.status == second.status == 200
    assert [s["shipment_id"] for s in first.body["shipments"] + second.body["shipments"]] == ids
    assert second.body["next_cursor"] is None
    # and the index alone answers in order, pages included
    index = DynamoOrderIndex(deployed.stack.ref("ShipmentsTable"))
    page = index.shipments_of_order("ORD-1001", limit=3, after=None)
    assert page.shipment_ids == ids
    bad = merchant.call("GET", "/v1/shipments?order_id=ORD-1001&cursor=bm9wZQ")
    assert (bad.status, bad.body["detail"]) == (400, "cursor: not a cursor this API gave")


def test_the_key_store_keeps_digests_and_revocations(deployed: Deployed) -> None:
    store = key_store(deployed)
    record, key = create_api_key(store, label="shop", now=clock.now())
    assert store.get(record.key_id) == record
    with pytest.raises(Conflict):
        store.create(record)
    assert store.revoke(record.key_id, "2026-11-02T15:00:00Z") is True
    assert store.revoke(record.key_id, "2026-11-02T16:00:00Z") is True
    assert store.get(record.key_id).revoked_at == "2026-11-02T15:00:00Z"  # type: ignore[union-attr]
    assert store.revoke("0000000000000000", "2026-11-02T15:00:00Z") is False
    other, _ = create_api_key(store, label="", now=clock.now() + timedelta(minutes=1))
    assert [r.key_id for r in store.all()] == [record.key_id, other.key_id]
    raw = deployed.client("dynamodb").scan(TableName=deployed.stack.ref("ApiKeysTable"))["Items"]
    assert key not in json.dumps(raw)


def test_the_authorizer_imports_only_the_standard_library_and_botocore() -> None:
    # Given a fresh interpreter, as the authorizer's cold start on every uncached request
    probe = "import sys, runpy; runpy.run_path(sys.argv[1]); print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))"
    path = Template.load().functions()["AuthorizerFunction"].module_path
    loaded = set(
        subprocess.run(
            [sys.executable, "-c", probe, str(path)], capture_output=True, text=True, check=True, cwd=REPO_ROOT
        ).stdout.split()
    )
    # Then nothing heavier than botocore was imported
    assert loaded.isdisjoint({"pydantic", "pydantic_core", "aws_lambda_powertools", "boto3", "s3transfer"})
    assert "botocore" in loaded


def test_the_cli_manages_the_keys_of_a_deployed_stack(capsys: pytest.CaptureFixture[str]) -> None:
    # Given a deployed stack (moto's CloudFormation) whose outputs name its key table
    template = {
        "Resources": {
            "ApiKeysTable": {
                "Type": "AWS::DynamoDB::Table",
                "Properties": {
                    "BillingMode": "PAY_PER_REQUEST",
                    "AttributeDefinitions": [{"AttributeName": "key_id", "AttributeType": "S"}],
                    "KeySchema": [{"AttributeName": "key_id", "KeyType": "HASH"}],
                },
            }
        },
        "Outputs": {"ApiKeysTableName": {"Value": {"Ref": "ApiKeysTable"}}},
    }
    with mock_aws():
        boto3.client("cloudformation", region_name="us-east-1").create_stack(
            StackName="shop-prod", TemplateBody=json.dumps(template)
        )
        # When an operator creates, lists and revokes a key with the CLI
        assert main(["api-key", "create", "--label", "backend", "--stack-name", "shop-prod", "--json"]) == 0
        created = json.loads(capsys.readouterr().out)
        assert main(["api-key", "revoke", created["key_id"], "--stack-name", "shop-prod"]) == 0
        capsys.readouterr()
        assert main(["api-key", "list", "--stack-name", "shop-prod", "--json"]) == 0
        listed = json.loads(capsys.readouterr().out)
        # Then the key was stored hashed, listed without its secret, and revoked
        assert created["api_key"].startswith(f"shl_{created['key_id']}_")
        assert [(k["key_id"], k["label"]) for k in listed] == [(created["key_id"], "backend")]
        assert listed[0]["revoked_at"] is not None
        assert created["api_key"] not in json.dumps(listed)
        # and a stack without the output is named as the problem
        assert main(["api-key", "list", "--stack-name", "no-such-stack"]) == 1
        assert "no-such-stack" in capsys.readouterr().err


def test_a_registered_label_without_a_first_scan_is_raised_by_the_silence_checker(
    deployed: Deployed, merchant: Merchant, frozen_clock: FrozenClock
) -> None:
    # Given a label created on a Friday morning in Reno, registered an hour later, never scanned
    reno = ZoneInfo("America/Los_Angeles")
    label = datetime(2026, 12, 4, 11, 0, tzinfo=reno)
    frozen_clock.set(label + timedelta(hours=1))
    body = registration(label_created_at=label.isoformat(), origin={"country": "US", "region": "NV"})
    shipment_id = merchant.call("POST", "/v1/shipments", body).body["shipment_id"]
    record = DynamoShipmentStore(deployed.stack.ref("ShipmentsTable")).load(shipment_id)
    assert record is not None
    # Then the registration armed the no-first-scan deadline from the label, in business hours
    # (the weekend skipped) plus one poll cycle of grace, and asked the checker to look shortly
    grace = DEFAULT_POLICY.awaiting_first_scan * (1 + DEFAULT_POLICY.jitter)
    due = datetime(2026, 12, 8, 11, 0, tzinfo=reno) + grace
    assert record.shipment.silence_type is IncidentType.NO_FIRST_SCAN
    assert record.shipment.silence_due_at == due
    assert record.shipment.timer_due_at is not None
    assert record.shipment.timer_due_at <= frozen_clock.now() + timedelta(minutes=2)
    deployed.bus_events()
    # When the checker runs every 5 minutes around the deadline
    checker = ScheduleSource(function="SilenceCheckerFunction", name="Every5Minutes", expression="rate(5 minutes)")
    for start, until in (
        (frozen_clock.now(), frozen_clock.now() + timedelta(minutes=10)),
        (due - timedelta(minutes=5), due + timedelta(minutes=15)),
    ):
        frozen_clock.set(start)
        while frozen_clock.now() < until:
            frozen_clock.advance(timedelta(minutes=5))
            deployed.host.invoke("SilenceCheckerFunction", scheduled_event(checker, "test", clock.now()))
    # Then one no_first_scan exception is open on the registered shipment, announced with its order
    after = DynamoShipmentStore(deployed.stack.ref("ShipmentsTable")).load(shipment_id)
    assert after is not None
    (missing,) = after.incidents
    assert missing.type is IncidentType.NO_FIRST_SCAN and missing.is_open
    assert timedelta(0) <= missing.raised_at - due <= timedelta(minutes=15)
    (raised,) = [e for e in deployed.bus_events() if e["detail-type"] == "Shipment Exception Raised"]
    assert raised["detail"]["order_id"] == "ORD-1001"
