"""What a shipment costs on AWS: the simulated run's requests, counted and priced.

``make bench`` runs the simulated demo under a :class:`Meter` (``python -m infra.costs
--usage-json FILE <shiplight args>``), which counts, without changing anything the stack does:

- every AWS call of every botocore client the process creates (the handlers', and the local
  SQS event source's), by service, operation and the function that made it, with the units
  AWS bills: DynamoDB read/write request units from the items' sizes before and after each
  write (moto's ``ConsumedCapacity`` is a constant, so the items are measured in its backend),
  index writes included; SQS requests per 64 KB chunk; EventBridge events per 64 KB entry
  chunk and the bytes the bus archive keeps; S3 PUT/GET; Secrets Manager calls;
- every Lambda invocation on the local function host, with its handler wall time (billed per
  1 ms at the template's memory size), its CPU time and its time inside AWS calls, and the
  bytes it logged (plus the START/END/REPORT/XRAY lines Lambda itself writes);
- every HTTP API request the local gateway served, and its access-log line.

:func:`cost_report` then prices the counts with ``infra/pricing.toml`` and splits the bill into a
cost per shipment and a standing cost per month (the schedules' empty ticks and other idle
polling), amortized over the table's shipments per month.
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
import threading
import time
import tomllib
from collections.abc import Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

from infra.local.template import ACCOUNT_ID, REGION, Template

PRICING_PATH = Path(__file__).with_name("pricing.toml")
GB = 1024**3  # AWS bills "GB" of logs and archives as GiB
KB = 1024
SQS_CHUNK = 64 * KB
EVENTS_CHUNK = 64 * KB
HTTP_API_CHUNK = 512 * KB
S3_TRANSITION_MIN = 128 * KB  # S3 Lifecycle does not transition smaller objects (default since 2024-09)

OUTSIDE = "outside"  # calls no function made (the runtime's own set-up and read-outs): not billed
EVENT_SOURCE = "SqsEventSource"  # Lambda's SQS poller, emulated by infra/local/pollers.py
HTTP_API = "HttpApi"
_EVENT_SOURCE_CALLS = {"ReceiveMessage", "DeleteMessage", "DeleteMessageBatch"}


# ------------------------------------------------------------------------------ price table


class PriceTableError(ValueError):
    """``infra/pricing.toml`` is not a table every price of which can be traced."""


@dataclass(frozen=True)
class Price:
    id: str
    service: str
    unit: str
    usd: float  # for ``per`` units
    per: float
    taken: date
    source: str
    also: str | None = None
    effective: date | None = None
    note: str | None = None

    @property
    def usd_per_unit(self) -> float:
        return self.usd / self.per


@dataclass(frozen=True)
class Model:
    """The assumptions of the cost model (``[model]`` in the price table, commented there)."""

    shipments_per_month: int
    days_per_month: int
    esm_idle_receives_per_minute: float
    receiver_secret_reads_per_month: float
    xray_traces_per_invocation: float
    assumed_aws_call_ms: float
    full_vcpu_mb: int

    @property
    def minutes_per_month(self) -> float:
        return self.days_per_month * 24 * 60.0


@dataclass(frozen=True)
class PriceTable:
    prices: dict[str, Price]
    model: Model

    def usd(self, quantities: Mapping[str, float]) -> float:
        """The price of ``quantities`` (price id → how many units); ``calls`` and ``stat.*``
        entries are counts, not priced units."""
        total = 0.0
        for key, amount in quantities.items():
            if key == "calls" or key.startswith("stat."):
                continue
            if key not in self.prices:
                raise KeyError(f"no price for {key!r} in {PRICING_PATH.name}")
            total += amount * self.prices[key].usd_per_unit
        return total


def load_price_table(path: Path = PRICING_PATH) -> PriceTable:
    """The price table, checked: every price is positive and carries the date it was taken and
    an https source."""
    document = tomllib.loads(path.read_text(encoding="utf-8"))
    prices: dict[str, Price] = {}
    for row in document.get("price", []):
        try:
            price = Price(**row)
        except TypeError as error:
            raise PriceTableError(f"{path.name}: row {row.get('id', row)!r}: {error}") from None
        problems = [
            "usd must be a positive number" if not (isinstance(price.usd, int | float) and price.usd > 0) else "",
            "per must be a positive number" if not (isinstance(price.per, int | float) and price.per > 0) else "",
            "taken must be a date" if not isinstance(price.taken, date) else "",
            "source must be an https URL" if not str(price.source).startswith("https://") else "",
            "also must be an https URL" if price.also is not None and not price.also.startswith("https://") else "",
            "duplicate id" if price.id in prices else "",
        ]
        if any(problems):
            raise PriceTableError(f"{path.name}: {price.id}: {'; '.join(p for p in problems if p)}")
        prices[price.id] = price
    try:
        model = Model(**document["model"])
    except (KeyError, TypeError) as error:
        raise PriceTableError(f"{path.name}: [model]: {error}") from None
    return PriceTable(prices, model)


# ------------------------------------------------------------------------------ usage

Line = tuple[str, str, str]  # (service, call, origin: the function that made it, or the event source…)


@dataclass
class Usage:
    """Counted AWS usage: per line, quantities by price id (plus ``calls``, the API requests made,
    and ``stat.*`` figures that are not priced)."""

    lines: dict[Line, dict[str, float]] = field(default_factory=dict)

    def add(self, line: Line, quantities: Mapping[str, float]) -> None:
        found = self.lines.setdefault(line, {})
        for key, amount in quantities.items():
            found[key] = found.get(key, 0.0) + amount

    def copy(self) -> Usage:
        return Usage({line: dict(q) for line, q in self.lines.items()})

    def scaled(self, factor: float) -> Usage:
        return Usage({line: {k: v * factor for k, v in q.items()} for line, q in self.lines.items()})

    def __add__(self, other: Usage) -> Usage:
        total = self.copy()
        for line, quantities in other.lines.items():
            total.add(line, quantities)
        return total

    def __sub__(self, other: Usage) -> Usage:
        return self + other.scaled(-1.0)

    def only(self, keep: Callable[[Line], bool]) -> Usage:
        return Usage({line: dict(q) for line, q in self.lines.items() if keep(line)})

    def to_json(self) -> list[dict[str, Any]]:
        return [{"service": s, "call": c, "origin": o, "quantities": q} for (s, c, o), q in sorted(self.lines.items())]

    @classmethod
    def from_json(cls, rows: list[dict[str, Any]]) -> Usage:
        usage = cls()
        for row in rows:
            usage.add((row["service"], row["call"], row["origin"]), row["quantities"])
        return usage


# ------------------------------------------------------------------------------ DynamoDB units


def item_bytes(item: Mapping[str, Any]) -> int:
    """An item's size by DynamoDB's rules (attribute names + values), from its wire JSON."""

    def value_bytes(value: Mapping[str, Any]) -> int:
        ((kind, raw),) = value.items()
        if kind in ("S", "B"):
            return len(str(raw).encode())
        if kind == "N":
            return len(str(raw).lstrip("-").replace(".", "")) // 2 + 2
        if kind in ("BOOL", "NULL"):
            return 1
        if kind == "M":
            return 3 + sum(len(k.encode()) + value_bytes(v) + 1 for k, v in raw.items())
        if kind == "L":
            return 3 + sum(value_bytes(v) + 1 for v in raw)
        return sum(len(str(v).encode()) for v in raw)

    return sum(len(name.encode()) + value_bytes(value) for name, value in item.items())


@dataclass(frozen=True)
class IndexShape:
    """What a global secondary index holds of an item."""

    name: str
    keys: tuple[str, ...]  # the index's own key attributes (an item without them is not indexed)
    table_keys: tuple[str, ...]
    projection: str  # KEYS_ONLY | INCLUDE | ALL
    included: tuple[str, ...] = ()

    def entry(self, item: Mapping[str, Any] | None) -> dict[str, Any] | None:
        if item is None or any(key not in item for key in self.keys):
            return None
        if self.projection == "ALL":
            return dict(item)
        names = [*self.table_keys, *self.keys, *(self.included if self.projection == "INCLUDE" else ())]
        return {name: item[name] for name in dict.fromkeys(names) if name in item}


def _write_units(size: int) -> int:
    return max(1, math.ceil(size / KB))


def read_units(size: int, *, consistent: bool, transactional: bool = False) -> float:
    """Read request units of reading ``size`` bytes (one item, or one Query page's total)."""
    units = max(1, math.ceil(size / (4 * KB)))
    return units * (2.0 if transactional else 1.0 if consistent else 0.5)


def write_units(
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any] | None,
    indexes: tuple[IndexShape, ...],
    *,
    transactional: bool = False,
) -> tuple[float, float]:
    """(table, index) write request units of one item write that turned ``before`` into ``after``
    (``None``: no item). The table write is sized by the larger image and doubled in a
    transaction; each index whose entry appears, disappears or changes is written once per
    entry image (a moved index key is a delete and a put), not doubled (DynamoDB updates
    indexes after the transaction commits)."""
    table = _write_units(max(item_bytes(before or {}), item_bytes(after or {})))
    index = 0
    for shape in indexes:
        old, new = shape.entry(before), shape.entry(after)
        if old == new:
            continue
        if old is None or new is None:
            index += _write_units(item_bytes(old or new or {}))
        elif any(old.get(key) != new.get(key) for key in shape.keys):
            index += _write_units(item_bytes(old)) + _write_units(item_bytes(new))
        else:
            index += _write_units(max(item_bytes(old), item_bytes(new)))
    return table * (2.0 if transactional else 1.0), float(index)


