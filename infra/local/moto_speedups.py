"""Make moto's DynamoDB Query cost what DynamoDB's does, for the local stack only.

moto answers every ``Query`` by sorting the whole table (``Table.all_items``) and filtering it:
with the few thousand items of a simulated fortnight, one Query takes ~50 ms, and the poller's
shard Queries every five simulated minutes would take the simulation hours. These patches
change how moto *finds* candidate items, never what it returns: a Query on the table's own key
starts from that one partition; a Query on a secondary index starts from the items whose index
key has the queried value, grouped once per table state (any write invalidates the grouping).
moto's own code still filters, sorts, pages and projects them, so results are identical.

Never used by the tests' ``mock_aws`` tier (which exercises moto as it is), nor in Lambda.
"""

from __future__ import annotations

import functools
import inspect
import threading
from collections import defaultdict
from typing import Any

from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.table import Table

_lock = threading.Lock()
_query_lock = threading.RLock()  # the per-call starting set is set on the table object
_generation = 0
_originals: dict[tuple[type, str], Any] = {}
# (table id, index name, generation) → index hash value → candidate items
_groups: dict[tuple[int, str], tuple[int, dict[Any, list[Any]]]] = {}


def _bump(method: Any) -> Any:
    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        global _generation
        with _lock:
            _generation += 1
        try:
            return method(*args, **kwargs)
        finally:
            with _lock:
                _generation += 1

    return wrapper


def _index_groups(table: Table, index_name: str) -> dict[Any, list[Any]]:
    with _lock:
        generation = _generation
        cached = _groups.get((id(table), index_name))
    if cached is not None and cached[0] == generation:
        return cached[1]
    index = table.get_index(index_name)
    hash_attr = next(key["AttributeName"] for key in index.schema if key["KeyType"] == "HASH")
    groups: dict[Any, list[Any]] = defaultdict(list)
    for partition in table.items.values():
        items: Any = partition.values() if table.range_key_attr else [partition]
        for item in items:
            value = item.attrs.get(hash_attr)
            if value is not None:
                groups[value].append(item)
    with _lock:
        _groups[(id(table), index_name)] = (generation, groups)
    return groups


_MUTATIONS = (
    "put_item",
    "update_item",
    "delete_item",
    "transact_write_items",
    "batch_write_item",
    "create_table",
    "delete_table",
    "update_table",
)


def install() -> None:
    """Patch moto once per process (idempotent)."""
    if _originals:
        return
    for name in _MUTATIONS:
        _originals[(DynamoDBBackend, name)] = getattr(DynamoDBBackend, name)
        setattr(DynamoDBBackend, name, _bump(getattr(DynamoDBBackend, name)))
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
            candidates = list(groups.get(conditions[0][1], [])) if len(conditions) == 1 else None
        else:
            candidates = None
        if candidates is None:
            return original_query(self, hash_key, *args, **kwargs)
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
        setattr(owner, name, original)
    _originals.clear()
    _groups.clear()
