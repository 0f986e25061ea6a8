"""Make moto's DynamoDB Query cost what DynamoDB's does, for the local stack only.

moto answers every ``Query`` by sorting the whole table (``Table.all_items``) and filtering it:
with the few thousand items of a simulated fortnight, one Query takes ~50 ms, and the poller's
shard Queries every five simulated minutes would take the simulation hours. These patches
change how moto *finds* candidate items, never what it returns: a Query on the table's own key
starts from that one partition; a Query on a secondary index starts from the items whose index
key has the queried value, grouped once and then kept up to date item by item from the keys
each write names (regrouping a 500-shipment table after every write cost ~7 % of the run).
moto's own code still filters, sorts, pages and projects them, so results are identical.

``TransactWriteItems`` likewise: moto deep-copies every table a transaction touches before
running it, to roll back on failure — a cost that grows with the table (a fortnight's table
made each transaction take ~200 ms). The patch remembers only the items the transaction names
(and the length of each table's stream) and puts exactly those back when moto rolls back, so a
cancelled transaction still leaves the table as it was and a committed one is untouched.

An index Query's answer is projected attribute by attribute from the whole item converted to
plain JSON and back, once per projected attribute (ByPollDue projects ten: ~0.7 ms an item);
the patch keeps the projected top-level attributes as they are stored.

More cut moto's fixed cost per call: the list of a response class's methods (moto builds
it with ``inspect.getmembers`` on every request) is computed once per class; the JSONPath
expressions moto's EventBridge evaluates for every event it delivers to a rule's target are
parsed once (``jsonpath_ng`` regenerates its parser tables on every parse); and the local
queue pollers can ask whether a queue holds a visible message (``queue_has_visible_messages``)
without a ``ReceiveMessage`` round trip when it is empty, which is most of the time.

Never used by the tests' ``mock_aws`` tier (which exercises moto as it is), nor in Lambda.
"""

from __future__ import annotations

import copy
import functools
import inspect
import json
import threading
from dataclasses import dataclass, field
from typing import Any, cast

import jsonpath_ng.ext
import moto.core.responses
from moto.core.responses import ActionResult
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType, Item
from moto.dynamodb.models.table import SecondaryIndex, Table

_lock = threading.Lock()
_query_lock = threading.RLock()  # the per-call starting set is set on the table object
_in_transaction = threading.local()
_originals: dict[tuple[Any, str], Any] = {}


@dataclass
class _Grouping:
    """One secondary index of one table: its items by index hash value, kept up to date from
    the keys written since it was last read (``pending``; ``None``: regroup the whole table)."""

    members: dict[Any, dict[tuple[Any, Any], Item]] = field(default_factory=dict)
    placed: dict[tuple[Any, Any], Any] = field(default_factory=dict)  # item key → index hash value
    pending: set[tuple[Any, Any]] | None = None


# (table id, index name) → its grouping
_groupings: dict[tuple[int, str], _Grouping] = {}


def _touched(writes: list[tuple[Table, list[tuple[Any, Any]]]] | None) -> None:
    """Note the item keys written per table (``None``: anything, in any table)."""
    with _lock:
        for (table_id, _), grouping in _groupings.items():
            if writes is None:
                grouping.pending = None
                continue
            for table, keys in writes:
                if table_id == id(table) and grouping.pending is not None:
                    grouping.pending.update(keys)


def _item_at(table: Table, key: tuple[Any, Any]) -> Item | None:
    items: Any = table.items  # hash key → item, or → {range key → item}
    hash_key, range_key = key
    found = items.get(hash_key) if range_key is None else items.get(hash_key, {}).get(range_key)
    return cast(Item | None, found)


