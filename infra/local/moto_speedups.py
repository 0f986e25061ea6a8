"""Make moto's DynamoDB cost what DynamoDB's does, for the local stack only.

moto answers every ``Query`` by sorting the whole table (``Table.all_items``) and filtering it:
with the few thousand items of a simulated fortnight, one Query takes ~50 ms, and the poller's
shard Queries every five simulated minutes would take the simulation hours. These patches
change how moto *finds* candidate items, never what it returns: a Query on the table's own key
starts from that one partition; a Query on a secondary index starts from the items whose index
key has the queried value, grouped once and then kept up to date item by item from the keys
each write names; and only the candidates the sort-key condition selects are handed on (moto
sizes every candidate against the 1 MB page limit before it applies that condition). moto's own
code still filters, sorts, pages and projects them, so results are identical.

``TransactWriteItems`` likewise: moto deep-copies every table a transaction touches before
running it, to roll back on failure — a cost that grows with the table (a fortnight's table
made each transaction take ~200 ms) — and every copy stays in memory until the mock is reset
(moto keeps each model instance it creates in ``instances_tracked``): without this patch the
default demo's process grew past 23 GB and was killed. The patch remembers only the items the
transaction names (and the length of each table's stream) and puts exactly those back when
moto rolls back, so a cancelled transaction still leaves the table as it was and a committed
one is untouched.

An index Query's answer is projected attribute by attribute from the whole item converted to
plain JSON and back, once per projected attribute (ByPollDue projects ten: ~0.7 ms an item);
the patch keeps the projected top-level attributes as they are stored.

More cut moto's fixed cost per call: DynamoDB's data-plane answers, already DynamoDB JSON, are
written out as they are instead of walked by moto's shape-driven serializer; the list of a
response class's methods (moto builds it with ``inspect.getmembers`` on every request) is
computed once per class; the JSONPath expressions moto's EventBridge evaluates for every event it
delivers to a rule's target are parsed once (``jsonpath_ng`` regenerates its parser tables on
every parse); and the local queue pollers can ask whether a queue holds a visible message
(``queue_has_visible_messages``) without a ``ReceiveMessage`` round trip when it is empty, which
is most of the time.

Measured on the default demo (60 shipments, 10 days; docs/decisions.md, 2026-12-07): ~50 s with
all of them, and it does not finish without them (see above). What each one saves in that run
(CPU seconds): index Queries ~55, the serializer ~11.5, the queue peek ~5.7, partition Queries
~4.8, JSONPath parsing ~2.4, the method list ~1.8, projections ~1.5 (more with bigger
partitions) — every one kept.

**Turning them off.** ``SHIPLIGHT_MOTO_SPEEDUPS=0`` in the environment leaves moto as it is
(slower, same answers): to rule the patches out when something looks wrong locally, or to
measure them.

**moto versions.** The patches reach into moto's private internals, so they are applied only on
the moto versions they were tested with (``TESTED_MOTO_VERSIONS``) and only when every internal
they replace is where they expect it. Otherwise ``install`` patches nothing, warns once
(``MotoSpeedupsSkipped``: the version, and that plain, slower moto is used) and the stack runs
on plain moto. After a moto upgrade, run ``tests/integration/test_moto_speedups.py`` with the new
version added, then keep it.

**Threads.** The local runtime is threaded (the moto server on loopback, the in-process handlers,
the queue pollers). moto itself has no lock around a DynamoDB table: its ``backend_lock`` guards
only the creation and reset of backends, and its server's lock only the lookup of the app that
answers a request. So every patched DynamoDB entry point — the item and table writes that keep
the index groupings up to date, ``TransactWriteItems`` with its rollback, ``Table.query``,
``Table.all_items`` and the table copy — runs under one re-entrant lock of ours (``_lock``), and
the groupings, the rollback's restore and the reads of ``Table.items`` happen only under it. The
starting set of one Query is handed to moto's code through a thread-local, never set on the
shared table. The queue peek reads a queue under the queue's own lock (moto's
``Queue._messages_lock``, which moto takes when it adds a message and when it waits for one).

Only the local runtime (and ``make bench``) installs them, never Lambda; nothing uninstalls them
when a runtime stops, so ``mock_aws`` tests run after a local runtime in the same process meet
patched moto (same answers).
"""

from __future__ import annotations

import copy
import functools
import inspect
import json
import os
import threading
import warnings
import weakref
from dataclasses import dataclass, field
from typing import Any, cast

import moto

try:  # moto's private layout: a version that moved any of it gets plain moto (see ``install``)
    import jsonpath_ng.ext
    import moto.core.responses
    from moto.core.responses import ActionResult
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.dynamo_type import DynamoType, Item
    from moto.dynamodb.models.table import SecondaryIndex, Table
except ImportError as error:  # pragma: no cover - only on an untested moto
    _IMPORT_PROBLEM: str | None = f"cannot import {error.name or error}"
else:
    _IMPORT_PROBLEM = None

