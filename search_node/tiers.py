"""Two-tier bitmap storage: a roaring base rewritten rarely, and a packed tail that new doc numbers append to.

Every logical bitmap key has a base (key + 0x00, portable roaring) and a tail (key + 0x01):
a header (adds counted until the term became common, `since`) and little-endian uint32 doc
numbers. Adding a doc appends 4
bytes to the tail, with no bitmap decoded; once the tail holds more than TAIL_MAX numbers it
folds into the base (the header stays). `since` is the doc number of the COMMON-th add, or
NEVER: from that doc on the bitmap's term counts as common (pair postings, see index.py).
Posting lists may keep doc numbers of removed docs until a fold drops them (`dead`, the
user's deleted-docs bitmap), so readers intersect with the live docs.
"""
from __future__ import annotations

import struct
import sys
from array import array
from collections.abc import Callable, Iterator

from pyroaring import BitMap

from search_node.store import Reader, Txn, read_through

BASE, TAIL = b"\x00", b"\x01"
TAIL_MAX = 64
COMMON = 128  # adds after which a term is common (a phrase verifies about this many docs per field)
NEVER = 0xFFFFFFFF
_ONE = struct.Struct("<I")
_HEADER = struct.Struct("<II")  # adds until common (then frozen: nothing reads it), since
_SINCE_NEVER = _ONE.pack(NEVER)
_TAIL_BYTES = _HEADER.size + TAIL_MAX * _ONE.size
_SWAP = sys.byteorder != "little"
Header = tuple[int, int]
EMPTY: Header = (0, NEVER)


def tail_header(data: bytes | None) -> Header:
    return _HEADER.unpack_from(data) if data else EMPTY  # type: ignore[return-value]


def advance(header: Header, docnums: list[int]) -> Header:
    """The header after adding `docnums` (in order); a common term's header no longer changes."""
    count, since = header
    if since != NEVER:
        return header
    if count + len(docnums) >= COMMON:
        since = docnums[COMMON - count - 1]
    return count + len(docnums), since


def pack_tail(docnums: list[int]) -> bytes:
    if len(docnums) == 1:
        return _ONE.pack(docnums[0])
    packed = array("I", docnums)
    if _SWAP:
        packed.byteswap()
    return packed.tobytes()


def appended(tail: bytes | None, docnums: list[int]) -> bytes:
    """A tail (or None: no tail yet) with `docnums` added; a common term's tail just grows."""
    added = _ONE.pack(docnums[0]) if len(docnums) == 1 else pack_tail(docnums)
    if not tail:
        return _HEADER.pack(*advance(EMPTY, docnums)) + added
    if tail[4:_HEADER.size] != _SINCE_NEVER:
        return tail + added
    return _HEADER.pack(*advance(_HEADER.unpack_from(tail), docnums)) + tail[_HEADER.size:] + added  # type: ignore[arg-type]


def tail_bitmap(data: bytes | None) -> BitMap:
    if not data or len(data) <= _HEADER.size:
        return BitMap()
    numbers = array("I", data[_HEADER.size:])
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


def union_range(reader: Reader, cf: str, start: bytes, end: bytes, fields: frozenset[int]) -> BitMap:
    """The union of every posting bitmap in a key range whose field (the logical key's last byte) is
    in `fields`: one pass, and no per-key bitmaps for tails (their numbers go into one array)."""
    bases: list[BitMap] = []
    numbers = array("I")
    tail, header = TAIL[0], _HEADER.size
    for key, value in reader.scan(cf, start, end):
        if key[-2] not in fields:
            continue
        if key[-1] == tail:
            numbers.frombytes(memoryview(value)[header:])
        else:
            bases.append(BitMap.deserialize(value))
    if _SWAP:
        numbers.byteswap()
    bases.append(BitMap(numbers))
    return BitMap.union(*bases)


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
        self._tails: dict[tuple[str, bytes], bytes | None] = {}

    def prefetch(self, txn: Txn, cf: str, keys: list[bytes]) -> list[Header]:
        """Read the tails of `keys` now (apply will not read them again); their headers."""
        tails = txn.multi_get(cf, [k + TAIL for k in keys])
        self._tails.update(zip([(cf, k) for k in keys], tails))
        return [tail_header(t) for t in tails]

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
        put = txn.put
        for cf, adds in self._adds.items():
            discards = self._discards.get(cf, {})
            for key, old, docs in zip(adds, self._read_tails(txn, cf, list(adds)), adds.values()):
                tail = appended(old, docs)
                gone = discards.pop(key, None) if discards else None
                if gone is None and len(tail) <= _TAIL_BYTES:
                    put(cf, key + TAIL, tail)
                else:
                    self._fold(txn, cf, key, tail, gone)
        for cf, discards in self._discards.items():
            for key, gone in discards.items():
                self._fold(txn, cf, key, txn.get(cf, key + TAIL), gone)
        self._adds.clear()
        self._discards.clear()
        self._tails.clear()

    def _read_tails(self, txn: Txn, cf: str, keys: list[bytes]) -> list[bytes | None]:
        """Tails of `keys`: prefetched ones as read then, the rest in one multi_get."""
        return read_through(self._tails, cf, keys, lambda cf, unknown: txn.multi_get(cf, [k + TAIL for k in unknown]))

    def _fold(self, txn: Txn, cf: str, key: bytes, tail: bytes | None, gone: list[int] | None) -> None:
        """Merge the tail into the base, dropping `gone` (and dead docs); the tail keeps its header."""
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
            txn.put(cf, key + TAIL, tail[:_HEADER.size])
