"""Two-tier doc bitmaps: a roaring base rewritten rarely, and a packed tail that new doc numbers append to.

Every logical bitmap key (all, displaced, flags, folders, size slices) has a base (keys.Tier.BASE,
portable roaring) and a tail (keys.Tier.TAIL: little-endian uint32 doc numbers). Adding a doc
appends 4 bytes to the tail, with no bitmap decoded; once the tail holds more than TAIL_MAX
numbers, or a doc leaves the bitmap, the tail folds into the base.
"""
from __future__ import annotations

import sys
from array import array
from collections.abc import Iterator

from pyroaring import BitMap

from search_node.keys import Tier, split_tier, tier_key
from search_node.store import Reader, Txn

TAIL_MAX = 64
_TAIL_BYTES = TAIL_MAX * 4
_SWAP = sys.byteorder != "little"


def pack_tail(docnums: list[int]) -> bytes:
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


def decode_tier(tier: Tier, value: bytes) -> BitMap:
    """The doc numbers of one stored tier."""
    return tail_bitmap(value) if tier is Tier.TAIL else base_bitmap(value)


def read_bitmap(reader: Reader | Txn, cf: str, key: bytes) -> BitMap:
    """Both tiers of one logical bitmap."""
    base, tail = reader.multi_get(cf, [tier_key(key, Tier.BASE), tier_key(key, Tier.TAIL)])
    bm = base_bitmap(base)
    if tail:
        bm |= tail_bitmap(tail)
    return bm


def scan_bitmaps(reader: Reader, cf: str, start: bytes, end: bytes) -> Iterator[tuple[bytes, BitMap]]:
    """(logical key, bitmap) of every bitmap in a key range, tiers merged."""
    last: bytes | None = None
    acc = BitMap()
    for key, value in reader.scan(cf, start, end):
        logical, tier = split_tier(key)
        if logical != last:
            if last is not None:
                yield last, acc
            last, acc = logical, decode_tier(tier, value)
        else:
            acc |= decode_tier(tier, value)
    if last is not None:
        yield last, acc


class BitmapChanges:
    """Bitmap edits gathered over one operation (or a chunk of a rebuild), applied once per key."""

    def __init__(self) -> None:
        self._adds: dict[str, dict[bytes, list[int]]] = {}
        self._discards: dict[str, dict[bytes, list[int]]] = {}

    def add_keys(self, cf: str, keys: list[bytes], docnum: int) -> None:
        """One doc into many bitmaps."""
        adds = self._adds.setdefault(cf, {})
        for key in keys:
            adds.setdefault(key, []).append(docnum)

    def discard(self, cf: str, key: bytes, docnum: int) -> None:
        self._discards.setdefault(cf, {}).setdefault(key, []).append(docnum)

    def apply(self, txn: Txn) -> None:
        """Write both tiers in the caller's batch: adds append to the tail, which folds into the base when full."""
        for cf, adds in self._adds.items():
            discards = self._discards.get(cf, {})
            keys = list(adds)
            for key, old in zip(keys, txn.multi_get(cf, [tier_key(k, Tier.TAIL) for k in keys])):
                tail = (old or b"") + pack_tail(adds[key])
                gone = discards.pop(key, None)
                if gone is None and len(tail) <= _TAIL_BYTES:
                    txn.put(cf, tier_key(key, Tier.TAIL), tail)
                else:
                    self._fold(txn, cf, key, tail, gone)
        for cf, discards in self._discards.items():
            for key, gone in discards.items():
                self._fold(txn, cf, key, txn.get(cf, tier_key(key, Tier.TAIL)), gone)
        self._adds.clear()
        self._discards.clear()

    @staticmethod
    def _fold(txn: Txn, cf: str, key: bytes, tail: bytes | None, gone: list[int] | None) -> None:
        """Merge the tail into the base, dropping `gone`; the tail is emptied."""
        base_key, tail_key = tier_key(key, Tier.BASE), tier_key(key, Tier.TAIL)
        base = base_bitmap(txn.get(cf, base_key))
        base |= tail_bitmap(tail)
        if gone:
            base.difference_update(BitMap(gone))
        if base:
            base.run_optimize()
            txn.put(cf, base_key, base.serialize())
        else:
            txn.delete(cf, base_key)
        if tail:
            txn.delete(cf, tail_key)