class _DynamoBackend:
    """Items as moto holds them, read without an API call (so the meter adds no requests)."""

    def __init__(self) -> None:
        from moto.dynamodb.models import dynamodb_backends

        self._backends = dynamodb_backends

    def _table(self, name: str) -> Any:
        try:
            return self._backends[ACCOUNT_ID][REGION].tables.get(name)
        except KeyError:
            return None

    def item(self, table_name: str, key: Mapping[str, Any]) -> dict[str, Any] | None:
        from moto.dynamodb.models.dynamo_type import DynamoType

        table = self._table(table_name)
        if table is None:
            return None
        try:
            hash_key = DynamoType(key[table.hash_key_attr])
            found: Any = table.items.get(hash_key)
            if table.range_key_attr:
                found = (found or {}).get(DynamoType(key[table.range_key_attr]))
        except (KeyError, TypeError):
            return None
        if found is None:
            return None
        snapshot: dict[str, Any] = json.loads(json.dumps(found.to_json()["Attributes"]))
        return snapshot  # a copy: moto updates items in place

    def key_names(self, table_name: str) -> tuple[str, ...]:
        table = self._table(table_name)
        if table is None:
            return ()
        return tuple(name for name in (table.hash_key_attr, table.range_key_attr) if name)

    def indexes(self, table_name: str) -> tuple[IndexShape, ...]:
        table = self._table(table_name)
        if table is None:
            return ()
        keys = self.key_names(table_name)
        shapes = []
        for index in table.global_indexes:
            projection = index.projection or {}
            shapes.append(
                IndexShape(
                    name=index.name,
                    keys=tuple(key["AttributeName"] for key in index.schema),
                    table_keys=keys,
                    projection=projection.get("ProjectionType", "ALL"),
                    included=tuple(projection.get("NonKeyAttributes", [])),
                )
            )
        return tuple(shapes)


