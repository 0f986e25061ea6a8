"""SQS event sources: what Lambda's event source mapping does, done locally.

Each ``SQS`` event of a function in the template gets a poller that receives up to
``BatchSize`` messages (waiting at most ``MaximumBatchingWindowInSeconds`` to fill a
batch), invokes the handler with the SQS event Lambda would send, deletes the messages
that succeeded and leaves the failed ones on the queue: with
``ReportBatchItemFailures`` the ones the handler names, otherwise — or when the handler
raises — the whole batch. The queue's own redrive policy then moves a message to the
dead-letter queue after ``maxReceiveCount`` receives. Locally a failed message becomes
visible again after ``retry_delay`` seconds instead of the queue's visibility timeout,
so a retry takes seconds, not minutes.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from infra.local import moto_speedups
from infra.local.functions import InvocationError
from infra.local.template import REGION, QueueSource
from shared import clock


def sqs_event(messages: list[dict[str, Any]], queue_arn: str) -> dict[str, Any]:
    """The event Lambda's SQS event source sends for a batch of received messages."""
    records = []
    for message in messages:
        attributes = {key: str(value) for key, value in message.get("Attributes", {}).items()}
        records.append(
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "attributes": attributes,
                "messageAttributes": {
                    name: {
                        "stringValue": value.get("StringValue"),
                        "binaryValue": value.get("BinaryValue"),
                        "stringListValues": [],
                        "binaryListValues": [],
                        "dataType": value["DataType"],
                    }
                    for name, value in message.get("MessageAttributes", {}).items()
                },
                "md5OfBody": message.get("MD5OfBody") or hashlib.md5(message["Body"].encode()).hexdigest(),  # noqa: S324
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": REGION,
            }
        )
    return {"Records": records}


@dataclass
class PollerStats:
    batches: int = 0
    messages: int = 0
    failed: int = 0


class QueuePoller:
    def __init__(
        self,
        source: QueueSource,
        *,
        queue_url: str,
        queue_arn: str,
        sqs: Any,
        invoke: Callable[[str, dict[str, Any]], Any],
        retry_delay: int = 1,
    ) -> None:
        self.source = source
        self.queue_url = queue_url
        self.queue_arn = queue_arn
        self.sqs = sqs
        self.invoke = invoke
        self.retry_delay = retry_delay
        self.stats = PollerStats()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.in_flight = False

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"poll-{self.source.queue}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if not self.poll_once(wait_seconds=1):
                    continue
            except Exception:  # noqa: BLE001 - a poller must survive a moto hiccup, as Lambda's does
                time.sleep(0.5)

    def _receive(self, wait_seconds: int) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        # on the wait clock: in the simulator no simulated time passes while a batch fills, so a
        # batch holds what is there, however slow the machine
        deadline = clock.monotonic() + self.source.batching_window_seconds
        while len(messages) < self.source.batch_size:
            response = self.sqs.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=min(10, self.source.batch_size - len(messages)),
                WaitTimeSeconds=wait_seconds if not messages else 0,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            )
            received = response.get("Messages", [])
            messages.extend(received)
            if not received or clock.monotonic() >= deadline:
                break
        return messages

    def _retry_later(self, messages: list[dict[str, Any]]) -> None:
        for message in messages:
            self.sqs.change_message_visibility(
                QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=self.retry_delay
            )

    def poll_once(self, wait_seconds: int = 0) -> int:
        """Deliver one batch; returns how many messages it held (0: the queue was empty)."""
        if not wait_seconds and moto_speedups.queue_has_visible_messages(self.queue_url) is False:
            return 0  # the in-process queue is empty: no ReceiveMessage round trip needed
        messages = self._receive(wait_seconds)
        if not messages:
            return 0
        self.in_flight = True
        try:
            self.stats.batches += 1
            self.stats.messages += len(messages)
            try:
                result = self.invoke(self.source.function, sqs_event(messages, self.queue_arn))
                if self.source.report_batch_item_failures and isinstance(result, dict):
                    failed = {item["itemIdentifier"] for item in result.get("batchItemFailures") or []}
                else:
                    failed = set()
            except InvocationError:
                failed = {message["MessageId"] for message in messages}
            except BaseException:
                # The invocation died (a crash, a timeout): like Lambda, delete nothing.
                self._retry_later(messages)
                raise
            self.stats.failed += len(failed)
            done = [m for m in messages if m["MessageId"] not in failed]
            for start in range(0, len(done), 10):
                self.sqs.delete_message_batch(
                    QueueUrl=self.queue_url,
                    Entries=[
                        {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                        for i, m in enumerate(done[start : start + 10])
                    ],
                )
            self._retry_later([m for m in messages if m["MessageId"] in failed])
            return len(messages)
        finally:
            self.in_flight = False
