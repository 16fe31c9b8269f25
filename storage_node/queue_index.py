"""The outgoing queue's due index: which directory entries of a queue shard are due when.

Queue items are directory entries (`queue:SHARD:ID`, a serialized `tidings.v1.QueueItem`)
and replicate like any directory entry (LWW by version, hints, anti-entropy). Each replica
derives its own due index from the items it holds, in the same batch that writes them (as
folder counters are derived), so the index is exact on every replica and converges when the
items do. An item whose `due_ms` is 0 has nothing left to do and is not indexed.
"""
from __future__ import annotations

from google.protobuf.message import DecodeError

from storage_node import keys
from storage_node.batch import Txn
from tidings.v1 import queue_pb2
from tidings_runtime.partitions import QUEUE_PREFIX


def is_queue_item(key: str) -> bool:
    return key.startswith(QUEUE_PREFIX)


def due_of(value: bytes) -> int:
    """An item's due time (0: not due, or not an item we can read)."""
    item = queue_pb2.QueueItem()
    try:
        item.ParseFromString(value)
    except DecodeError:
        return 0
    return max(item.due_ms, 0)


def reindex(txn: Txn, key: str, old_value: bytes | None, new_value: bytes) -> None:
    """Move a queue item's index entry from its old due time to its new one."""
    old_due = due_of(old_value) if old_value else 0
    new_due = due_of(new_value)
    if old_due == new_due:
        return
    if old_due:
        txn.delete(keys.CF_QUEUE_DUE, keys.queue_due(key, old_due))
    if new_due:
        txn.put(keys.CF_QUEUE_DUE, keys.queue_due(key, new_due), b"")