def _writes_named(params: Mapping[str, Any], operation: str) -> list[tuple[str, str, dict[str, Any]]]:
    """(kind, table, request) of each item a write operation names."""
    if operation in ("PutItem", "UpdateItem", "DeleteItem"):
        return [(operation.removesuffix("Item"), params["TableName"], dict(params))]
    if operation == "BatchWriteItem":
        found = []
        for table, requests in params.get("RequestItems", {}).items():
            for request in requests:
                if "PutRequest" in request:
                    found.append(("Put", table, {"Item": request["PutRequest"]["Item"]}))
                elif "DeleteRequest" in request:
                    found.append(("Delete", table, {"Key": request["DeleteRequest"]["Key"]}))
        return found
    if operation == "TransactWriteItems":
        return [
            (kind, action["TableName"], action)
            for entry in params.get("TransactItems", [])
            for kind, action in entry.items()
        ]
    return []


class _DynamoMeter:
    """DynamoDB request units of each call, from the items moto holds before and after it."""

    def __init__(self) -> None:
        self.backend = _DynamoBackend()

    def _key(self, table: str, request: Mapping[str, Any]) -> dict[str, Any]:
        source = request.get("Key") or request.get("Item") or {}
        return {name: source[name] for name in self.backend.key_names(table) if name in source}

    def before(self, operation: str, params: Mapping[str, Any]) -> list[Any]:
        """The images of the items a write names, before it runs."""
        return [
            (kind, table, self._key(table, request), request, self.backend.item(table, self._key(table, request)))
            for kind, table, request in _writes_named(params, operation)
        ]

    def units(
        self, operation: str, params: Mapping[str, Any], parsed: Mapping[str, Any], saved: list[Any]
    ) -> dict[str, float]:
        failed = "Error" in parsed
        if operation in ("PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"):
            return self._write(operation, saved, failed)
        if failed:
            return {}
        if operation == "GetItem":
            item = parsed.get("Item")
            if "ProjectionExpression" in params:
                item = self.backend.item(params["TableName"], params["Key"])
            size = item_bytes(item or {})
            return {"dynamodb.read_request_unit": read_units(size, consistent=bool(params.get("ConsistentRead")))}
        if operation == "BatchGetItem":
            unprocessed = parsed.get("UnprocessedKeys", {})
            total = 0.0
            for table, request in params.get("RequestItems", {}).items():
                skipped = unprocessed.get(table, {}).get("Keys", [])
                for key in request.get("Keys", []):
                    if key in skipped:
                        continue
                    size = item_bytes(self.backend.item(table, key) or {})
                    total += read_units(size, consistent=bool(request.get("ConsistentRead")))
            return {"dynamodb.read_request_unit": total}
        if operation in ("Query", "Scan"):
            items = parsed.get("Items", [])
            if "ProjectionExpression" in params and "IndexName" not in params:
                items = [self.backend.item(params["TableName"], item) or item for item in items]
            size = sum(item_bytes(item) for item in items)
            filtered_out = int(parsed.get("ScannedCount", len(items))) - len(items)
            if filtered_out > 0:  # a FilterExpression reads what it drops: sized like what it kept
                size += filtered_out * (size // len(items) if items else KB)
            consistent = bool(params.get("ConsistentRead")) and "IndexName" not in params
            return {"dynamodb.read_request_unit": read_units(size, consistent=consistent)}
        if operation == "TransactGetItems":
            total = 0.0
            for entry in params.get("TransactItems", []):
                get = entry["Get"]
                size = item_bytes(self.backend.item(get["TableName"], get["Key"]) or {})
                total += read_units(size, consistent=True, transactional=True)
            return {"dynamodb.read_request_unit": total}
        return {}  # the control plane (CreateTable, DescribeTable…) is not billed per request

    def _write(self, operation: str, saved: list[Any], failed: bool) -> dict[str, float]:
        transactional = operation == "TransactWriteItems"
        table_units = index_units = 0.0
        for kind, table, key, request, before in saved:
            if kind == "ConditionCheck":
                # Assumption: a condition check is a transactional write of the item it reads.
                table_units += _write_units(item_bytes(before or {})) * 2.0
                continue
            if failed:  # a refused conditional write still consumes the larger image's units
                attempted = request.get("Item") if kind == "Put" else before
                size = max(item_bytes(before or {}), item_bytes(attempted or {}))
                table_units += _write_units(size) * (2.0 if transactional else 1.0)
                continue
            after = self.backend.item(table, key)
            table, index = write_units(before, after, self.backend.indexes(table), transactional=transactional)
            table_units += table
            index_units += index
        return {
            "dynamodb.write_request_unit": table_units + index_units,
            "stat.index_write_units": index_units,
        }


# ------------------------------------------------------------------------------ other services


def _sqs_attributes_bytes(attributes: Mapping[str, Any]) -> int:
    size = 0
    for name, value in attributes.items():
        size += len(name.encode()) + len(str(value.get("DataType", "")).encode())
        payload = value.get("StringValue") or value.get("BinaryValue") or b""
        size += len(payload if isinstance(payload, bytes) else str(payload).encode())
    return size


def _sqs_units(operation: str, params: Mapping[str, Any], parsed: Mapping[str, Any]) -> dict[str, float]:
    """SQS bills every action; each 64 KB chunk of a payload is one request."""
    if operation == "SendMessage":
        size = len(str(params.get("MessageBody", "")).encode()) + _sqs_attributes_bytes(
            params.get("MessageAttributes", {})
        )
        return {"sqs.request": max(1, math.ceil(size / SQS_CHUNK)), "stat.bytes": size}
    if operation == "SendMessageBatch":
        size = sum(
            len(str(entry.get("MessageBody", "")).encode()) + _sqs_attributes_bytes(entry.get("MessageAttributes", {}))
            for entry in params.get("Entries", [])
        )
        return {"sqs.request": max(1, math.ceil(size / SQS_CHUNK)), "stat.bytes": size}
    if operation == "ReceiveMessage":
        messages = parsed.get("Messages", [])
        size = sum(
            len(str(m.get("Body", "")).encode()) + _sqs_attributes_bytes(m.get("MessageAttributes", {}))
            for m in messages
        )
        return {"sqs.request": max(1, math.ceil(size / SQS_CHUNK)), "stat.messages": len(messages)}
    return {"sqs.request": 1}


def _event_entry_bytes(entry: Mapping[str, Any]) -> int:
    """A PutEvents entry's size as EventBridge meters it (Time, Source, DetailType, Detail, Resources)."""
    size = 14 if entry.get("Time") else 0
    for name in ("Source", "DetailType", "Detail"):
        size += len(str(entry.get(name, "")).encode())
    return size + sum(len(str(r).encode()) for r in entry.get("Resources", []))


def _archived_bytes(entry: Mapping[str, Any]) -> int:
    """The event as the bus delivers (and archives) it: the entry in EventBridge's envelope."""
    try:
        detail = json.loads(entry.get("Detail") or "{}")
    except json.JSONDecodeError:
        detail = entry.get("Detail")
    envelope = {
        "version": "0",
        "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
        "detail-type": entry.get("DetailType", ""),
        "source": entry.get("Source", ""),
        "account": ACCOUNT_ID,
        "time": "2026-11-16T12:00:00Z",
        "region": REGION,
        "resources": list(entry.get("Resources", [])),
        "detail": detail,
    }
    return len(json.dumps(envelope, separators=(",", ":")).encode())


def _events_units(operation: str, params: Mapping[str, Any], archived_sources: frozenset[str]) -> dict[str, float]:
    if operation != "PutEvents":
        return {}
    entries = params.get("Entries", [])
    chunks = sum(max(1, math.ceil(_event_entry_bytes(e) / EVENTS_CHUNK)) for e in entries)
    archived = sum(_archived_bytes(e) for e in entries if e.get("Source") in archived_sources)
    return {"events.custom_event": chunks, "events.archive_gb": archived / GB, "stat.entries": len(entries)}


def body_bytes(body: Any) -> int | None:
    """The size of a request body: bytes, text, or a seekable file-like (botocore wraps S3 bodies)."""
    if isinstance(body, bytes | bytearray):
        return len(body)
    if isinstance(body, str):
        return len(body.encode())
    if hasattr(body, "seek") and hasattr(body, "tell"):
        with suppress(OSError, ValueError):
            position = body.tell()
            size = int(body.seek(0, os.SEEK_END))
            body.seek(position)
            return size
    return None


def _s3_units(operation: str, size: int | None) -> dict[str, float]:
    if operation in ("GetObject", "HeadObject", "SelectObjectContent"):
        return {"s3.get_request": 1}
    if operation in ("PutObject", "CopyObject", "PostObject") or operation.startswith("List"):
        units: dict[str, float] = {"s3.put_request": 1}
        if size is not None:
            units["stat.bytes"] = size
            if size >= S3_TRANSITION_MIN:  # the bucket's lifecycle moves it to IA, then Glacier IR
                units |= {"s3.transition_standard_ia": 1, "s3.transition_glacier_ir": 1}
        return units
    return {}  # DELETE and the control plane are free


# ------------------------------------------------------------------------------ template facts


@dataclass(frozen=True)
class StackFacts:
    """What the template says that the bill depends on."""

    memory_mb: dict[str, int]
    architecture: dict[str, str]
    traced: dict[str, bool]
    schedule_minutes: dict[str, float]  # function → its schedule period
    queue_event_sources: int
    archived_sources: frozenset[str]
    access_log_format: str
    secrets: int
    alarms: int

    @classmethod
    def of(cls, template: Template) -> StackFacts:
        globals_ = template.document.get("Globals", {}).get("Function", {})
        functions = template.functions()
        memory = {name: spec.memory for name, spec in functions.items()}
        architecture, traced = {}, {}
        for name in functions:
            properties = template.properties(name)
            architecture[name] = (properties.get("Architectures") or globals_.get("Architectures") or ["x86_64"])[0]
            tracing = properties.get("Tracing") or globals_.get("Tracing")
            if isinstance(tracing, dict) and "Ref" in tracing:  # the Tracing parameter (default PassThrough)
                tracing = template.parameter(tracing["Ref"])
            traced[name] = tracing == "Active"
        archived: set[str] = set()
        for logical_id, _ in template.of_type("AWS::Events::Archive"):
            archived.update(template.properties(logical_id).get("EventPattern", {}).get("source", []))
        formats = [
            str(template.properties(api).get("AccessLogSettings", {}).get("Format", ""))
            for api, _ in template.of_type("AWS::Serverless::HttpApi")
        ]
        return cls(
            memory_mb=memory,
            architecture=architecture,
            traced=traced,
            schedule_minutes={s.function: s.period.total_seconds() / 60 for s in template.schedules()},
            queue_event_sources=len(template.queue_sources()),
            archived_sources=frozenset(archived),
            access_log_format=formats[0] if formats else "",
            secrets=sum(1 for _ in template.of_type("AWS::SecretsManager::Secret")),
            alarms=sum(1 for _ in template.of_type("AWS::CloudWatch::Alarm")),
        )


def platform_log_bytes(memory_mb: int, traced: bool) -> int:
    """The lines Lambda writes to a function's log group per invocation (Text format)."""
    request = "8f507cfc-1e6a-4a3c-9f8e-2a1b3c4d5e6f"
    lines = [
        f"START RequestId: {request} Version: $LATEST\n",
        f"END RequestId: {request}\n",
        f"REPORT RequestId: {request}\tDuration: 12.34 ms\tBilled Duration: 13 ms\t"
        f"Memory Size: {memory_mb} MB\tMax Memory Used: 98 MB\t\n",
    ]
    if traced:
        lines.append(
            "XRAY TraceId: 1-6752c1a2-3f9d2e7b8c4a5d6e7f809a1b\tSegmentId: 5a6b7c8d9e0f1a2b\tSampled: true\t\n"
        )
    return sum(len(line.encode()) for line in lines)


_ACCESS_LOG_VALUES = {  # a representative request, for the access-log line's length
    "$context.requestId": "JhWcVi2LIAMEMdQ=",
    "$context.identity.sourceIp": "203.0.113.7",
    "$context.responseLatency": "35",
    "$context.authorizer.key_id": "-",
    "$context.integrationErrorMessage": "-",
}


def access_log_bytes(log_format: str, route_key: str, status: int, length: int) -> int:
    if not log_format:
        return 0
    values = _ACCESS_LOG_VALUES | {
        "$context.routeKey": route_key,
        "$context.status": str(status),
        "$context.responseLength": str(length),
    }
    line = re.sub(r"\$context\.[A-Za-z.]+", lambda m: values.get(m.group(0), "-"), log_format)
    return len(line.encode()) + 1


# ------------------------------------------------------------------------------ the meter


@dataclass
class _Invocation:
    function: str
    aws_seconds: float = 0.0
    aws_cpu_seconds: float = 0.0
    aws_calls: int = 0


class Meter:
    """Counts the AWS usage of the local stack in this process while installed (a context
    manager): patches botocore's ``Session.create_client``, ``FunctionHost.invoke`` and
    ``LocalGateway.handle`` and restores them on exit."""

    def __init__(self, table: PriceTable | None = None, template: Template | None = None) -> None:
        self.table = table or load_price_table()
        self.facts = StackFacts.of(template or Template.load())
        self.usage = Usage()
        self.cold_seconds: dict[str, float] = {}
        self.log_dirs: set[Path] = set()
        self._lock = threading.Lock()
        self._local = threading.local()
        self._dynamo: _DynamoMeter | None = None
        self._restore: list[Callable[[], None]] = []

    # -- installation ------------------------------------------------------------------

    def __enter__(self) -> Meter:
        import botocore.session

        from infra.local.functions import FunctionHost
        from infra.local.gateway import LocalGateway

        self._patch(botocore.session.Session, "create_client", self._creating_client)
        self._patch(FunctionHost, "invoke", self._invoking)
        self._patch(LocalGateway, "handle", self._serving)
        return self

    def __exit__(self, *exc: object) -> None:
        while self._restore:
            self._restore.pop()()

    def _patch(self, owner: Any, name: str, wrap: Callable[[Any], Any]) -> None:
        original = owner.__dict__[name]
        setattr(owner, name, wrap(original))
        self._restore.append(lambda: setattr(owner, name, original))

    def snapshot(self) -> Usage:
        with self._lock:
            return self.usage.copy()

    def _add(self, line: Line, quantities: Mapping[str, float]) -> None:
        with self._lock:
            self.usage.add(line, quantities)

    # -- AWS calls ---------------------------------------------------------------------

    def _creating_client(self, original: Any) -> Any:
        meter = self

        def create_client(session: Any, *args: Any, **kwargs: Any) -> Any:
            created = original(session, *args, **kwargs)
            created.meta.events.register("before-parameter-build", meter._before_call)
            created.meta.events.register("after-call", meter._after_call)
            return created

        return create_client

    def _before_call(self, params: Mapping[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        context["meter.started"] = (time.perf_counter(), time.thread_time())
        service = model.service_model.service_name
        if service == "dynamodb":
            if self._dynamo is None:
                self._dynamo = _DynamoMeter()
            context["meter.before"] = self._dynamo.before(model.name, params)
        elif service == "s3" and model.name == "PutObject":
            context["meter.size"] = body_bytes(params.get("Body"))
        context["meter.params"] = dict(params)

    def _after_call(self, parsed: Mapping[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        started = context.get("meter.started")
        params: Mapping[str, Any] = context.get("meter.params") or {}
        service, operation = model.service_model.service_name, model.name
        invocation: _Invocation | None = getattr(self._local, "invocation", None)
        if invocation is not None and started is not None:
            invocation.aws_seconds += time.perf_counter() - started[0]
            invocation.aws_cpu_seconds += time.thread_time() - started[1]
            invocation.aws_calls += 1
        if invocation is not None:
            origin = invocation.function
        elif service == "sqs" and operation in _EVENT_SOURCE_CALLS:
            origin = EVENT_SOURCE
            if operation == "ReceiveMessage" and not parsed.get("Messages"):
                # An empty receive of the event source is one of its idle polls, which the
                # model prices from their rate ([model] esm_idle_receives_per_minute).
                self._add(("sqs", "ReceiveMessage (empty)", origin), {"stat.calls": 1})
                return
        else:
            origin = OUTSIDE
        quantities: dict[str, float] = {"calls": 1}
        if service == "dynamodb" and self._dynamo is not None:
            quantities |= self._dynamo.units(operation, params, parsed, context.get("meter.before") or [])
        elif service == "sqs":
            quantities |= _sqs_units(operation, params, parsed)
        elif service == "events":
            quantities |= _events_units(operation, params, self.facts.archived_sources)
        elif service == "s3":
            quantities |= _s3_units(operation, context.get("meter.size"))
        elif service == "secretsmanager":
            quantities |= {"secretsmanager.api_call": 1}
        self._add((service, operation, origin), quantities)

    # -- Lambda ------------------------------------------------------------------------

    def _invoking(self, original: Any) -> Any:
        meter = self

        def invoke(host: Any, logical_id: str, event: dict[str, Any]) -> Any:
            # Held here too (it is re-entrant), so the clock starts once the host is ours: a
            # gateway request waiting for the simulator's invocation is not billed duration.
            with host._lock:
                cold = logical_id not in host._modules
                log = host.log_path(logical_id)
                logged_before = log.stat().st_size if log is not None and log.exists() else 0
                invocation = _Invocation(logical_id)
                meter._local.invocation = invocation
                wall, cpu = time.perf_counter(), time.thread_time()
                try:
                    return original(host, logical_id, event)
                finally:
                    wall, cpu = time.perf_counter() - wall, time.thread_time() - cpu
                    meter._local.invocation = None
                    logged = (log.stat().st_size if log is not None and log.exists() else 0) - logged_before
                    if log is not None:
                        meter.log_dirs.add(log.parent)
                    meter._invoked(invocation, wall, cpu, logged, cold)

        return invoke

    def _invoked(self, invocation: _Invocation, wall: float, cpu: float, logged: int, cold: bool) -> None:
        name, model = invocation.function, self.table.model
        memory = self.facts.memory_mb.get(name, 128)
        billed_ms = math.ceil(wall * 1000)
        # The sensitivity: the handler's own CPU at the function's CPU share, plus a network
        # round trip per AWS call instead of moto's in-process time.
        own_cpu_ms = max(0.0, (cpu - invocation.aws_cpu_seconds) * 1000)
        share = max(1.0, model.full_vcpu_mb / memory)
        modeled_ms = math.ceil(own_cpu_ms * share + invocation.aws_calls * model.assumed_aws_call_ms)
        architecture = self.facts.architecture.get(name, "x86_64")
        if cold:
            self.cold_seconds[name] = wall
        self._add(
            ("lambda", name, name),
            {
                "calls": 1,
                "lambda.request": 1,
                f"lambda.gb_second.{architecture}": billed_ms / 1000 * memory / 1024,
                "stat.billed_ms": billed_ms,
                "stat.cpu_ms": cpu * 1000,
                "stat.aws_ms": invocation.aws_seconds * 1000,
                "stat.aws_calls": invocation.aws_calls,
                "stat.modeled_gb_second": modeled_ms / 1000 * memory / 1024,
            },
        )
        platform = platform_log_bytes(memory, self.facts.traced.get(name, False))
        self._add(
            ("logs", name, name),
            {"logs.ingested_gb": (logged + platform) / GB, "stat.bytes": logged + platform},
        )

    # -- HTTP API ----------------------------------------------------------------------

    def _serving(self, original: Any) -> Any:
        meter = self

        def handle(
            gateway: Any, method: str, target: str, headers: list[tuple[str, str]], body: bytes, ip: str
        ) -> tuple[int, dict[str, str], bytes]:
            answer: tuple[int, dict[str, str], bytes] = original(gateway, method, target, headers, body, ip)
            path = urlsplit(target).path
            if path.startswith("/_local/"):
                return answer  # the local runtime's own pages, not the API
            matched = gateway.match(method, path)
            route = matched[0].route_key if matched else f"{method} (no route)"
            status, _, payload = answer
            chunks = max(1, math.ceil(max(len(body), len(payload)) / HTTP_API_CHUNK))
            meter._add(("apigateway", route, HTTP_API), {"calls": 1, "apigateway.http_request": chunks})
            logged = access_log_bytes(meter.facts.access_log_format, route, status, len(payload))
            meter._add(
                ("logs", "HttpApi access log", HTTP_API), {"logs.ingested_gb": logged / GB, "stat.bytes": logged}
            )
            return answer

        return handle

    # -- read-outs ---------------------------------------------------------------------

    def custom_metrics(self) -> int:
        """Distinct CloudWatch metrics (namespace, dimension values, name) in the functions' EMF lines."""
        seen: set[tuple[str, tuple[tuple[str, str], ...], str]] = set()
        for folder in self.log_dirs:
            for path in folder.glob("*.log"):
                with path.open(encoding="utf-8", errors="replace") as lines:
                    for line in lines:
                        if not line.startswith('{"_aws"'):
                            continue
                        with suppress(json.JSONDecodeError, KeyError, TypeError):
                            blob = json.loads(line)
                            for directive in blob["_aws"]["CloudWatchMetrics"]:
                                for dimensions in directive.get("Dimensions", [[]]):
                                    values = tuple((d, str(blob.get(d))) for d in dimensions)
                                    for metric in directive.get("Metrics", []):
                                        seen.add((directive.get("Namespace", ""), values, metric["Name"]))
        return len(seen)

    def document(self) -> dict[str, Any]:
        return {
            "usage": self.snapshot().to_json(),
            "cold_ms": {name: seconds * 1000 for name, seconds in sorted(self.cold_seconds.items())},
            "custom_metrics": self.custom_metrics(),
        }


# ------------------------------------------------------------------------------ empty ticks


def measure_empty_ticks(ticks: int = 24, table: PriceTable | None = None) -> Usage:
    """What ``ticks`` firings of every schedule cost on an empty stack (after one warm-up
    firing: imports and first reads), measured on a local runtime of their own."""
    import tempfile

    from infra.demo.bundled import DEMO_SECRETS
    from infra.fake_carriers import CarrierWorld
    from infra.local.runtime import LocalRuntime, RuntimeOptions
    from infra.sim.runner import DEFAULT_START, STEP
    from shared.clock import FrozenClock

    sim_clock = FrozenClock(DEFAULT_START)
    with tempfile.TemporaryDirectory(prefix="shiplight-ticks-") as state, Meter(table) as meter:
        runtime = LocalRuntime(
            RuntimeOptions(
                port=0,  # never 3000: other runs may be serving there
                state_dir=Path(state),
                secrets=DEMO_SECRETS,
                clock=sim_clock,
                carrier_world=CarrierWorld(now=sim_clock.now),
                background=False,
            )
        )
        runtime.start()
        try:
            sim_clock.set(DEFAULT_START + STEP)
            runtime.pump()
            before = meter.snapshot()
            for tick in range(2, ticks + 2):
                sim_clock.set(DEFAULT_START + tick * STEP)
                runtime.pump()
            measured = meter.snapshot() - before
        finally:
            runtime.stop()
    return measured.only(lambda line: line[2] != OUTSIDE)


# ------------------------------------------------------------------------------ the model


def firings(usage: Usage) -> dict[str, float]:
    """Invocations per function in ``usage``."""
    found: dict[str, float] = {}
    for (service, _, origin), quantities in usage.lines.items():
        if service == "lambda":
            found[origin] = found.get(origin, 0.0) + quantities.get("lambda.request", 0.0)
    return found


def with_traces(usage: Usage, facts: StackFacts, model: Model) -> Usage:
    """``usage`` plus the X-Ray traces its invocations record (traced functions only)."""
    traced = usage.copy()
    for function, count in firings(usage).items():
        if facts.traced.get(function):
            traced.add(("xray", function, function), {"xray.trace_recorded": count * model.xray_traces_per_invocation})
    return traced


@dataclass
class CostReport:
    """Per shipment (variable) and per month (standing) usage, and their prices."""

    table: PriceTable
    facts: StackFacts
    shipments: int
    run_ticks: dict[str, float]
    variable: Usage  # per shipment
    standing: Usage  # per month
    custom_metrics: int = 0
    cold_ms: dict[str, float] = field(default_factory=dict)

    @property
    def amortized(self) -> Usage:
        """The standing usage's share of one shipment."""
        return self.standing.scaled(1 / self.table.model.shipments_per_month)

    def per_shipment(self) -> Usage:
        return self.variable + self.amortized

    def usd_per_1000(self, usage: Usage | None = None) -> float:
        usage = self.per_shipment() if usage is None else usage
        return 1000 * sum(self.table.usd(q) for q in usage.lines.values())

    def requests_per_shipment(self, usage: Usage | None = None) -> float:
        usage = self.per_shipment() if usage is None else usage
        return sum(q.get("calls", 0.0) for q in usage.lines.values())

    def by_call(self) -> dict[tuple[str, str], tuple[float, float, float]]:
        """(service, call) → (requests per shipment, USD per 1,000 of it variable, of it standing)."""
        rows: dict[tuple[str, str], list[float]] = {}
        for part, usage in ((1, self.variable), (2, self.amortized)):
            for (service, call, _), quantities in usage.lines.items():
                row = rows.setdefault((service, call), [0.0, 0.0, 0.0])
                row[0] += quantities.get("calls", 0.0)
                row[part] += 1000 * self.table.usd(quantities)
        return {key: (r[0], r[1], r[2]) for key, r in sorted(rows.items())}

    def by_service(self) -> dict[str, tuple[float, float]]:
        services: dict[str, list[float]] = {}
        for (service, _), (requests, variable, standing) in self.by_call().items():
            row = services.setdefault(service, [0.0, 0.0])
            row[0] += requests
            row[1] += variable + standing
        return {service: (r[0], r[1]) for service, r in sorted(services.items())}

    def modeled_lambda_usd_per_1000(self) -> float:
        """The whole figure with Lambda duration from the CPU-share sensitivity instead."""
        price_ids = [key for key in self.table.prices if key.startswith("lambda.gb_second.")]
        total = 0.0
        for (service, _, _), quantities in self.per_shipment().lines.items():
            if service == "lambda":
                architecture_ids = [key for key in quantities if key in price_ids]
                unit = self.table.prices[architecture_ids[0]].usd_per_unit if architecture_ids else 0.0
                measured = sum(quantities.get(key, 0.0) for key in architecture_ids)
                total += 1000 * (quantities.get("stat.modeled_gb_second", 0.0) - measured) * unit
        return self.usd_per_1000() + total

    def fixed_usd_per_month(self) -> dict[str, float]:
        prices = self.table.prices
        return {
            f"{self.facts.secrets} secrets": self.facts.secrets * prices["secretsmanager.secret_month"].usd_per_unit,
            f"{self.facts.alarms} alarms": self.facts.alarms * prices["cloudwatch.alarm_month"].usd_per_unit,
            f"{self.custom_metrics} custom metrics (EMF)": self.custom_metrics
            * prices["cloudwatch.custom_metric_month"].usd_per_unit,
        }

    def figures(self) -> dict[str, float]:
        figures = {
            "aws_requests_per_shipment": self.requests_per_shipment(),
            "usd_per_1000_shipments": self.usd_per_1000(),
            "usd_per_1000_shipments.standing": self.usd_per_1000(self.amortized),
            "aws_requests_per_shipment.standing": self.requests_per_shipment(self.amortized),
            "usd_per_1000_shipments.lambda_cpu_share": self.modeled_lambda_usd_per_1000(),
            "fixed_usd_per_month": sum(self.fixed_usd_per_month().values()),
        }
        for service, (requests, usd) in self.by_service().items():
            figures[f"usd_per_1000_shipments.{service}"] = usd
            if requests:
                figures[f"aws_requests_per_shipment.{service}"] = requests
        return figures

    def print(self, out: TextIO, goal: float, hosted: tuple[float, float]) -> None:
        model = self.table.model
        taken = max(p.taken for p in self.table.prices.values())
        ticks = ", ".join(f"{name} {count:.0f}" for name, count in sorted(self.run_ticks.items()))
        total = self.usd_per_1000()
        fixed = self.fixed_usd_per_month()
        lines = [
            f"us-east-1 list prices of infra/pricing.toml (taken {taken}), no free tier; {self.shipments} shipments, "
            f"schedule ticks in the run: {ticks}",
            "per 1,000 shipments = 1,000 x (the run's requests - its ticks at the empty-tick cost) / shipments",
            f"  + 1,000 x the standing month (the empty ticks of {model.days_per_month} days, the SQS event source's "
            f"idle polls, the receiver's secret reads) / {model.shipments_per_month:,} shipments",
            f"{'service':<15} {'call':<38} {'requests/shipment':>17} {'USD/1,000':>10} {'of it standing':>15}",
        ]
        for (service, call), (requests, variable, standing) in self.by_call().items():
            if max(abs(requests), abs(variable), abs(standing)) >= 5e-5:
                lines.append(
                    f"{service:<15} {call[:38]:<38} {requests:>17.2f} {variable + standing:>10.4f} {standing:>15.4f}"
                )
        lines += [
            "by service: " + ", ".join(f"{s} ${usd:.4f}" for s, (_, usd) in self.by_service().items()),
            f"aws_requests_per_shipment {self.requests_per_shipment():.1f}, usd_per_1000_shipments ${total:.4f} "
            f"(goal <= ${goal}: {'met' if total <= goal else 'MISSED'}; customer messages: no function sends any)",
            f"a hosted tracking service charges ${hosted[0]:.0f} per 1,000 on its 10,000-shipment plan and "
            f"${hosted[1]:.0f} over quota: {hosted[0] / max(total, 1e-9):,.0f}x and {hosted[1] / max(total, 1e-9):,.0f}x this AWS bill",
            f"assumed: {model.esm_idle_receives_per_minute:.0f} idle SQS polls a minute (5 long-polling pollers), "
            f"{model.xray_traces_per_invocation:.0f} X-Ray trace per invocation, "
            f"{model.receiver_secret_reads_per_month:,.0f} receiver secret reads a month (one per 300 s cache)",
            "caveat: Lambda duration is this machine's handler wall time, moto in-process (no network, not Graviton);",
            f"  with each handler's own CPU time at its CPU share (memory / {model.full_vcpu_mb:,} MB) and "
            f"{model.assumed_aws_call_ms:.0f} ms per AWS call instead: ${self.modeled_lambda_usd_per_1000():.4f} per 1,000",
            "not in the figure: INIT (billed since 2025-08-01; first invocations here: "
            + ", ".join(f"{n.removesuffix('Function')} {ms:.0f} ms" for n, ms in sorted(self.cold_ms.items()))
            + "), storage, data transfer, KMS,",
            "  and monthly charges of up to "
            + ", ".join(f"{what} ${usd:.2f}" for what, usd in fixed.items())
            + f" = ${sum(fixed.values()):.2f} a month (${1000 * sum(fixed.values()) / model.shipments_per_month:.2f} "
            f"per 1,000 at {model.shipments_per_month:,} a month; metrics are prorated by the hours they are sent)",
        ]
        out.write("".join(f"  {line}\n" for line in lines))


def _made_by(origin: str) -> Callable[[Line], bool]:
    return lambda line: line[2] == origin


def cost_report(
    run: Usage,
    *,
    shipments: int,
    empty_ticks: Usage,
    table: PriceTable | None = None,
    facts: StackFacts | None = None,
    custom_metrics: int = 0,
    cold_ms: Mapping[str, float] | None = None,
) -> CostReport:
    """Split ``run`` (the simulated run's usage) into a cost per shipment and a standing cost per
    month, given what the schedules' empty ticks cost (``empty_ticks``, any number of firings)."""
    table = table or load_price_table()
    facts = facts or StackFacts.of(Template.load())
    model = table.model
    run = with_traces(run.only(lambda line: line[2] != OUTSIDE), facts, model)
    empty_ticks = with_traces(empty_ticks, facts, model)
    run_ticks = {name: firings(run).get(name, 0.0) for name in facts.schedule_minutes}
    measured_ticks = firings(empty_ticks)
    per_firing = Usage()
    for function in facts.schedule_minutes:
        if measured_ticks.get(function):
            per_firing += empty_ticks.only(_made_by(function)).scaled(1 / measured_ticks[function])
    # The receiver's secret cache runs on the wall clock: priced from the model instead.
    receiver_secrets: Line = ("secretsmanager", "GetSecretValue", "WebhookReceiverFunction")
    variable = run.only(lambda line: line != receiver_secrets)
    standing = Usage()
    for function, minutes in facts.schedule_minutes.items():
        ticks_run = run_ticks[function]
        ticks_month = model.minutes_per_month / minutes
        lines = per_firing.only(_made_by(function))
        variable -= lines.scaled(ticks_run)
        standing += lines.scaled(ticks_month)
    idle_polls = model.esm_idle_receives_per_minute * model.minutes_per_month * facts.queue_event_sources
    standing.add(("sqs", "ReceiveMessage (idle polls)", EVENT_SOURCE), {"calls": idle_polls, "sqs.request": idle_polls})
    reads = model.receiver_secret_reads_per_month
    standing.add(receiver_secrets, {"calls": reads, "secretsmanager.api_call": reads})
    return CostReport(
        table=table,
        facts=facts,
        shipments=shipments,
        run_ticks=run_ticks,
        variable=variable.scaled(1 / shipments),
        standing=standing,
        custom_metrics=custom_metrics,
        cold_ms=dict(cold_ms or {}),
    )


# ------------------------------------------------------------------------------ entry point


def main(argv: list[str] | None = None) -> int:
    """``python -m infra.costs --usage-json FILE <shiplight arguments…>``: run the shiplight CLI
    under a :class:`Meter` and write what it counted to FILE."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if len(arguments) < 3 or arguments[0] != "--usage-json":
        sys.stderr.write("usage: python -m infra.costs --usage-json FILE <shiplight arguments>\n")
        return 2
    from infra.cli import main as shiplight

    target = Path(arguments[1])
    started = datetime.now().astimezone()
    with Meter() as meter:
        code = shiplight(arguments[2:])
    document = meter.document() | {"started": started.isoformat(), "pid": os.getpid()}
    target.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
    return code


if __name__ == "__main__":
    raise SystemExit(main())