# The moto versions the patches were tested with (tests/integration/test_moto_speedups.py).
TESTED_MOTO_VERSIONS = frozenset({"5.2.5"})
SWITCH = "SHIPLIGHT_MOTO_SPEEDUPS"  # "0": leave moto as it is


class MotoSpeedupsSkipped(RuntimeWarning):
    """The local stack runs on plain moto: the installed version was not tested with the patches."""


# One re-entrant lock around every patched DynamoDB entry point (moto has none of its own; see the
# module docstring). Re-entrant: a transaction calls the patched put/update/delete itself.
_lock = threading.RLock()
_in_transaction = threading.local()  # this thread is inside a patched TransactWriteItems
_query_call = threading.local()  # this thread's Query: its table and the candidates it starts from
_originals: dict[tuple[Any, str], Any] = {}
_skipped: list[str] = []  # why install() left moto as it is (warned once)


@dataclass
class _Grouping:
    """One secondary index of one table: its items by index hash value, kept up to date from
    the keys written since it was last read (``pending``; ``None``: regroup the whole table)."""

    members: dict[Any, dict[tuple[Any, Any], Item]] = field(default_factory=dict)
    placed: dict[tuple[Any, Any], Any] = field(default_factory=dict)  # item key → index hash value
    pending: set[tuple[Any, Any]] | None = None


# table → index name → its grouping (weak: a dropped table, e.g. at a mock reset, takes its own)
_groupings: weakref.WeakKeyDictionary[Table, dict[str, _Grouping]] = weakref.WeakKeyDictionary()


def _touched(writes: list[tuple[Table, list[tuple[Any, Any]]]] | None) -> None:
    """Note the item keys written per table (``None``: anything, in any table). Under ``_lock``."""
    if writes is None:
        for by_index in _groupings.values():
            for grouping in by_index.values():
                grouping.pending = None
        return
    for table, keys in writes:
        for grouping in _groupings.get(table, {}).values():
            if grouping.pending is not None:
                grouping.pending.update(keys)


def _item_at(table: Table, key: tuple[Any, Any]) -> Item | None:
    items: Any = table.items  # hash key → item, or → {range key → item}
    hash_key, range_key = key
    found = items.get(hash_key) if range_key is None else items.get(hash_key, {}).get(range_key)
    return cast(Item | None, found)


def _index_groups(table: Table, index_name: str) -> dict[Any, dict[tuple[Any, Any], Item]]:
    """The items of ``table`` by their value of the index's hash key. The first call groups the
    whole table; later ones only re-place the items written since (an index Query after each
    write would otherwise regroup every item of a growing table). Under ``_lock``."""
    index = table.get_index(index_name)
    hash_attr = next(key["AttributeName"] for key in index.schema if key["KeyType"] == "HASH")
    grouping = _groupings.setdefault(table, {}).setdefault(index_name, _Grouping())
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
    """Wrap a backend mutation: run it under ``_lock`` and re-place the items it wrote in the
    groupings before any other patched call can read them."""

    @functools.wraps(method)
    def wrapper(self: DynamoDBBackend, *args: Any, **kwargs: Any) -> Any:
        with _lock:
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
        items.setdefault(hash_key, {})[range_key] = item