def _index_groups(table: Table, index_name: str) -> dict[Any, dict[tuple[Any, Any], Item]]:
    """The items of ``table`` by their value of the index's hash key. The first call groups the
    whole table; later ones only re-place the items written since (an index Query after each
    write would otherwise regroup every item of a growing table)."""
    index = table.get_index(index_name)
    hash_attr = next(key["AttributeName"] for key in index.schema if key["KeyType"] == "HASH")
    with _lock:
        grouping = _groupings.setdefault((id(table), index_name), _Grouping())
        if grouping.pending is None:
            grouping.members, grouping.placed = {}, {}
            keys: Any = (
                [(hash_key, range_key) for hash_key, partition in table.items.items() for range_key in partition]
                if table.range_key_attr
                else [(hash_key, None) for hash_key in table.items]
            )
        else:
            keys = grouping.pending
        for key in keys:
            before = grouping.placed.pop(key, None)
            if before is not None:
                group = grouping.members[before]
                del group[key]
                if not group:
                    del grouping.members[before]
            item = _item_at(table, key)
            value = item.attrs.get(hash_attr) if item is not None else None
            if item is not None and value is not None:
                grouping.members.setdefault(value, {})[key] = item
                grouping.placed[key] = value
        grouping.pending = set()
        return grouping.members


def _key_of(table: Table, attributes: dict[str, Any]) -> tuple[Any, Any]:
    hash_key = DynamoType(attributes[table.hash_key_attr])
    return hash_key, DynamoType(attributes[table.range_key_attr]) if table.range_key_attr else None


