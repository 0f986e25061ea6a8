"""The local stack's moto speed-ups change how fast Queries are answered, never what they answer."""

from __future__ import annotations

import json
import random
import warnings
from collections.abc import Iterator
from typing import Any

import moto
import pytest
from moto import mock_aws
from moto.dynamodb.models.table import SecondaryIndex, Table

from infra.local import moto_speedups
from infra.local.stack import aws_client, deploy
from infra.local.template import Template


@pytest.fixture
def table() -> Iterator[str]:
    moto_speedups.uninstall()  # moto as it is, even after a local runtime ran in this process
    with mock_aws():
        yield deploy(Template.load()).ref("ShipmentsTable")
    moto_speedups.uninstall()


def queries(table: str) -> list[dict[str, Any]]:
    ddb = aws_client("dynamodb")
    answers = []
    for shipment in range(0, 40, 3):
        answers.append(
            ddb.query(
                TableName=table,
                KeyConditionExpression="pk = :p",
                ExpressionAttributeValues={":p": {"S": f"SHP#{shipment}"}},
                ConsistentRead=True,
            )
        )
        answers.append(
            ddb.query(
                TableName=table,
                KeyConditionExpression="pk = :p AND begins_with(sk, :e)",
                ExpressionAttributeValues={":p": {"S": f"SHP#{shipment}"}, ":e": {"S": "EVT#"}},
                ScanIndexForward=False,
                Limit=3,
            )
        )
        answers.append(
            ddb.query(
                TableName=table,
                IndexName="ByToken",
                KeyConditionExpression="public_token = :t",
                ExpressionAttributeValues={":t": {"S": f"token{shipment}"}},
            )
        )
    for shard in range(8):
        answers.append(
            ddb.query(
                TableName=table,
                IndexName="ByPollDue",
                KeyConditionExpression="poll_shard = :s AND poll_due_at <= :n",
                ExpressionAttributeValues={":s": {"S": f"POLL#{shard}"}, ":n": {"S": "2026-11-20"}},
                Limit=4,
            )
        )
        start: dict[str, Any] = {}
        while True:  # page by page, each page starting after the key the one before gave
            page = ddb.query(
                TableName=table,
                IndexName="ByPollDue",
                KeyConditionExpression="poll_shard = :s AND poll_due_at > :n",
                ExpressionAttributeValues={":s": {"S": f"POLL#{shard}"}, ":n": {"S": "2026-11-15"}},
                Limit=1,
                **({"ExclusiveStartKey": start} if start else {}),
            )
            answers.append(page)
            if "LastEvaluatedKey" not in page:
                break
            start = page["LastEvaluatedKey"]
        answers.append(
            ddb.query(
                TableName=table,
                IndexName="ByPollDue",
                KeyConditionExpression="poll_shard = :s AND poll_due_at BETWEEN :a AND :b",
                ExpressionAttributeValues={
                    ":s": {"S": f"POLL#{shard}"},
                    ":a": {"S": "2026-11-10"},
                    ":b": {"S": "2026-11-25"},
                },
                ScanIndexForward=False,
            )
        )
    return [{k: v for k, v in a.items() if k != "ResponseMetadata"} for a in answers]


