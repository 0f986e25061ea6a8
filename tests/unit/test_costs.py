"""The AWS cost model of ``make bench``: the price table, the pricing arithmetic, DynamoDB's units."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from infra.costs import (
    IndexShape,
    Model,
    Price,
    PriceTable,
    PriceTableError,
    StackFacts,
    Usage,
    cost_report,
    load_price_table,
    read_units,
    write_units,
)
from infra.local.template import Template

TAKEN = date(2026, 12, 7)


def price(id_: str, usd: float, per: float) -> Price:
    return Price(id=id_, service="test", unit="unit", usd=usd, per=per, taken=TAKEN, source="https://example.com/")


def test_every_price_in_the_table_can_be_traced_to_a_dated_public_source() -> None:
    # Given the repository's price table
    table = load_price_table()

    # Then every row names its unit, has a positive price, the day it was taken and an https source
    assert table.prices
    for row in table.prices.values():
        assert row.service and row.unit
        assert row.usd > 0 and row.per > 0
        assert isinstance(row.taken, date)
        assert row.source.startswith("https://")
        assert row.also is None or row.also.startswith("https://")
    # and it prices every unit the meter counts
    counted = {
        "lambda.request",
        "lambda.gb_second.arm64",
        "apigateway.http_request",
        "sqs.request",
        "dynamodb.write_request_unit",
        "dynamodb.read_request_unit",
        "s3.put_request",
        "s3.get_request",
        "s3.transition_standard_ia",
        "s3.transition_glacier_ir",
        "events.custom_event",
        "events.archive_gb",
        "secretsmanager.api_call",
        "logs.ingested_gb",
        "xray.trace_recorded",
    }
    assert counted <= set(table.prices)
    # and the DynamoDB prices are the ones after the November 2024 on-demand cut
    assert table.usd({"dynamodb.write_request_unit": 1_000_000}) == pytest.approx(0.625)
    assert table.prices["dynamodb.write_request_unit"].effective == date(2024, 11, 1)


def test_a_price_without_a_source_is_refused(tmp_path: Path) -> None:
    # Given a table whose only price has no source
    path = tmp_path / "pricing.toml"
    path.write_text(
        '[model]\nshipments_per_month = 1\n[[price]]\nid = "x"\nservice = "X"\nunit = "u"\nusd = 1.0\nper = 1\n'
        "taken = 2026-12-07\n"
    )

    # When it is loaded, Then it is refused, naming the row
    with pytest.raises(PriceTableError, match="x"):
        load_price_table(path)


def test_a_small_run_is_priced_per_shipment_plus_the_standing_month_amortized() -> None:
    # Given round prices and a model of 10,000 shipments a month, 15 idle queue polls a minute and
    # 8,640 secret reads a month
    table = PriceTable(
        prices={
            p.id: p
            for p in (
                price("lambda.request", 0.20, 1_000_000),
                price("lambda.gb_second.arm64", 0.00001, 1),
                price("dynamodb.write_request_unit", 1.00, 1_000_000),
                price("dynamodb.read_request_unit", 0.25, 1_000_000),
                price("sqs.request", 0.40, 1_000_000),
                price("secretsmanager.api_call", 0.05, 10_000),
                price("xray.trace_recorded", 5.00, 1_000_000),
            )
        },
        model=Model(
            shipments_per_month=10_000,
            days_per_month=30,
            esm_idle_receives_per_minute=15,
            receiver_secret_reads_per_month=8640,
            xray_traces_per_invocation=1.0,
            assumed_aws_call_ms=10,
            full_vcpu_mb=1769,
        ),
    )
    # and a stack with a traced function F and a 5-minute schedule P
    facts = StackFacts(
        memory_mb={"F": 1024, "P": 512},
        architecture={"F": "arm64", "P": "arm64"},
        traced={"F": True, "P": False},
        schedule_minutes={"P": 5.0},
        queue_event_sources=1,
        archived_sources=frozenset(),
        access_log_format="",
        secrets=0,
        alarms=0,
    )
    # and a run of 2 shipments in which P fired 10 times
    run = Usage()
    run.add(("lambda", "Invoke", "F"), {"calls": 4, "lambda.request": 4, "lambda.gb_second.arm64": 0.4})
    run.add(("dynamodb", "TransactWriteItems", "F"), {"calls": 4, "dynamodb.write_request_unit": 40})
    run.add(("lambda", "Invoke", "P"), {"calls": 10, "lambda.request": 10, "lambda.gb_second.arm64": 0.5})
    run.add(("dynamodb", "Query", "P"), {"calls": 20, "dynamodb.read_request_unit": 10})
    run.add(("dynamodb", "UpdateItem", "P"), {"calls": 2, "dynamodb.write_request_unit": 4})
    run.add(("dynamodb", "PutItem", "outside"), {"calls": 1, "dynamodb.write_request_unit": 1})  # set-up: not billed
    # and 4 empty firings of P
    empty = Usage()
    empty.add(("lambda", "Invoke", "P"), {"calls": 4, "lambda.request": 4, "lambda.gb_second.arm64": 0.16})
    empty.add(("dynamodb", "Query", "P"), {"calls": 8, "dynamodb.read_request_unit": 4})

    # When it is priced
    report = cost_report(run, shipments=2, empty_ticks=empty, table=table, facts=facts)

    # Then per shipment, by hand: the run minus its 10 ticks at the empty cost, halved:
    #   F: 2 invocations ($0.40e-6), 0.2 GB-s; P beyond its empty ticks: 0.05 GB-s, 1 UpdateItem;
    #   GB-s 0.25 x $1e-5 = $2.5e-6; WRU 20 + 2 = 22 x $1e-6 = $22e-6; 2 traces of F x $5e-6 = $10e-6
    variable = 0.40e-6 + 2.5e-6 + 22e-6 + 10e-6
    # and the standing month: 8,640 empty ticks (0.04 GB-s and 2 Queries of 0.5 RRU each), 648,000
    # idle polls, 8,640 secret reads
    standing = 8640 * 0.2e-6 + 8640 * 0.04 * 1e-5 + 8640 * 1 * 0.25e-6 + 648_000 * 0.4e-6 + 8640 * 5e-6
    assert report.usd_per_1000() == pytest.approx(1000 * variable + 1000 * standing / 10_000)
    assert report.usd_per_1000() == pytest.approx(0.0658744)
    # and the requests: 2 + 2 + 1 per shipment, and (8,640 + 17,280 + 648,000 + 8,640) / 10,000 of the month
    assert report.requests_per_shipment() == pytest.approx(5 + 682_560 / 10_000)
    assert report.run_ticks == {"P": 10}


def test_dynamodb_units_follow_item_sizes_transactions_and_index_entries() -> None:
    # Given an index on "due" that keeps only keys, and one that includes "status"
    by_due = IndexShape("ByDue", keys=("shard", "due"), table_keys=("pk", "sk"), projection="KEYS_ONLY")
    by_status = IndexShape(
        "ByToken", keys=("token",), table_keys=("pk", "sk"), projection="INCLUDE", included=("status",)
    )
    indexes = (by_due, by_status)
    record = {"pk": {"S": "SHP#1"}, "sk": {"S": "#"}, "token": {"S": "t"}, "status": {"S": "in_transit"}}
    padded = record | {"blob": {"S": "x" * 1500}}  # 1.5 KB: two write units

    # When a new item enters the token index only, Then 1 table unit and 1 index unit
    assert write_units(None, record, indexes) == (1.0, 1.0)
    # When the same write is part of a transaction, Then the table write counts twice, the index once
    assert write_units(None, record, indexes, transactional=True) == (2.0, 1.0)
    # When a 1.5 KB item changes an attribute no index holds, Then 2 table units and no index write
    assert write_units(padded, padded | {"note": {"S": "n"}}, indexes) == (2.0, 0.0)
    # When the due index's key moves, Then its old entry is deleted and the new one put (2 units)
    armed = record | {"shard": {"S": "0"}, "due": {"S": "2026-11-16T10:00"}}
    assert write_units(armed, armed | {"due": {"S": "2026-11-16T11:00"}}, (by_due,)) == (1.0, 2.0)
    # When a projected attribute changes under the same key, Then one index write
    assert write_units(record, record | {"status": {"S": "delivered"}}, (by_status,)) == (1.0, 1.0)
    # When the item leaves the due index, Then one index write (the delete)
    assert write_units(armed, record, (by_due,)) == (1.0, 1.0)
    # And reads: 5 KB strongly consistent is 2 units, eventually consistent 1, in a transaction 4;
    # reading nothing still costs the minimum
    assert read_units(5 * 1024, consistent=True) == 2.0
    assert read_units(5 * 1024, consistent=False) == 1.0
    assert read_units(5 * 1024, consistent=True, transactional=True) == 4.0
    assert read_units(0, consistent=False) == 0.5


def test_x_ray_traces_are_priced_only_when_the_template_turns_tracing_on() -> None:
    # Given the template as deployed by default, and as on-call deploys it while investigating
    default = Template.load()
    investigating = Template.load(parameters={"Tracing": "Active"})

    # When the cost model reads which functions record X-Ray traces
    quiet, traced = StackFacts.of(default).traced, StackFacts.of(investigating).traced

    # Then none does by default (PassThrough), and every function does with Tracing=Active
    assert quiet and not any(quiet.values())
    assert traced.keys() == quiet.keys() and all(traced.values())
