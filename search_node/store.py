"""The storage interfaces the index reads and writes through; it knows no database.

The storage node owns the real database (storage_node/rdict_store.py) and hands the index a
`Txn` (its pending write batch) or a `Reader` (a snapshot or the live db); a chunked rebuild
commits through a `Committer`.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol, TypeVar


class Txn(Protocol):
    """One pending write batch; reads see the batch's own earlier writes."""

    def get(self, cf: str, key: bytes) -> bytes | None: ...
    def multi_get(self, cf: str, keys: list[bytes]) -> list[bytes | None]: ...
    def put(self, cf: str, key: bytes, value: bytes) -> None: ...
    def delete(self, cf: str, key: bytes) -> None: ...


class Cursor(Protocol):
    """One RocksDB iterator, sought again and again (cheaper than a new iterator per lookup).
    It reads the state of its creation; one walk at a time."""

    def walk(self, start: bytes) -> Iterator[tuple[bytes, bytes]]: ...


class Reader(Protocol):
    """Committed state (a RocksDB snapshot or the live db)."""

    def get(self, cf: str, key: bytes) -> bytes | None: ...
    def multi_get(self, cf: str, keys: list[bytes]) -> list[bytes | None]: ...
    def scan(self, cf: str, start: bytes, end: bytes | None) -> Iterator[tuple[bytes, bytes]]:
        """(key, value) in [start, end) in key order; end None: to the end of the column family."""
        ...

    def cursor(self, cf: str) -> Cursor: ...


TxnT = TypeVar("TxnT", bound=Txn)


class Committer(Protocol[TxnT]):
    """Writes batches of its own: a chunked rebuild commits its intermediate chunks through it
    (each commits the transactions it made)."""

    def new_txn(self) -> TxnT: ...
    def commit(self, txn: TxnT) -> None: ...


AnyCommitter = Committer[Any]