def test_answers_are_identical_with_and_without_the_speedups(table: str) -> None:
    # Given a table of shipments, events and due times, and some writes after the first reads
    ddb = aws_client("dynamodb")
    rng = random.Random(7)
    for shipment in range(40):
        ddb.put_item(
            TableName=table,
            Item={
                "pk": {"S": f"SHP#{shipment}"},
                "sk": {"S": "META"},
                "public_token": {"S": f"token{shipment}"},
                # projected by ByToken (a number, a map, a list) and not projected by any index
                "event_count": {"N": str(shipment * 7)},
                "location": {"M": {"city": {"S": "Reno"}, "postal_code": {"S": f"{89500 + shipment}"}}},
                "tracking_keys": {"L": [{"S": f"ups:1Z{shipment:04d}"}]},
                "notes": {"S": "not in any projection"},
                **(
                    {
                        "poll_shard": {"S": f"POLL#{shipment % 8}"},
                        "poll_due_at": {"S": f"2026-11-{rng.randint(10, 30)}"},
                    }
                    if shipment % 3
                    else {}
                ),
            },
        )
        for event in range(rng.randint(0, 6)):
            ddb.put_item(
                TableName=table,
                Item={
                    "pk": {"S": f"SHP#{shipment}"},
                    "sk": {"S": f"EVT#{event:03d}"},
                    "public_token": {"S": f"token{shipment}"},
                },
            )
    plain = queries(table)
    # When the same Queries are answered with the speed-ups, before and after more writes
    moto_speedups.install()
    assert queries(table) == plain
    ddb.update_item(
        TableName=table,
        Key={"pk": {"S": "SHP#4"}, "sk": {"S": "META"}},
        UpdateExpression="SET poll_due_at = :d",
        ExpressionAttributeValues={":d": {"S": "2026-11-01"}},
    )
    ddb.delete_item(TableName=table, Key={"pk": {"S": "SHP#3"}, "sk": {"S": "EVT#000"}})
    write_across_index_partitions(table)
    patched = queries(table)
    moto_speedups.uninstall()
    # Then every answer is the one moto itself gives
    assert patched == queries(table)
    assert patched != plain  # the writes were seen


