"""Two-tier bitmap storage: a roaring base rewritten rarely, and a packed tail that new doc numbers append to.

Every logical bitmap key has a base (key + 0x00, portable roaring) and a tail (key + 0x01,
little-endian uint32 doc numbers). Adding a doc appends 4 bytes to the tail, with no bitmap
decoded; once the tail holds more than TAIL_MAX numbers it folds into the base. Posting
lists may keep doc numbers of removed docs until a fold drops them (`dead`, the user's
deleted-docs bitmap), so readers intersect with the live docs.
"""
from __future__ import annotations

import struct
import sys
from array import array
from collections.abc import Callable, Iterator

from pyroaring import BitMap

from search_node.store import Reader, Txn

BASE, TAIL = b"\x00", b"\x01"
TAIL_MAX = 64
_ONE = struct.Struct("<I")
_TAIL_BYTES = TAIL_MAX * _ONE.size
_SWAP = sys.byteorder != "little"


def pack_tail(docnums: list[int]) -> bytes:
    if len(docnums) == 1:
        return _ONE.pack(docnums[0])
    packed = array("I", docnums)
    if _SWAP:
        packed.byteswap()
    return packed.tobytes()


def tail_bitmap(data: bytes | None) -> BitMap:
    if not data:
        return BitMap()
    numbers = array("I", data)
    if _SWAP:
        numbers.byteswap()
    return BitMap(numbers)


def base_bitmap(data: bytes | None) -> BitMap:
    return BitMap.deserialize(data) if data else BitMap()


def decode_tier(key: bytes, value: bytes) -> BitMap:
    """The doc numbers of one stored tier (the key's last byte says which)."""
    return tail_bitmap(value) if key[-1:] == TAIL else base_bitmap(value)


def read_bitmap(reader: Reader | Txn, cf: str, key: bytes) -> BitMap:
    """Both tiers of one logical bitmap."""
    base, tail = reader.multi_get(cf, [key + BASE, key + TAIL])
    bm = base_bitmap(base)
    if tail:
        bm |= tail_bitmap(tail)
    return bm


def scan_bitmaps(reader: Reader, cf: str, start: bytes, end: bytes) -> Iterator[tuple[bytes, BitMap]]:
    """(logical key, bitmap) of every bitmap in a key range, tiers merged."""
    last: bytes | None = None
    acc = BitMap()
    for key, value in reader.scan(cf, start, end):
        logical = key[:-1]
        if logical != last:
            if last is not None:
                yield last, acc
            last, acc = logical, decode_tier(key, value)
        else:
            acc |= decode_tier(key, value)
    if last is not None:
        yield last, acc


def _store_base(txn: Txn, cf: str, key: bytes, bm: BitMap) -> None:
    if bm:
        bm.run_optimize()
        txn.put(cf, key + BASE, bm.serialize())
    else:
        txn.delete(cf, key + BASE)


class BitmapChanges:
    """Bitmap edits gathered over one operation (or a chunk of a rebuild), applied once per key.

    `dead` yields the doc numbers that a fold of a bitmap in column family `purge_cf` may
    drop (removed docs); it is called at most once, and only if such a bitmap folds.
    """

    def __init__(self, purge_cf: str | None = None, dead: Callable[[], BitMap] | None = None) -> None:
        self._adds: dict[str, dict[bytes, list[int]]] = {}
        self._discards: dict[str, dict[bytes, list[int]]] = {}
        self._purge_cf = purge_cf
        self._dead_source = dead
        self._dead: BitMap | None = None

    def add(self, cf: str, key: bytes, docnum: int) -> None:
        self._adds.setdefault(cf, {}).setdefault(key, []).append(docnum)

    def add_keys(self, cf: str, keys: list[bytes], docnum: int) -> None:
        """One doc into many bitmaps (the hot path of indexing)."""
        adds = self._adds.setdefault(cf, {})
        for key in keys:
            docs = adds.get(key)
            if docs is None:
                adds[key] = [docnum]
            else:
                docs.append(docnum)

    def discard(self, cf: str, key: bytes, docnum: int) -> None:
        self._discards.setdefault(cf, {}).setdefault(key, []).append(docnum)

    def apply(self, txn: Txn) -> None:
        """Write both tiers in the caller's batch: adds append to the tail, which folds into the base when full."""
        for cf, adds in self._adds.items():
            discards = self._discards.get(cf, {})
            keys = list(adds)
            tails = txn.multi_get(cf, [k + TAIL for k in keys])
            for key, old, docs in zip(keys, tails, adds.values()):
                gone = discards.pop(key, None)
                new = pack_tail(docs)
                if gone is None and (old is None or len(old) + len(new) <= _TAIL_BYTES):
                    txn.put(cf, key + TAIL, old + new if old else new)
                else:
                    self._fold(txn, cf, key, (old or b"") + new, gone)
        for cf, discards in self._discards.items():
            for key, gone in discards.items():
                self._fold(txn, cf, key, txn.get(cf, key + TAIL), gone)
        self._adds.clear()
        self._discards.clear()

    def _fold(self, txn: Txn, cf: str, key: bytes, tail: bytes | None, gone: list[int] | None) -> None:
        base = base_bitmap(txn.get(cf, key + BASE))
        base |= tail_bitmap(tail)
        if gone:
            base.difference_update(BitMap(gone))
        if cf == self._purge_cf and self._dead_source is not None:
            if self._dead is None:
                self._dead = self._dead_source()
            base -= self._dead
        _store_base(txn, cf, key, base)
        if tail is not None:
            txn.delete(cf, key + TAIL)
