"""The node's RocksDB through rocksdict: column families, reads, iterators and write batches.

`RdictStore` is a `search_node.store.Reader` of its live state; `RdictTxn` and `RdictChunks`
are the search index's `Txn` and `Committer` over it, for the index's own tests and the
benchmarks (the node's `Engine` builds on `RdictStore` and batches with storage_node/batch.py).
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Self

from rocksdict import BlockBasedOptions, ColumnFamily, Options, Rdict, WriteBatch, WriteOptions

from search_node.store import Txn

_MISSING = object()


def read_through(written: Mapping[tuple[str, bytes], bytes | None], cf: str, keys: list[bytes],
                 read: Callable[[str, list[bytes]], list[bytes | None]],
                 hidden: Callable[[bytes], bool] | None = None) -> list[bytes | None]:
    """multi_get of a layer over a store: what the layer holds for (cf, key) first (None: deleted),
    keys `hidden` by it as absent, the rest in one `read` of what lies under it."""
    found = [written.get((cf, key), _MISSING) for key in keys]
    if hidden is not None:
        found = [None if hit is _MISSING and hidden(key) else hit for key, hit in zip(keys, found)]
    wanted = [key for key, hit in zip(keys, found) if hit is _MISSING]
    if wanted:
        stored = iter(read(cf, wanted))
        found = [next(stored) if hit is _MISSING else hit for hit in found]
    return found  # type: ignore[return-value]


def column_options() -> Options:
    """Raw mode with bloom filters: most index writes probe keys that do not exist yet."""
    options = Options(raw_mode=True)
    table = BlockBasedOptions()
    table.set_bloom_filter(10, False)
    options.set_block_based_table_factory(table)
    return options


class RdictStore:
    """A raw-mode Rdict with named column families; a `Reader` of its live state."""

    def __init__(self, path: str, column_families: Iterable[str], *, sync: bool = False) -> None:
        options = column_options()
        options.create_if_missing(True)
        options.create_missing_column_families(True)
        wanted = list(column_families)
        existing = Rdict.list_cf(path) if os.path.exists(os.path.join(path, "CURRENT")) else []
        names = [n for n in dict.fromkeys([*existing, *wanted]) if n != "default"]
        self._db = Rdict(path, options, column_families={n: column_options() for n in names})
        # Any: rocksdict's stubs do not know raw mode, where keys and values are always bytes.
        self._cfs: dict[str, Any] = {n: self._db.get_column_family(n) for n in names}
        self._handles = {n: self._db.get_column_family_handle(n) for n in names}
        # A synced write is an unsynced one and then flush_wal(sync=True), the same durability:
        # rocksdict holds the GIL through a synced write, fsync included (every other thread of
        # the node, its event loop first, stalls ~5 ms a write: bench/synced_write_stall.py),
        # and lets it go through flush_wal. The batch is visible to readers of this node from
        # the write on, before the sync: what a reader sees then is an unacknowledged write,
        # which the replication model already allows a reader to see.
        self._sync = sync
        self._write_options = WriteOptions()

    def close(self) -> None:
        # Column family views and handles hold the database open: drop them so the LOCK is released.
        self._cfs.clear()
        self._handles.clear()
        self._db.close()

    def handle(self, cf: str) -> ColumnFamily:
        """The column family handle that WriteBatch operations name."""
        return self._handles[cf]

    def get(self, cf: str, key: bytes) -> bytes | None:
        value: bytes | None = self._cfs[cf].get(key)
        return value

    def multi_get(self, cf: str, keys: list[bytes]) -> list[bytes | None]:
        return self._cfs[cf].get(keys) if keys else []

    def scan(self, cf: str, start: bytes, end: bytes | None) -> Iterator[tuple[bytes, bytes]]:
        """(key, value) in [start, end) in key order; end None: to the end of the column family.

        The bound is checked here. Returning rocksdict's lazy iterator over a ReadOptions upper
        bound made the differential test fail (a scan ran past its bound), while reading it
        through while the ReadOptions lived passed: the iterator seems not to keep its bound
        alive."""
        for key, value in self._cfs[cf].items(from_key=start):
            if end is not None and key >= end:
                return
            yield key, value

    def cursor(self, cf: str) -> RdictCursor:
        return RdictCursor(self._cfs[cf].iter())

    def txn(self) -> RdictTxn:
        return RdictTxn(self)

    def write(self, batch: WriteBatch) -> None:
        self._db.write(batch, self._write_options)
        if self._sync:
            self._db.flush_wal(True)


class RdictCursor:
    """A Cursor over a rocksdict iterator."""

    def __init__(self, iterator: Any) -> None:
        self._it = iterator

    def walk(self, start: bytes) -> Iterator[tuple[bytes, bytes]]:
        """(key, value) from `start` on, in key order, until the caller stops."""
        it = self._it
        it.seek(start)
        while it.valid():
            yield it.key(), it.value()
            it.next()


class RdictTxn:
    """A WriteBatch plus a dict overlay so reads see the batch's own writes."""

    def __init__(self, store: RdictStore) -> None:
        self._store = store
        self._batch = WriteBatch(raw_mode=True)
        self._overlay: dict[tuple[str, bytes], bytes | None] = {}

    def get(self, cf: str, key: bytes) -> bytes | None:
        hit = self._overlay.get((cf, key), self)
        if hit is not self:
            return hit  # type: ignore[return-value]
        return self._store.get(cf, key)

    def multi_get(self, cf: str, keys: list[bytes]) -> list[bytes | None]:
        """The batch's own writes first; the rest in one read of the store."""
        return read_through(self._overlay, cf, keys, self._store.multi_get)

    def put(self, cf: str, key: bytes, value: bytes) -> None:
        self._overlay[(cf, key)] = value
        self._batch.put(key, value, self._store._handles[cf])

    def delete(self, cf: str, key: bytes) -> None:
        self._overlay[(cf, key)] = None
        self._batch.delete(key, self._store._handles[cf])

    def commit(self) -> None:
        self._store.write(self._batch)
        self._batch = WriteBatch(raw_mode=True)
        self._overlay.clear()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is None:
            self.commit()


class RdictChunks:
    """A Committer over an RdictStore."""

    def __init__(self, store: RdictStore) -> None:
        self._store = store

    def new_txn(self) -> Txn:
        return self._store.txn()

    def commit(self, txn: Txn) -> None:
        assert isinstance(txn, RdictTxn)
        txn.commit()