def write_across_index_partitions(table: str) -> None:
    """Writes that move items into, between and out of index partitions, directly and in
    transactions (one of them cancelled)."""
    ddb = aws_client("dynamodb")

    def meta(shipment: int) -> dict[str, Any]:
        return {"pk": {"S": f"SHP#{shipment}"}, "sk": {"S": "META"}}

    ddb.update_item(  # to another shard
        TableName=table,
        Key=meta(5),
        UpdateExpression="SET poll_shard = :s",
        ExpressionAttributeValues={":s": {"S": "POLL#0"}},
    )
    ddb.update_item(TableName=table, Key=meta(7), UpdateExpression="REMOVE poll_shard, poll_due_at")  # out
    ddb.put_item(  # a new item, straight into a shard and a token's partition
        TableName=table,
        Item={
            **meta(99),
            "public_token": {"S": "token3"},
            "poll_shard": {"S": "POLL#1"},
            "poll_due_at": {"S": "2026-11-12"},
        },
    )
    ddb.transact_write_items(
        TransactItems=[
            {"Put": {"TableName": table, "Item": {**meta(100), "public_token": {"S": "token6"}}}},
            {
                "Update": {
                    "TableName": table,
                    "Key": meta(8),
                    "UpdateExpression": "SET poll_shard = :s, poll_due_at = :d",
                    "ExpressionAttributeValues": {":s": {"S": "POLL#2"}, ":d": {"S": "2026-11-11"}},
                }
            },
        ]
    )
    with pytest.raises(ddb.exceptions.TransactionCanceledException):
        ddb.transact_write_items(
            TransactItems=[
                {
                    "Update": {
                        "TableName": table,
                        "Key": meta(10),
                        "UpdateExpression": "SET poll_shard = :s",
                        "ExpressionAttributeValues": {":s": {"S": "POLL#3"}},
                    }
                },
                {
                    "ConditionCheck": {
                        "TableName": table,
                        "Key": meta(11),
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
            ]
        )


def _everything(table: str) -> list[dict[str, Any]]:
    items = aws_client("dynamodb").scan(TableName=table, ConsistentRead=True)["Items"]
    return sorted(items, key=lambda item: (item["pk"]["S"], item["sk"]["S"]))


def _transactions(table: str) -> list[str]:
    """Three transactions: one that commits, one cancelled by a condition after an earlier Put
    and Update in it went through, one refused for naming an item twice. Returns each outcome."""
    ddb = aws_client("dynamodb")
    outcomes = []
    put = {"Put": {"TableName": table, "Item": {"pk": {"S": "SHP#1"}, "sk": {"S": "EVT#new"}}}}
    update = {
        "Update": {
            "TableName": table,
            "Key": {"pk": {"S": "SHP#1"}, "sk": {"S": "META"}},
            "UpdateExpression": "SET version = version + :one",
            "ExpressionAttributeValues": {":one": {"N": "1"}},
        }
    }
    delete = {"Delete": {"TableName": table, "Key": {"pk": {"S": "SHP#1"}, "sk": {"S": "EVT#old"}}}}
    refused = {
        "ConditionCheck": {
            "TableName": table,
            "Key": {"pk": {"S": "SHP#2"}, "sk": {"S": "META"}},
            "ConditionExpression": "attribute_not_exists(pk)",
        }
    }
    for items in (
        [put, update, delete],
        [update, {**put, "Put": {**put["Put"], "Item": {"pk": {"S": "SHP#1"}, "sk": {"S": "EVT#newer"}}}}, refused],
        [update, update],
    ):
        try:
            ddb.transact_write_items(TransactItems=items)
            outcomes.append("committed")
        except ddb.exceptions.ClientError as error:
            outcomes.append(error.response["Error"]["Code"])
    return outcomes


@pytest.mark.parametrize("patched", [False, True], ids=["moto", "speedups"])
def test_a_cancelled_transaction_leaves_the_table_as_moto_leaves_it(table: str, patched: bool) -> None:
    # Given a shipment with a record and an event, and another shipment
    ddb = aws_client("dynamodb")
    for pk, sk in (("SHP#1", "META"), ("SHP#1", "EVT#old"), ("SHP#2", "META")):
        ddb.put_item(TableName=table, Item={"pk": {"S": pk}, "sk": {"S": sk}, "version": {"N": "1"}})
    if patched:
        moto_speedups.install()
    # When a transaction commits, then one is cancelled half-way and one is refused outright
    outcomes = _transactions(table)
    # Then only the first one's writes are in the table, exactly as moto itself leaves it
    assert outcomes == ["committed", "TransactionCanceledException", "ValidationException"]
    assert _everything(table) == [
        {"pk": {"S": "SHP#1"}, "sk": {"S": "EVT#new"}},
        {"pk": {"S": "SHP#1"}, "sk": {"S": "META"}, "version": {"N": "2"}},
        {"pk": {"S": "SHP#2"}, "sk": {"S": "META"}, "version": {"N": "1"}},
    ]


def _data_plane(table: str, shipment: str) -> list[Any]:
    """One answer of each DynamoDB data-plane operation the stack uses, as the client parses it
    (keys named after ``shipment``, so two runs on one table do not meet)."""
    ddb = aws_client("dynamodb")
    key = {"pk": {"S": f"SHP#{shipment}"}, "sk": {"S": "META"}}
    other = {"pk": {"S": f"SHP#{shipment}x"}, "sk": {"S": "META"}}
    item = key | {
        "n": {"N": "1.50"},
        "b": {"B": b"\x00\x01"},
        "l": {"L": [{"S": "a"}, {"N": "2"}, {"NULL": True}, {"BOOL": False}]},
        "m": {"M": {"x": {"SS": ["p", "q"]}, "y": {"NS": ["1", "2"]}}},
    }
    ddb.put_item(TableName=table, Item=other)
    answers: list[Any] = [
        ddb.put_item(TableName=table, Item=item, ReturnValues="ALL_OLD"),
        ddb.put_item(TableName=table, Item=item, ReturnValues="ALL_OLD"),
        ddb.get_item(TableName=table, Key=key, ConsistentRead=True),
        ddb.get_item(TableName=table, Key={"pk": {"S": "SHP#none"}, "sk": {"S": "META"}}),
        ddb.update_item(
            TableName=table,
            Key=key,
            UpdateExpression="SET n = n + :one",
            ExpressionAttributeValues={":one": {"N": "1"}},
            ReturnValues="ALL_NEW",
        ),
        ddb.batch_get_item(RequestItems={table: {"Keys": [key, other]}}),
        ddb.batch_write_item(
            RequestItems={table: [{"PutRequest": {"Item": {"pk": {"S": f"SHP#{shipment}"}, "sk": {"S": "A"}}}}]}
        ),
        ddb.query(
            TableName=table,
            KeyConditionExpression="pk = :p",
            ExpressionAttributeValues={":p": {"S": f"SHP#{shipment}"}},
            ReturnConsumedCapacity="TOTAL",
        ),
        ddb.transact_write_items(TransactItems=[{"Put": {"TableName": table, "Item": other}}]),
        ddb.delete_item(TableName=table, Key=key, ReturnValues="ALL_OLD"),
    ]
    try:
        ddb.delete_item(TableName=table, Key=key, ConditionExpression="attribute_exists(pk)")
    except ddb.exceptions.ConditionalCheckFailedException as error:
        answers.append(error.response["Error"])
    text = repr([{k: v for k, v in a.items() if k != "ResponseMetadata"} for a in answers])
    return [text.replace(f"SHP#{shipment}", "SHP#?")]


def test_data_plane_answers_are_the_ones_moto_serializes(table: str) -> None:
    # Given every data-plane operation the stack uses, answered by moto as it is
    plain = _data_plane(table, "1")
    # When the same operations are answered with the speed-ups
    moto_speedups.install()
    patched = _data_plane(table, "2")
    # Then the client reads exactly the same answers (binary, numbers, sets, nulls, errors included)
    assert patched == plain
    assert "b'\\x00\\x01'" in plain[0] and "ConditionalCheckFailed" in plain[0]


def _delivered(name: str, detail: dict[str, Any]) -> list[dict[str, Any]]:
    events, sqs = aws_client("events"), aws_client("sqs")
    queue = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.create_event_bus(Name=name)
    events.put_rule(Name="all", EventBusName=name, EventPattern=json.dumps({"source": ["shiplight"]}))
    events.put_targets(Rule="all", EventBusName=name, Targets=[{"Id": "q", "Arn": arn}])
    for n in range(3):
        events.put_events(
            Entries=[
                {
                    "Source": "shiplight",
                    "DetailType": "Shipment Milestone Changed",
                    "Detail": json.dumps({**detail, "n": n}),
                    "EventBusName": name,
                }
            ]
        )
    bodies = [json.loads(m["Body"]) for m in sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]]
    return [{k: v for k, v in body.items() if k not in ("id", "time")} for body in bodies]


def test_events_a_rule_delivers_are_the_ones_moto_builds() -> None:
    # Given events put on a bus whose rule targets a queue, delivered by moto as it is
    moto_speedups.uninstall()
    with mock_aws():
        plain = _delivered("plain", {"shipment_id": "shp_1"})
        # When the same events are delivered with the speed-ups
        moto_speedups.install()
        try:
            patched = _delivered("patched", {"shipment_id": "shp_1", "x": 1})
        finally:
            moto_speedups.uninstall()
    # Then the queue receives the same envelopes, detail included
    assert len(plain) == len(patched) == 3
    assert [{**p, "detail": {**p["detail"], "x": 1}} for p in plain] == patched


def _moto_as_it_is() -> dict[str, Any]:
    """What the speed-ups would replace, as moto has it now (``None``: not there)."""
    return {name: getattr(owner, attribute, None) for name, (owner, attribute) in moto_speedups._targets().items()}


def _shipment_answers(table: str) -> tuple[list[str], list[str]]:
    """A partition Query and an index Query over two shipments written just before."""
    ddb = aws_client("dynamodb")
    for shipment in ("1", "2"):
        ddb.put_item(
            TableName=table,
            Item={"pk": {"S": f"SHP#{shipment}"}, "sk": {"S": "META"}, "public_token": {"S": f"token{shipment}"}},
        )
        ddb.put_item(TableName=table, Item={"pk": {"S": f"SHP#{shipment}"}, "sk": {"S": "EVT#001"}})
    partition = ddb.query(
        TableName=table, KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": {"S": "SHP#2"}}
    )
    index = ddb.query(
        TableName=table,
        IndexName="ByToken",
        KeyConditionExpression="public_token = :t",
        ExpressionAttributeValues={":t": {"S": "token1"}},
    )
    return (
        [f"{item['pk']['S']} {item['sk']['S']}" for item in partition["Items"]],
        [f"{item['pk']['S']} {item['sk']['S']}" for item in index["Items"]],
    )


def test_an_untested_moto_version_runs_on_plain_moto_with_one_warning(
    table: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given moto reporting a version the speed-ups were not tested with
    monkeypatch.setattr(moto, "__version__", "5.9.0")
    before = _moto_as_it_is()
    # When the local stack asks for the speed-ups, twice (as a second runtime in the process would)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        applied = [moto_speedups.install(), moto_speedups.install()]
    # Then nothing is patched, one warning says which version and that plain moto is used
    assert applied == [False, False]
    assert _moto_as_it_is() == before
    assert not hasattr(Table, "__deepcopy__")
    skipped = [str(w.message) for w in caught if issubclass(w.category, moto_speedups.MotoSpeedupsSkipped)]
    assert len(skipped) == 1
    assert "moto 5.9.0" in skipped[0] and "plain moto" in skipped[0]
    # And Queries still answer, and the pollers are told to ask SQS itself
    assert _shipment_answers(table) == (["SHP#2 EVT#001", "SHP#2 META"], ["SHP#1 META"])
    queue = aws_client("sqs").create_queue(QueueName="guarded")["QueueUrl"]
    assert moto_speedups.queue_has_visible_messages(queue) is None


def test_a_missing_moto_internal_runs_on_plain_moto_with_one_warning(
    table: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the tested moto version, but one of the internals the patches replace is gone
    monkeypatch.delattr(SecondaryIndex, "project")
    before = _moto_as_it_is()
    # When the local stack asks for the speed-ups
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        applied = moto_speedups.install()
    # Then nothing is patched and one warning names what is missing
    assert applied is False
    assert _moto_as_it_is() == before
    assert not hasattr(Table, "__deepcopy__")
    skipped = [str(w.message) for w in caught if issubclass(w.category, moto_speedups.MotoSpeedupsSkipped)]
    assert len(skipped) == 1
    assert "SecondaryIndex.project" in skipped[0] and "plain moto" in skipped[0]
    # And a Query on the table's key still answers
    ddb = aws_client("dynamodb")
    ddb.put_item(TableName=table, Item={"pk": {"S": "SHP#1"}, "sk": {"S": "META"}})
    answer = ddb.query(
        TableName=table, KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": {"S": "SHP#1"}}
    )
    assert answer["Items"] == [{"pk": {"S": "SHP#1"}, "sk": {"S": "META"}}]


def test_the_switch_turns_the_speedups_off_without_a_warning(table: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given SHIPLIGHT_MOTO_SPEEDUPS=0
    monkeypatch.setenv("SHIPLIGHT_MOTO_SPEEDUPS", "0")
    before = _moto_as_it_is()
    # When the local stack asks for the speed-ups
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        applied = moto_speedups.install()
    # Then moto is left as it is, quietly, and answers as usual
    assert applied is False
    assert _moto_as_it_is() == before
    assert not [w for w in caught if issubclass(w.category, moto_speedups.MotoSpeedupsSkipped)]
    assert _shipment_answers(table) == (["SHP#2 EVT#001", "SHP#2 META"], ["SHP#1 META"])


def test_the_tested_version_is_patched(table: str) -> None:
    # Given the moto version installed here (one the speed-ups were tested with)
    before = _moto_as_it_is()
    # When the local stack asks for the speed-ups
    applied = moto_speedups.install()
    # Then every internal is replaced, the answers are moto's, and uninstalling restores moto
    assert applied is True
    assert moto.__version__ in moto_speedups.TESTED_MOTO_VERSIONS
    assert all(_moto_as_it_is()[name] is not original for name, original in before.items())
    assert _shipment_answers(table) == (["SHP#2 EVT#001", "SHP#2 META"], ["SHP#1 META"])
    moto_speedups.uninstall()
    assert _moto_as_it_is() == before
