"""The local stack is threaded: the moto speed-ups must keep moto's answers right when
transactions (committed and cancelled), writes, index Queries and Scans meet on one table."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from moto import mock_aws

from infra.local import moto_speedups
from infra.local.stack import aws_client, deploy
from infra.local.template import Template

SHARDS = ("POLL#0", "POLL#1", "POLL#2")
SHIPMENTS = ("s0", "s1", "s2")  # every writer writes all three
WRITERS = 4
ROUNDS = 30  # transactions per writer; every fourth one is cancelled by its condition


@pytest.fixture
def table() -> Iterator[str]:
    moto_speedups.uninstall()  # from moto as it is, even after a local runtime ran in this process
    with mock_aws():
        assert moto_speedups.install()
        try:
            yield deploy(Template.load()).ref("ShipmentsTable")
        finally:
            moto_speedups.uninstall()


@pytest.fixture
def busy_switching() -> Iterator[None]:
    """Switch threads far more often than every 5 ms, so the threads' calls interleave inside moto."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(interval)


def meta(shipment: str) -> dict[str, Any]:
    return {"pk": {"S": f"SHP#{shipment}"}, "sk": {"S": "META"}}


def write(ddb: Any, table: str, writer: int) -> list[tuple[str, str]]:
    """Count each shipment up and move it between poll shards in transactions that also store an
    event, a fourth of them cancelled after those two writes went through; returns the
    (shipment, event) of each committed one."""
    committed = []
    for round_ in range(ROUNDS):
        shipment = SHIPMENTS[round_ % len(SHIPMENTS)]
        event = f"EVT#{writer}-{round_:03d}"
        cancelled = round_ % 4 == 3
        items: list[dict[str, Any]] = [
            {
                "Update": {
                    "TableName": table,
                    "Key": meta(shipment),
                    "UpdateExpression": "SET version = version + :one, poll_shard = :s, poll_due_at = :d",
                    "ExpressionAttributeValues": {
                        ":one": {"N": "1"},
                        ":s": {"S": SHARDS[(writer + round_) % len(SHARDS)]},
                        ":d": {"S": f"2026-12-{1 + round_:02d}"},
                    },
                }
            },
            {"Put": {"TableName": table, "Item": {"pk": {"S": f"SHP#{shipment}"}, "sk": {"S": event}}}},
        ]
        if cancelled:
            items.append(
                {
                    "ConditionCheck": {
                        "TableName": table,
                        "Key": {"pk": {"S": "GUARD"}, "sk": {"S": "GUARD"}},
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                }
            )
        try:
            ddb.transact_write_items(TransactItems=items)
        except ddb.exceptions.TransactionCanceledException:
            assert cancelled
            continue
        committed.append((shipment, event))
    return committed


def read(ddb: Any, table: str, stop: threading.Event, shipments: int) -> int:
    """Partition and index Queries and whole-table Scans until the writers are done; each answer
    must be a consistent one (a partition never loses a stored event, an index answer holds only
    items in the shard asked for, a Scan sees every shipment record)."""
    answers, events_seen = 0, 0
    while not stop.is_set():
        partition = ddb.query(
            TableName=table,
            KeyConditionExpression="pk = :p",
            ExpressionAttributeValues={":p": {"S": "SHP#s0"}},
            ConsistentRead=True,
        )["Items"]
        assert len(partition) - 1 >= events_seen
        events_seen = len(partition) - 1
        for shard in SHARDS:
            items = ddb.query(
                TableName=table,
                IndexName="ByPollDue",
                KeyConditionExpression="poll_shard = :s AND poll_due_at <= :n",
                ExpressionAttributeValues={":s": {"S": shard}, ":n": {"S": "2026-12-31"}},
            )["Items"]
            assert all(item["poll_shard"]["S"] == shard for item in items)
            answers += 1
        scanned = ddb.scan(TableName=table, ConsistentRead=True)["Items"]
        assert sum(item["sk"]["S"] == "META" for item in scanned) == shipments
        answers += 1
    return answers


def shard_answers(ddb: Any, table: str) -> dict[str, list[tuple[str, str]]]:
    answers = {}
    for shard in SHARDS:
        items = ddb.query(
            TableName=table,
            IndexName="ByPollDue",
            KeyConditionExpression="poll_shard = :s AND poll_due_at <= :n",
            ExpressionAttributeValues={":s": {"S": shard}, ":n": {"S": "2026-12-31"}},
        )["Items"]
        answers[shard] = [(item["pk"]["S"], item["poll_due_at"]["S"]) for item in items]
    return answers


@pytest.mark.usefixtures("busy_switching")
def test_concurrent_transactions_and_index_queries_lose_nothing(table: str) -> None:
    # Given three shipment records, and an item that makes a transaction's condition fail
    ddb = aws_client("dynamodb")
    for shipment in SHIPMENTS:
        ddb.put_item(TableName=table, Item={**meta(shipment), "version": {"N": "0"}})
    ddb.put_item(TableName=table, Item={"pk": {"S": "GUARD"}, "sk": {"S": "GUARD"}})
    clients = [aws_client("dynamodb") for _ in range(WRITERS + 2)]  # boto3 creates clients unsafely in threads
    stop = threading.Event()
    # When four writers commit and cancel transactions on them while two readers Query the index and Scan
    with ThreadPoolExecutor(max_workers=WRITERS + 2) as pool:
        readers = [pool.submit(read, clients[WRITERS + r], table, stop, len(SHIPMENTS)) for r in range(2)]
        writers = [pool.submit(write, clients[w], table, w) for w in range(WRITERS)]
        try:
            committed = [entry for w in writers for entry in w.result()]
        finally:
            stop.set()
        answers_read = sum(r.result() for r in readers)  # re-raises a reader's failed check
    # Then every committed write is there and no cancelled one is
    assert answers_read > 0
    everything = ddb.scan(TableName=table, ConsistentRead=True)["Items"]
    for shipment in SHIPMENTS:
        record = next(item for item in everything if item["pk"]["S"] == f"SHP#{shipment}" and item["sk"]["S"] == "META")
        assert int(record["version"]["N"]) == sum(s == shipment for s, _ in committed)
    stored_events = sorted(
        (item["pk"]["S"][4:], item["sk"]["S"]) for item in everything if item["sk"]["S"][:4] == "EVT#"
    )
    assert stored_events == sorted(committed)
    # And the index answers are the ones recomputed from the whole table, and the ones plain moto gives
    patched = shard_answers(ddb, table)
    recomputed = {
        shard: sorted(
            (item["pk"]["S"], item["poll_due_at"]["S"])
            for item in everything
            if item.get("poll_shard", {}).get("S") == shard
        )
        for shard in SHARDS
    }
    assert {shard: sorted(answer) for shard, answer in patched.items()} == recomputed
    moto_speedups.uninstall()
    assert shard_answers(ddb, table) == patched
