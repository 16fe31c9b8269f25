"""A mutation as one RocksDB WriteBatch: pending puts and deletes with read-your-writes.

Group commit runs many mutations into one batch: each mutation writes into its own
child `Txn`, which is folded into the group only if the mutation succeeds, so a
mutation that fails leaves nothing behind.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Protocol

from rocksdict import ColumnFamily, WriteBatch

from storage_node.rdict_store import read_through

_DELETED = None


class Source(Protocol):
    """What a Txn reads through: the engine's committed state, or a parent Txn."""

    def get(self, cf: str, key: bytes) -> bytes | None: ...
    def multi_get(self, cf: str, keys: list[bytes]) -> list[bytes | None]: ...


class Txn:
    """Implements search_node's Txn protocol over a dict overlay and a reader.

    Range deletes (`delete_range`) come first in the written batch; a key put after a
    range delete that covers it is kept in the overlay, so it is written after the range
    delete and survives, as in RocksDB's own ordered WriteBatch.
    """

    def __init__(self, source: Source) -> None:
        self._source = source
        self._overlay: dict[tuple[str, bytes], bytes | None] = {}
        self._ranges: list[tuple[str, bytes, bytes]] = []

    def get(self, cf: str, key: bytes) -> bytes | None:
        slot = (cf, key)
        if slot in self._overlay:
            return self._overlay[slot]
        if self._ranges and self._range_deleted(cf, key):
            return _DELETED
        return self._source.get(cf, key)

    def multi_get(self, cf: str, keys: list[bytes]) -> list[bytes | None]:
        """Like get for each key, with one read of the source for all keys the batch has not written."""
        hidden = (lambda key: self._range_deleted(cf, key)) if self._ranges else None
        return read_through(self._overlay, cf, keys, self._source.multi_get, hidden)

    def _range_deleted(self, cf: str, key: bytes) -> bool:
        return any(c == cf and start <= key < end for c, start, end in self._ranges)

    def put(self, cf: str, key: bytes, value: bytes) -> None:
        self._overlay[(cf, key)] = value

    def delete(self, cf: str, key: bytes) -> None:
        self._overlay[(cf, key)] = _DELETED

    def delete_range(self, cf: str, start: bytes, end: bytes) -> None:
        """Delete every key in [start, end) of one column family."""
        self._overlay = {(c, k): v for (c, k), v in self._overlay.items() if c != cf or not start <= k < end}
        self._ranges.append((cf, start, end))

    def child(self) -> Txn:
        return Txn(self)

    def fold_into(self, parent: Txn) -> None:
        for cf, start, end in self._ranges:
            parent.delete_range(cf, start, end)
        parent._overlay.update(self._overlay)

    def __len__(self) -> int:
        return len(self._overlay) + len(self._ranges)

    def items(self) -> Iterator[tuple[str, bytes, bytes | None]]:
        for (cf, key), value in self._overlay.items():
            yield cf, key, value

    def to_write_batch(self, handle: Callable[[str], ColumnFamily]) -> WriteBatch:
        batch = WriteBatch(raw_mode=True)
        for cf, start, end in self._ranges:
            batch.delete_range(start, end, handle(cf))
        for cf, key, value in self.items():
            if value is _DELETED:
                batch.delete(key, handle(cf))
            else:
                batch.put(key, value, handle(cf))
        return batch
