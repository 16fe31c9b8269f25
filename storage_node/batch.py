"""A mutation as one RocksDB WriteBatch: pending puts and deletes with read-your-writes.

Group commit runs many mutations into one batch: each mutation writes into its own
child `Txn`, which is folded into the group only if the mutation succeeds, so a
mutation that fails leaves nothing behind.
"""
from __future__ import annotations

from typing import Callable, Iterator

from rocksdict import WriteBatch

_DELETED = None


class Txn:
    """Implements search_node's Txn protocol over a dict overlay and a reader."""

    def __init__(self, read: Callable[[str, bytes], bytes | None]) -> None:
        self._read = read
        self._overlay: dict[tuple[str, bytes], bytes | None] = {}

    def get(self, cf: str, key: bytes) -> bytes | None:
        slot = (cf, key)
        if slot in self._overlay:
            return self._overlay[slot]
        return self._read(cf, key)

    def put(self, cf: str, key: bytes, value: bytes) -> None:
        self._overlay[(cf, key)] = value

    def delete(self, cf: str, key: bytes) -> None:
        self._overlay[(cf, key)] = _DELETED

    def child(self) -> "Txn":
        return Txn(self.get)

    def fold_into(self, parent: "Txn") -> None:
        parent._overlay.update(self._overlay)

    def __len__(self) -> int:
        return len(self._overlay)

    def items(self) -> Iterator[tuple[str, bytes, bytes | None]]:
        for (cf, key), value in self._overlay.items():
            yield cf, key, value

    def to_write_batch(self, handle: Callable[[str], object]) -> WriteBatch:
        batch = WriteBatch(raw_mode=True)
        for cf, key, value in self.items():
            if value is _DELETED:
                batch.delete(key, handle(cf))
            else:
                batch.put(key, value, handle(cf))
        return batch