def _transact_write_items(original: Any) -> Any:
    @functools.wraps(original)
    def transact_write_items(self: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
        with _lock:  # from the saved items to the restore, no other patched call runs
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
                # moto has put back its "copies" (the tables themselves, see _table_snapshot);
                # put back what the transaction named, in reverse order.
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
    patch restores what changed), so moto's rollback puts back the very table it took; anywhere
    else (a backup), a real deep copy, taken under ``_lock`` so no patched write tears it."""
    if getattr(_in_transaction, "active", False):
        return self
    with _lock:
        duplicate: Any = Table.__new__(Table)
        memo[id(self)] = duplicate
        for name, value in vars(self).items():
            setattr(duplicate, name, copy.deepcopy(value, memo))
        return cast(Table, duplicate)


def queue_has_visible_messages(queue_url: str) -> bool | None:
    """Whether the in-process moto queue at ``queue_url`` holds a message a receive would
    return now; ``None`` when it cannot tell (speed-ups not installed, not in-process, unknown
    queue): then ask SQS."""
    if not _originals:
        return None
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
    with queue._messages_lock:  # moto's own lock for a queue's messages (it adds and waits under it)
        return bool(queue.messages)


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


def _query(original: Any) -> Any:
    signature = inspect.signature(original)

    @functools.wraps(original)
    def query(self: Table, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
        arguments = signature.bind(self, hash_key, *args, **kwargs).arguments
        index_name = arguments.get("index_name")
        conditions = arguments.get("hash_key_conditions")
        with _lock:  # the partition, the groupings and moto's reads of the items, with no write between
            candidates: list[Any] | None
            if index_name is None and hash_key is not None and self.range_key_attr:
                partition = self.items.get(hash_key)
                candidates = list(partition.values()) if partition else []
            elif index_name is not None and conditions and len(conditions) == 1:
                candidates = list(_index_groups(self, index_name).get(conditions[0][1], {}).values())
            else:
                candidates = None
            if candidates is None:
                return original(self, hash_key, *args, **kwargs)
            _query_call.table, _query_call.candidates = self, _within_range(self, index_name, arguments, candidates)
            try:
                return original(self, hash_key, *args, **kwargs)
            finally:
                _query_call.table = _query_call.candidates = None

    return query


def _all_items(original: Any) -> Any:
    @functools.wraps(original)
    def all_items(self: Table) -> list[Item]:
        if getattr(_query_call, "table", None) is self:
            return cast(list[Item], _query_call.candidates)  # this thread's Query starts from these
        with _lock:
            return cast(list[Item], original(self))

    return all_items


# What install() replaces, and the parameters the patches read from moto's calls.
_PARAMETERS: dict[str, tuple[str, ...]] = {
    "Table.query": ("hash_key", "index_name", "hash_key_conditions", "range_comparison", "range_objs"),
    "DynamoDBBackend.put_item": ("table_name", "item_attrs"),
    "DynamoDBBackend.update_item": ("table_name", "key"),
    "DynamoDBBackend.delete_item": ("table_name", "key"),
    "DynamoDBBackend.transact_write_items": ("transact_items",),
}


def _targets() -> dict[str, tuple[Any, str]]:
    responses: Any = moto.core.responses
    ext: Any = jsonpath_ng.ext
    return {
        "ActionResult.execute_result": (ActionResult, "execute_result"),
        "moto.core.responses.method_names_from_class": (responses, "method_names_from_class"),
        "jsonpath_ng.ext.parse": (ext, "parse"),
        **{f"DynamoDBBackend.{name}": (DynamoDBBackend, name) for name in _MUTATIONS},
        "SecondaryIndex.project": (SecondaryIndex, "project"),
        "Table.query": (Table, "query"),
        "Table.all_items": (Table, "all_items"),
    }


def _why_not() -> str | None:
    """Why the patches must not be applied to this moto, or ``None`` when they may."""
    version = str(getattr(moto, "__version__", "unknown"))
    if version not in TESTED_MOTO_VERSIONS:
        return f"moto {version} is not a version they were tested with ({', '.join(sorted(TESTED_MOTO_VERSIONS))})"
    if _IMPORT_PROBLEM is not None:
        return f"moto {version}'s internals differ: {_IMPORT_PROBLEM}"
    targets = _targets()
    missing = [name for name, (owner, attribute) in targets.items() if not callable(getattr(owner, attribute, None))]
    missing += [
        f"{name}({parameter})"
        for name, parameters in _PARAMETERS.items()
        if name not in missing
        for parameter in parameters
        if parameter not in inspect.signature(getattr(*targets[name])).parameters
    ]
    if hasattr(Table, "__deepcopy__"):
        missing.append("Table without __deepcopy__")
    if missing:
        return f"moto {version}'s internals differ: {', '.join(missing)} not as expected"
    return None


def install() -> bool:
    """Patch moto once per process (idempotent); returns whether moto is patched.

    Leaves moto as it is when ``SHIPLIGHT_MOTO_SPEEDUPS=0``, and — with one
    ``MotoSpeedupsSkipped`` warning per process — on a moto version or layout the patches were
    not tested with."""
    with _lock:
        if _originals:
            return True
        if os.environ.get(SWITCH, "").strip() == "0" or _skipped:
            return False
        reason = _why_not()
        if reason is not None:
            _skipped.append(reason)
            warnings.warn(
                f"Local stack: moto speed-ups not applied, {reason}; running on plain moto (same answers, slower).",
                MotoSpeedupsSkipped,
                stacklevel=2,
            )
            return False
        replacements: dict[str, Any] = {
            "ActionResult.execute_result": _plain_json,
            "moto.core.responses.method_names_from_class": functools.cache,
            # moto.events.utils imports ``parse`` from there at each call; a parsed path is immutable.
            "jsonpath_ng.ext.parse": functools.lru_cache(maxsize=256),
            "DynamoDBBackend.transact_write_items": lambda original: _noting_writes(
                "transact_write_items", _transact_write_items(original)
            ),
            **{
                f"DynamoDBBackend.{name}": functools.partial(_noting_writes, name)
                for name in _MUTATIONS
                if name != "transact_write_items"
            },
            "SecondaryIndex.project": _project,
            "Table.query": _query,
            "Table.all_items": _all_items,
        }
        for name, (owner, attribute) in _targets().items():
            original = getattr(owner, attribute)
            _originals[(owner, attribute)] = original
            setattr(owner, attribute, replacements[name](original))
        _originals[(Table, "__deepcopy__")] = None  # moto's Table has none: deepcopy copies its dict
        Table.__deepcopy__ = _table_snapshot  # type: ignore[attr-defined]
        return True


def installed() -> bool:
    """Whether moto is patched now."""
    return bool(_originals)


def uninstall() -> None:
    """Restore moto as it was, and forget a skipped install (tests compare both)."""
    with _lock:
        for (owner, name), original in _originals.items():
            if original is None:
                delattr(owner, name)
            else:
                setattr(owner, name, original)
        _originals.clear()
        _groupings.clear()
        _skipped.clear()
