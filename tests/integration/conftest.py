"""Integration tier: handlers → logic → DynamoDB/SQS/S3/EventBridge on moto (in-process),
with every resource created from template.yaml itself."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from moto import mock_aws

from infra.local.authorizers import LocalAuthorizers
from infra.local.functions import FunctionHost
from infra.local.gateway import http_event, http_response
from infra.local.pollers import QueuePoller
from infra.local.stack import LocalStack, aws_client, deploy
from infra.local.template import Template
from shared import clock
from shared.sources import EASYPOST_SIGNATURE, GENERIC_SIGNATURE

SECRETS = {"easypost": ["easypost-current", "easypost-previous"], "generic": ["warehouse-key-2"]}


@dataclass
class Response:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Deployed:
    stack: LocalStack
    host: FunctionHost
    tap_url: str
    authorizers: LocalAuthorizers | None = None

    def client(self, service: str) -> Any:
        return aws_client(service)

    def call(self, method: str, path: str, *, body: bytes = b"", headers: dict[str, str] | None = None) -> Response:
        """An HTTP request through the template's routes (and their authorizers), as API Gateway
        would deliver it."""
        if self.authorizers is None:
            self.authorizers = LocalAuthorizers(self.stack.template.http_authorizers(), self.host.invoke, now=clock.now)
        path, _, query = path.partition("?")
        for route in self.stack.template.http_routes():
            found = route.pattern().match(path)
            if found and route.method == method:
                event = http_event(
                    route=route,
                    method=method,
                    raw_path=path,
                    query=query,
                    headers=list((headers or {}).items()),
                    body=body,
                    path_parameters=found.groupdict(),
                    source_ip="203.0.113.9",
                    now=clock.now(),
                )
                refused = self.authorizers.authorize(route, event)
                status, headers, payload = refused or http_response(self.host.invoke(route.function, event))
                return Response(status, json.loads(payload) if payload else None, headers)
        return Response(404, {"message": "Not Found"})

    def post_webhook(self, source: str, body: bytes, headers: dict[str, str] | None = None) -> Response:
        if headers is None:
            headers = sign(source, body)
        return self.call(
            "POST", f"/webhooks/{source}", body=body, headers={"content-type": "application/json", **headers}
        )

    def poller(self, retry_delay: int = 0) -> QueuePoller:
        (source,) = self.stack.template.queue_sources()
        return QueuePoller(
            source,
            queue_url=self.stack.ref(source.queue),
            queue_arn=self.stack.att(source.queue, "Arn"),
            sqs=self.client("sqs"),
            invoke=self.host.invoke,
            retry_delay=retry_delay,
        )

    def drain(self, max_batches: int = 100) -> int:
        """Run the event source until the ingest queue is empty; returns batches delivered."""
        poller = self.poller()
        batches = 0
        while batches < max_batches and poller.poll_once():
            batches += 1
        return batches

    def bus_events(self) -> list[dict[str, Any]]:
        sqs = self.client("sqs")
        found: list[dict[str, Any]] = []
        while messages := sqs.receive_message(QueueUrl=self.tap_url, MaxNumberOfMessages=10).get("Messages", []):
            found.extend(json.loads(m["Body"]) for m in messages)
            for m in messages:
                sqs.delete_message(QueueUrl=self.tap_url, ReceiptHandle=m["ReceiptHandle"])
        return found

    def table_items(self) -> list[dict[str, Any]]:
        return self.client("dynamodb").scan(TableName=self.stack.ref("ShipmentsTable"))["Items"]

    def archived_keys(self) -> list[str]:
        listing = self.client("s3").list_objects_v2(Bucket=self.stack.ref("RawArchiveBucket"))
        return [item["Key"] for item in listing.get("Contents", [])]

    def queued(self, logical_id: str = "IngestQueue") -> int:
        attributes = self.client("sqs").get_queue_attributes(
            QueueUrl=self.stack.ref(logical_id),
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])

    def writes(self) -> tuple[int, int, int]:
        """(table items, archived objects, queued messages): what a rejection must leave at zero."""
        return len(self.table_items()), len(self.archived_keys()), self.queued()


def sign(source: str, body: bytes, secret: str | None = None) -> dict[str, str]:
    if source == "easypost":
        return {"x-hmac-signature": EASYPOST_SIGNATURE.sign(body, secret or SECRETS["easypost"][0])}
    if source == "generic":
        when = int(clock.now().timestamp())
        return {"shiplight-signature": GENERIC_SIGNATURE.sign(body, secret or SECRETS["generic"][0], when)}
    raise ValueError(source)


@pytest.fixture
def deployed(tmp_path: Path) -> Iterator[Deployed]:
    with mock_aws():
        stack = deploy(Template.load(), secret_values={"WebhookSecrets": json.dumps(SECRETS)})
        sqs, events = aws_client("sqs"), aws_client("events")
        tap_url = sqs.create_queue(QueueName="test-bus-tap")["QueueUrl"]
        tap_arn = sqs.get_queue_attributes(QueueUrl=tap_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        bus = stack.ref("EventBus")
        events.put_rule(Name="tap", EventBusName=bus, EventPattern=json.dumps({"source": ["shiplight"]}))
        events.put_targets(Rule="tap", EventBusName=bus, Targets=[{"Id": "tap", "Arn": tap_arn}])
        host = FunctionHost(stack.functions, base_environment={}, log_dir=tmp_path / "logs")
        yield Deployed(stack, host, tap_url)
        host.close()