def _noting_writes(name: str, method: Any) -> Any:
    """Wrap a backend mutation so the groupings re-place the items it wrote."""

    @functools.wraps(method)
    def wrapper(self: DynamoDBBackend, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        finally:
            _touched(_written(self, name, args, kwargs))

    return wrapper


def _written(
    backend: DynamoDBBackend, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> list[tuple[Table, list[tuple[Any, Any]]]] | None:
    """The item keys a mutation call may have written, per table (``None``: cannot tell)."""
    try:
        if name in ("put_item", "update_item", "delete_item"):
            parameter = "item_attrs" if name == "put_item" else "key"
            table = backend.tables[kwargs["table_name"] if "table_name" in kwargs else args[0]]
            attributes = kwargs[parameter] if parameter in kwargs else args[1]
            return [(table, [_key_of(table, attributes)])]
        if name == "transact_write_items":
            named = [_named_item(backend, entry) for entry in kwargs.get("transact_items", args[0] if args else [])]
            if any(n is None for n in named):
                return None
            return [(table, [(hash_key, range_key)]) for table, hash_key, range_key in filter(None, named)]
    except (KeyError, TypeError, IndexError):
        pass
    return None  # a table-level change, or a request moto refuses anyway: regroup everything


_MUTATIONS = (
    "put_item",
    "update_item",
    "delete_item",
    "transact_write_items",  # (moto's batch_write_item is a no-op: it calls put_item and delete_item)
    "create_table",
    "delete_table",
    "update_table",
)


def _named_item(backend: DynamoDBBackend, entry: dict[str, Any]) -> tuple[Table, Any, Any] | None:
    """The table and key of one transaction entry (``None`` when moto will refuse it anyway)."""
    operation = next(iter(entry.values()), None)
    if not isinstance(operation, dict):
        return None
    table = backend.tables.get(operation.get("TableName", ""))
    if table is None:
        return None
    try:
        hash_key, range_key = _key_of(table, operation.get("Key") or operation.get("Item") or {})
    except (KeyError, TypeError):
        return None
    return table, hash_key, range_key


def _restore(table: Table, hash_key: Any, range_key: Any, item: Item | None) -> None:
    items: Any = table.items  # hash key → item, or → {range key → item}
    if range_key is None:
        if item is None:
            items.pop(hash_key, None)
        else:
            items[hash_key] = item
    elif item is None:
        items.get(hash_key, {}).pop(range_key, None)
    else:
        items[hash_key][range_key] = item


def _transact_write_items(original: Any) -> Any:
    @functools.wraps(original)
    def transact_write_items(self: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
        saved: list[tuple[Table, Any, Any, Item | None]] = []
        streams: dict[int, tuple[Table, int]] = {}
        for entry in transact_items:
            named = _named_item(self, entry)
            if named is None:
                continue
            table, hash_key, range_key = named
            saved.append((table, hash_key, range_key, copy.deepcopy(_item_at(table, (hash_key, range_key)))))
            if table.stream_shard is not None:
                streams.setdefault(id(table), (table, len(table.stream_shard.items)))
        _in_transaction.active = True
        try:
            original(self, transact_items)
        except Exception:
            for table, hash_key, range_key, item in reversed(saved):
                _restore(table, hash_key, range_key, item)
            for table, length in streams.values():
                if table.stream_shard is not None:
                    del table.stream_shard.items[length:]
            raise
        finally:
            _in_transaction.active = False

    return transact_write_items


def _table_snapshot(self: Table, memo: dict[int, Any]) -> Table:
    """Inside a patched transaction, moto's whole-table rollback copy is the table itself (the
    patch restores what changed); anywhere else (a backup), a real deep copy."""
    if getattr(_in_transaction, "active", False):
        return self
    duplicate: Any = Table.__new__(Table)
    memo[id(self)] = duplicate
    for name, value in vars(self).items():
        setattr(duplicate, name, copy.deepcopy(value, memo))
    return cast(Table, duplicate)


def queue_has_visible_messages(queue_url: str) -> bool | None:
    """Whether the in-process moto queue at ``queue_url`` holds a message a receive would
    return now; ``None`` when it cannot tell (not in-process, unknown queue): then ask SQS."""
    from moto.sqs.models import sqs_backends

    parts = queue_url.rstrip("/").split("/")
    if len(parts) < 2:
        return None
    account, name = parts[-2], parts[-1]
    region = queue_url.split("sqs.", 1)[1].split(".", 1)[0] if "sqs." in queue_url else "us-east-1"
    try:
        queue = sqs_backends[account][region].queues.get(name)
    except (KeyError, ValueError):
        return None
    if queue is None:
        return None
    return any(message.visible and not message.delayed for message in list(queue._messages))


# DynamoDB data-plane answers: moto's backends already build them as DynamoDB JSON (strings,
# numbers as strings, lists and maps), which its shape-driven serializer then walks attribute
# by attribute (~1 ms per item). These are written out as they are.
_PLAIN_JSON_OPERATIONS = frozenset(
    {"Query", "Scan", "GetItem", "BatchGetItem", "PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem"}
    | {"TransactWriteItems", "TransactGetItems"}
)


def _plain_json(original: Any) -> Any:
    @functools.wraps(original)
    def execute_result(self: Any, context: Any) -> Any:
        result = self.result
        if (
            context.service_model.service_name == "dynamodb"
            and context.operation_model.name in _PLAIN_JSON_OPERATIONS
            and isinstance(result, dict)
        ):
            try:
                body = json.dumps(result, separators=(",", ":"))
            except TypeError:  # something only the serializer knows how to write
                return original(self, context)
            return 200, {"Content-Type": "application/x-amz-json-1.0"}, body
        return original(self, context)

    return execute_result


def _within_range(table: Table, index_name: str | None, arguments: dict[str, Any], candidates: list[Any]) -> list[Any]:
    """Keep only the candidates the key condition's sort-key part selects, as DynamoDB does
    before it reads anything. moto checks the 1 MB page limit (sizing each item, which is
    slow) before the sort-key condition, so a ``due <= now`` Query over a large partition
    sized every item in it; the items it returns are the same either way."""
    comparison, values = arguments.get("range_comparison"), arguments.get("range_objs")
    conditions = arguments.get("range_key_conditions") or []
    if not comparison or not values or len(conditions) > 1:
        return candidates
    if index_name is None:
        attribute = table.range_key_attr
    else:
        ranges = [key["AttributeName"] for key in table.get_index(index_name).schema if key["KeyType"] == "RANGE"]
        attribute = ranges[0] if len(ranges) == 1 else None
    if attribute is None:
        return candidates
    kept = []
    for item in candidates:
        value = item.attrs.get(attribute)
        if value is not None and value.compare(comparison, values):
            kept.append(item)
    return kept


def _project(original: Any) -> Any:
    @functools.wraps(original)
    def project(self: SecondaryIndex, item: Item) -> Item:
        kind = (self.projection or {}).get("ProjectionType")
        if kind not in ("KEYS_ONLY", "INCLUDE"):
            return cast(Item, original(self, item))
        names = [*self.table_key_attrs, *(key["AttributeName"] for key in self.schema)]
        if kind == "INCLUDE":
            names += self.projection.get("NonKeyAttributes", [])
        kept = {name: item.attrs[name].to_json() for name in dict.fromkeys(names) if name in item.attrs}
        return Item(hash_key=item.hash_key, range_key=item.range_key, attrs=kept)

    return project


def install() -> None:
    """Patch moto once per process (idempotent)."""
    if _originals:
        return
    _originals[(ActionResult, "execute_result")] = ActionResult.execute_result
    ActionResult.execute_result = _plain_json(ActionResult.execute_result)  # type: ignore[method-assign]
    responses: Any = moto.core.responses
    _originals[(responses, "method_names_from_class")] = responses.method_names_from_class
    responses.method_names_from_class = functools.cache(responses.method_names_from_class)
    # moto.events.utils imports ``parse`` from here at each call; a parsed path is immutable.
    ext: Any = jsonpath_ng.ext
    _originals[(ext, "parse")] = ext.parse
    ext.parse = functools.lru_cache(maxsize=256)(ext.parse)
    for name in _MUTATIONS:
        _originals[(DynamoDBBackend, name)] = getattr(DynamoDBBackend, name)
        patched = getattr(DynamoDBBackend, name)
        if name == "transact_write_items":
            patched = _transact_write_items(patched)
        setattr(DynamoDBBackend, name, _noting_writes(name, patched))
    _originals[(SecondaryIndex, "project")] = SecondaryIndex.project
    SecondaryIndex.project = _project(SecondaryIndex.project)  # type: ignore[method-assign]
    _originals[(Table, "__deepcopy__")] = None
    Table.__deepcopy__ = _table_snapshot  # type: ignore[attr-defined]
    original_query = Table.query
    _originals[(Table, "query")] = original_query

    signature = inspect.signature(original_query)

    @functools.wraps(original_query)
    def query(self: Table, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
        arguments = signature.bind(self, hash_key, *args, **kwargs).arguments
        index_name = arguments.get("index_name")
        conditions = arguments.get("hash_key_conditions")
        candidates: list[Any] | None
        if index_name is None and hash_key is not None and self.range_key_attr:
            partition = self.items.get(hash_key)
            candidates = list(partition.values()) if partition else []
        elif index_name is not None and conditions:
            groups = _index_groups(self, index_name)
            candidates = list(groups.get(conditions[0][1], {}).values()) if len(conditions) == 1 else None
        else:
            candidates = None
        if candidates is None:
            return original_query(self, hash_key, *args, **kwargs)
        candidates = _within_range(self, index_name, arguments, candidates)
        with _query_lock:
            self.all_items = lambda: candidates  # type: ignore[method-assign] # this call's starting set
            try:
                return original_query(self, hash_key, *args, **kwargs)
            finally:
                del self.all_items

    Table.query = query  # type: ignore[method-assign]


def uninstall() -> None:
    """Restore moto as it was (tests compare both)."""
    for (owner, name), original in _originals.items():
        if original is None:
            delattr(owner, name)
        else:
            setattr(owner, name, original)
    _originals.clear()
    _groupings.clear()
