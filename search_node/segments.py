"""Posting segments, the layout: a user's postings as immutable sorted runs over doc-number ranges.

A message's postings are written in the message's own batch as one *fresh record*: its
sorted posting keys (kind | term | 0x00 | field) joined by 0xff, a byte UTF-8 never holds.
A maintenance step (maintenance.py), planned off the commit path and applied in a batch of
its own, *seals* the next SEAL_DOCS doc numbers' fresh records into one segment, then merges
MERGE_FANOUT segments of equal span into one, as a binary counter carries (spans
SEAL_DOCS·8^k, up to MAX_SPAN). So adding a message costs a handful of writes however many
terms it has, and each posting is rewritten about log8(MAX_SPAN/SEAL_DOCS) + 1 times, in bulk.

A user's *directory* (keys.dir_key) holds a nonce, the sealed-through doc number and the
segments' spans. A segment lives in search_postings as blocks keyed by its prefix and the last
key of the block (keys.block_key), so one seek finds the block that holds a key.
A block: nkeys, keys length (uint32 LE), the keys joined by 0xff, one byte per key (1: its docs
are portable roaring, for keys with BIG docs or more; 0: ascending uint32 LE), nkeys + 1 byte
offsets into the doc region, the doc region. Segments of SUMMARY_SPAN or more also hold a
summary per short prefix of their plain-field terms. Removed docs stay in segments (queries
cut every result to the live docs); merges drop those already gone. Reading: segment_reader.py.
"""
from __future__ import annotations

import operator
import os
import struct
import sys
from array import array
from bisect import bisect_left
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import chain, compress

import numpy as np
from pyroaring import BitMap

from search_node.fields import PLAIN_FIELDS
from search_node.keys import (
    KEY_END,
    POSTINGS_CF,
    TERM,
    block_key,
    block_last_key,
    kind_range,
    posting_field,
    posting_term,
    segment_range,
    summary_key,
)
from search_node.store import Reader

SEAL_DOCS = 32
MERGE_FANOUT = 8
MAX_SPAN = SEAL_DOCS * MERGE_FANOUT ** 3  # 16,384 doc numbers
SUMMARY_CHARS = 3  # summaries for prefixes of 1 to 3 characters, the broad ones
SUMMARY_SPAN = SEAL_DOCS * MERGE_FANOUT ** 2  # segments this wide or wider carry summaries
PLAIN_CODES = frozenset(f.code for f in PLAIN_FIELDS)
GRACE_MS = 10_000  # what a maintenance step replaces stays this long, so a search that read the old directory finds it
BLOCK_KEYS = 128
BIG = 64  # a key with this many docs in a segment keeps them as portable roaring (deserialized at memory speed)
SEP = KEY_END  # between the keys of a fresh record or a block: no posting key holds it
_SPAN = struct.Struct(">II")
_DIR_HEAD = struct.Struct(">8sI")
_BLOCK_HEAD = struct.Struct("<II")
_SWAP = sys.byteorder != "little"
_U32 = np.dtype("<u4")
Span = tuple[int, int]


def fresh_record(texts: Iterable[str]) -> bytes:
    """A doc's posting keys (as text, see fields.posting_texts) as stored: sorted, 0xff before, between
    and after, so `SEP + key + SEP` finds one. Code point order is UTF-8 byte order, and the lone
    surrogate U+DCFF encodes (surrogateescape) to the byte 0xff."""
    return ("\udcff" + "\udcff".join(sorted(texts)) + "\udcff").encode("utf-8", "surrogateescape")


def fresh_keys(record: bytes) -> list[bytes]:
    return record[1:-1].split(SEP) if len(record) > 2 else []


@dataclass(frozen=True)
class Directory:
    nonce: bytes
    sealed: int = 0  # doc numbers below this are in segments, the rest in fresh records
    spans: tuple[Span, ...] = ()

    @classmethod
    def new(cls) -> Directory:
        return cls(os.urandom(8))

    def to_seal(self, next_docnum: int) -> bool:
        """Whether SEAL_DOCS fresh docs wait above the sealed mark (a step can seal them)."""
        return next_docnum - self.sealed >= SEAL_DOCS

    def encode(self) -> bytes:
        return _DIR_HEAD.pack(self.nonce, self.sealed) + b"".join(_SPAN.pack(*s) for s in self.spans)

    @classmethod
    def decode(cls, data: bytes) -> Directory:
        nonce, sealed = _DIR_HEAD.unpack_from(data)
        spans = tuple(_SPAN.iter_unpack(data[_DIR_HEAD.size:]))
        return cls(nonce, sealed, spans)


# --- runs: sorted keys with their doc lists, in memory -----------------------------------

@dataclass
class Run:
    """Sorted distinct keys, each with counts[i] doc numbers; `docs` holds them key after key."""

    keys: list[bytes]
    counts: np.ndarray
    docs: np.ndarray

    @classmethod
    def of_doc(cls, docnum: int, keys: list[bytes]) -> Run:
        return cls(keys, np.ones(len(keys), dtype=np.uint32), np.full(len(keys), docnum, dtype=np.uint32))


def _gather(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Indices of the slices [starts[i], starts[i] + counts[i]) one after another (int64 arrays)."""
    ends = np.cumsum(counts)
    gathered: np.ndarray = np.arange(int(ends[-1]), dtype=np.int64) + np.repeat(starts - (ends - counts), counts)
    return gathered


def merge(runs: list[Run], live: BitMap | None = None) -> Run:
    """One run of several whose doc ranges ascend in list order; docs outside `live` are dropped."""
    keys = list(chain.from_iterable(r.keys for r in runs))
    if not keys:
        return Run([], np.zeros(0, np.uint32), np.zeros(0, np.uint32))
    counts = np.concatenate([r.counts for r in runs]).astype(np.int64)
    docs = np.concatenate([r.docs for r in runs])
    starts = np.cumsum(counts) - counts
    order = sorted(range(len(keys)), key=keys.__getitem__)  # stable: a key's docs stay ascending
    sorted_keys = operator.itemgetter(*order)(keys) if len(order) > 1 else (keys[0],)
    first = np.fromiter(chain((True,), map(operator.ne, sorted_keys[1:], sorted_keys)), dtype=bool,
                        count=len(sorted_keys))
    index = np.asarray(order, dtype=np.int64)
    c = counts[index]
    out_docs = docs[_gather(starts[index], c)]
    out_counts = np.add.reduceat(c, np.flatnonzero(first))
    out_keys = list(compress(sorted_keys, first))
    if live is not None and len(out_docs):
        keep = np.isin(out_docs, np.frombuffer(live.to_array(), dtype=np.uint32) if live else np.zeros(0, np.uint32))
        if not keep.all():
            owner = np.repeat(np.arange(len(out_keys)), out_counts)
            out_counts = np.bincount(owner[keep], minlength=len(out_keys))
            out_docs = out_docs[keep]
            nonempty = out_counts > 0
            out_keys = list(compress(out_keys, nonempty.tolist()))
            out_counts = out_counts[nonempty]
    return Run(out_keys, out_counts.astype(np.uint32), out_docs.astype(np.uint32))


def with_summaries(run: Run) -> Run:
    """The run plus a summary per 1 to SUMMARY_CHARS character prefix of its plain-field terms."""
    lo, hi = (bisect_left(run.keys, bound) for bound in kind_range(TERM))
    groups: dict[bytes, int] = {}
    picked, owners = [], []
    last, ids = b"", []
    for k in range(lo, hi):
        key = run.keys[k]
        if posting_field(key) not in PLAIN_CODES:
            continue
        if posting_term(key) != last:  # one term's fields are neighbours: its prefixes are worked out once
            last = posting_term(key)
            term = last.decode()
            ids = [groups.setdefault(summary_key(term[:n]), len(groups))
                   for n in range(1, min(len(term), SUMMARY_CHARS) + 1)]
        picked.extend([k] * len(ids))
        owners.extend(ids)
    if not groups:
        return run
    names = sorted(groups)
    rank = np.empty(len(names), dtype=np.int64)
    rank[[groups[name] for name in names]] = np.arange(len(names))
    starts = np.concatenate(([0], np.cumsum(run.counts, dtype=np.int64)))
    index = np.asarray(picked, dtype=np.int64)
    c = run.counts[index].astype(np.int64)
    docs = run.docs[_gather(starts[index], c)].astype(np.int64)
    pairs = np.sort((np.repeat(rank[np.asarray(owners)], c) << 32) | docs)
    pairs = pairs[np.concatenate(([True], pairs[1:] != pairs[:-1]))]  # a doc once per summary
    counts = np.bincount(pairs >> 32, minlength=len(names)).astype(np.uint32)
    summary_docs = (pairs & 0xFFFFFFFF).astype(np.uint32)
    return Run(run.keys + names, np.concatenate((run.counts, counts)), np.concatenate((run.docs, summary_docs)))


def _roaring(docs: np.ndarray) -> bytes:
    numbers = array("I")
    numbers.frombytes(docs.tobytes())
    if _SWAP:
        numbers.byteswap()
    bm = BitMap(numbers)
    bm.run_optimize()
    return bm.serialize()


def encode_blocks(prefix: bytes, run: Run) -> Iterator[tuple[bytes, bytes]]:
    """(key, value) of the blocks that store `run` under a segment's prefix."""
    ends = np.concatenate(([0], np.cumsum(run.counts, dtype=np.int64)))
    docs = run.docs.astype(_U32)
    big = run.counts >= BIG
    for a in range(0, len(run.keys), BLOCK_KEYS):
        b = min(a + BLOCK_KEYS, len(run.keys))
        joined = SEP.join(run.keys[a:b])
        kinds = big[a:b]
        if not kinds.any():
            region = docs[ends[a]:ends[b]].tobytes()
            offsets = ((ends[a:b + 1] - ends[a]) * 4).astype(_U32)
        else:
            sizes = run.counts[a:b].astype(np.int64) * 4
            pieces, k = [], a
            for big_key in (np.flatnonzero(kinds) + a).tolist():  # plain neighbours go as one slice
                if big_key > k:
                    pieces.append(docs[ends[k]:ends[big_key]].tobytes())
                pieces.append(_roaring(docs[ends[big_key]:ends[big_key + 1]]))
                sizes[big_key - a] = len(pieces[-1])
                k = big_key + 1
            pieces.append(docs[ends[k]:ends[b]].tobytes())
            offsets = np.concatenate(([0], np.cumsum(sizes))).astype(_U32)
            region = b"".join(pieces)
        value = b"".join((_BLOCK_HEAD.pack(b - a, len(joined)), joined, kinds.astype(np.uint8).tobytes(),
                          offsets.tobytes(), region))
        yield block_key(prefix, run.keys[b - 1]), value


class Block:
    """One stored block, decoded lazily: keys at once, doc numbers per key on demand."""

    __slots__ = ("keys", "_value", "_kinds", "_offsets", "_at")

    def __init__(self, value: bytes) -> None:
        n, key_len = _BLOCK_HEAD.unpack_from(value)
        at = _BLOCK_HEAD.size
        self.keys = value[at:at + key_len].split(SEP)
        at += key_len
        self._kinds = value[at:at + n]
        at += n
        offsets = array("I")
        offsets.frombytes(value[at:at + 4 * (n + 1)])
        if _SWAP:
            offsets.byteswap()
        self._offsets = offsets
        self._at = at + 4 * (n + 1)
        self._value = value

    def _bytes(self, i: int, j: int) -> bytes:
        return self._value[self._at + self._offsets[i]:self._at + self._offsets[j]]

    def _plain(self, i: int, j: int) -> array[int]:
        out = array("I")
        out.frombytes(self._bytes(i, j))
        if _SWAP:
            out.byteswap()
        return out

    def bitmap(self, i: int) -> BitMap:
        """Docs of key i."""
        return BitMap.deserialize(self._bytes(i, i + 1)) if self._kinds[i] else BitMap(self._plain(i, i + 1))

    def _pieces(self, i: int, j: int) -> Iterator[tuple[int, int, bool]]:
        """Keys i..j-1 as (first, end, roaring) stretches: plain neighbours share one stretch."""
        kinds = self._kinds
        while i < j:
            big = kinds.find(b"\x01", i, j)
            if big == -1:
                yield i, j, False
                return
            if big > i:
                yield i, big, False
            yield big, big + 1, True
            i = big + 1

    def gather(self, i: int, j: int, plain: array[int], bitmaps: list[BitMap]) -> None:
        """Docs of keys i..j-1: plain lists onto `plain`, roaring ones onto `bitmaps`."""
        for a, b, roaring in self._pieces(i, j):
            if roaring:
                bitmaps.append(BitMap.deserialize(self._bytes(a, b)))
            else:
                plain.extend(self._plain(a, b))

    def run(self) -> Run:
        offsets = np.frombuffer(self._offsets, dtype=np.uint32)
        counts, docs = [], []
        for a, b, roaring in self._pieces(0, len(self.keys)):
            if roaring:
                piece = np.frombuffer(BitMap.deserialize(self._bytes(a, b)).to_array(), dtype=np.uint32)
                counts.append(np.asarray([len(piece)], dtype=np.uint32))
            else:
                piece = np.frombuffer(self._bytes(a, b), dtype=_U32)
                counts.append(np.diff(offsets[a:b + 1]) // 4)
            docs.append(piece)
        return Run(self.keys, np.concatenate(counts).astype(np.uint32), np.concatenate(docs).astype(np.uint32))


def slice_run(run: Run, start: bytes, end: bytes) -> Run:
    """The keys of a run in [start, end), with their docs."""
    i, j = bisect_left(run.keys, start), bisect_left(run.keys, end)
    if (i, j) == (0, len(run.keys)):
        return run
    ends = np.concatenate(([0], np.cumsum(run.counts, dtype=np.int64)))
    return Run(run.keys[i:j], run.counts[i:j], run.docs[ends[i]:ends[j]])


def concat_runs(runs: list[Run]) -> Run:
    """Runs of consecutive key ranges (blocks of one segment) as one."""
    if not runs:
        return Run([], np.zeros(0, np.uint32), np.zeros(0, np.uint32))
    return Run(list(chain.from_iterable(r.keys for r in runs)), np.concatenate([r.counts for r in runs]),
               np.concatenate([r.docs for r in runs]))


def blocks_of(items: Iterable[tuple[bytes, bytes]], prefix: bytes, end: bytes) -> Iterator[tuple[bytes, Block]]:
    """(key, block) of the segment under `prefix`, from (key, value) pairs sought into it, up to
    the block that may hold `end` (the first whose last key reaches it)."""
    for key, value in items:
        if not key.startswith(prefix):
            return
        yield key, Block(value)
        if block_last_key(prefix, key) >= end:
            return


def read_run(reader: Reader, user: bytes, span: Span) -> tuple[Run, list[bytes]]:
    """A whole segment as a run, and the keys of its blocks."""
    prefix, end = segment_range(user, span)
    found = list(blocks_of(reader.scan(POSTINGS_CF, prefix, end), prefix, KEY_END))
    return concat_runs([block.run() for _, block in found]), [key for key, _ in found]
