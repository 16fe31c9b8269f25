"""Posting segments: a user's postings as immutable sorted runs over doc-number ranges.

A message's postings are written in the message's own batch as one *fresh record*: its
sorted posting keys (kind | term | 0x00 | field) joined by 0xff, a byte UTF-8 never holds.
A maintenance step, planned off the commit path and applied in a batch of its own, *seals*
the next SEAL_DOCS doc numbers' fresh records into one segment, then merges MERGE_FANOUT
segments of equal span into one, as a binary counter carries (spans SEAL_DOCS·8^k, up to
MAX_SPAN). So adding a message costs a handful of writes however many terms it has, and
each posting is rewritten about log8(MAX_SPAN/SEAL_DOCS) + 1 times, in bulk.

A user's *directory* (search_docs, user | "g") holds a nonce, the sealed-through doc
number and the segments' spans. A segment lives in search_postings as blocks keyed
user | lo | hi | last key of the block, so one seek finds the block that holds a key.
A block: nkeys, keys length (uint32 LE), the keys joined by 0xff, one byte per key (1: its docs
are portable roaring, for keys with BIG docs or more; 0: ascending uint32 LE), nkeys + 1 byte
offsets into the doc region, the doc region. Removed docs stay in segments (queries cut
every result to the live docs); merges drop those already gone.

A plan names the directory it was made from; applying it is a no-op when the directory has
changed since (a rebuild or a drop of the user writes a new nonce or removes it), so a plan
never writes over state it did not see. What a step replaces is retired, not deleted: a later
step deletes it GRACE_MS on, so a search over the live database that read the old directory
still finds everything it names (one that takes longer re-reads the directory and retries).
"""
from __future__ import annotations

import operator
import os
import struct
import sys
import time
from array import array
from bisect import bisect_left
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import chain, compress, groupby

import numpy as np
from pyroaring import BitMap

from search_node.fields import BY_CODE, PLAIN_FIELDS, TERM
from search_node.postings import DOCS_CF, POSTINGS_CF, UserState, state_key
from search_node.store import Reader, Txn

SEAL_DOCS = 32
MERGE_FANOUT = 8
MAX_SPAN = SEAL_DOCS * MERGE_FANOUT ** 3  # 16,384 doc numbers
SUMMARY = 3  # posting kind of a prefix summary: the docs with a plain-field term starting with its text
SUMMARY_CHARS = 3  # summaries for prefixes of 1 to 3 characters, the broad ones
SUMMARY_SPAN = SEAL_DOCS * MERGE_FANOUT ** 2  # segments this wide or wider carry summaries
PLAIN_CODES = frozenset(f.code for f in PLAIN_FIELDS)
BLOCK_KEYS = 128
BIG = 64  # a key with this many docs in a segment keeps them as portable roaring (deserialized at memory speed)
SEP = b"\xff"
_SPAN = struct.Struct(">II")
_DIR_HEAD = struct.Struct(">8sI")
_BLOCK_HEAD = struct.Struct("<II")
_SWAP = sys.byteorder != "little"
_U32 = np.dtype("<u4")
Span = tuple[int, int]


def dir_key(user: bytes) -> bytes:
    return user + b"g"


def fresh_key(user: bytes, docnum: int) -> bytes:
    return user + b"p" + struct.pack(">I", docnum)


def segment_prefix(user: bytes, span: Span) -> bytes:
    return user + _SPAN.pack(*span)


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

    def encode(self) -> bytes:
        return _DIR_HEAD.pack(self.nonce, self.sealed) + b"".join(_SPAN.pack(*s) for s in self.spans)

    @classmethod
    def decode(cls, data: bytes) -> Directory:
        nonce, sealed = _DIR_HEAD.unpack_from(data)
        spans = tuple(_SPAN.iter_unpack(data[_DIR_HEAD.size:]))
        return cls(nonce, sealed, spans)  # type: ignore[arg-type]


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
    c, s = counts[index], starts[index]
    ends = np.cumsum(c)
    gather = np.arange(int(ends[-1]), dtype=np.int64) + np.repeat(s - (ends - c), c)
    out_docs = docs[gather]
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


def summary_key(prefix: str) -> bytes:
    return b"%c%s\x00\x00" % (SUMMARY, prefix.encode())


def summaries_hold(reader: Reader, user: bytes, span: Span) -> bool:
    """Whether a wide segment's summaries are those its term postings imply (only those two
    key ranges are read, not the pairs)."""
    terms, _ = read_run(reader, user, span, bytes((TERM,)), bytes((TERM + 1,)))
    stored, _ = read_run(reader, user, span, bytes((SUMMARY,)))
    expected = _slice(with_summaries(terms), bytes((SUMMARY,)), SEP)
    return (expected.keys == stored.keys and np.array_equal(expected.counts, stored.counts)
            and np.array_equal(expected.docs, stored.docs))


def with_summaries(run: Run) -> Run:
    """The run plus a summary per 1 to SUMMARY_CHARS character prefix of its plain-field terms."""
    lo, hi = bisect_left(run.keys, bytes((TERM,))), bisect_left(run.keys, bytes((TERM + 1,)))
    groups: dict[bytes, int] = {}
    picked, owners = [], []
    last, ids = b"", []
    for k in range(lo, hi):
        key = run.keys[k]
        if key[-1] not in PLAIN_CODES:
            continue
        if key[1:-2] != last:  # one term's fields are neighbours: its prefixes are worked out once
            last = key[1:-2]
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
    ends = np.cumsum(c)
    gather = np.arange(int(ends[-1]), dtype=np.int64) + np.repeat(starts[index] - (ends - c), c)
    pairs = np.sort((np.repeat(rank[np.asarray(owners)], c) << 32) | run.docs[gather].astype(np.int64))
    pairs = pairs[np.concatenate(([True], pairs[1:] != pairs[:-1]))]  # a doc once per summary
    counts = np.bincount(pairs >> 32, minlength=len(names)).astype(np.uint32)
    docs = (pairs & 0xFFFFFFFF).astype(np.uint32)
    return Run(run.keys + names, np.concatenate((run.counts, counts)), np.concatenate((run.docs, docs)))


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
        yield prefix + run.keys[b - 1], value


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

    def _plain(self, i: int, j: int) -> array:
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

    def gather(self, i: int, j: int, plain: array, bitmaps: list[BitMap]) -> None:
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


def _slice(run: Run, start: bytes, end: bytes) -> Run:
    """The keys of a run in [start, end), with their docs."""
    i, j = bisect_left(run.keys, start), bisect_left(run.keys, end)
    if (i, j) == (0, len(run.keys)):
        return run
    ends = np.concatenate(([0], np.cumsum(run.counts, dtype=np.int64)))
    return Run(run.keys[i:j], run.counts[i:j], run.docs[ends[i]:ends[j]])


def read_run(reader: Reader, user: bytes, span: Span, start: bytes = b"", end: bytes = SEP
             ) -> tuple[Run, list[bytes]]:
    """A segment's keys in [start, end) as a run (by default all), and the keys of the blocks read."""
    prefix = segment_prefix(user, span)
    block_keys, runs = [], []
    for key, value in reader.scan(POSTINGS_CF, prefix + start, segment_prefix(user, (span[0], span[1] + 1))):
        block_keys.append(key)
        runs.append(Block(value).run())
        if key[len(prefix):] >= end:
            break
    if not runs:
        return Run([], np.zeros(0, np.uint32), np.zeros(0, np.uint32)), block_keys
    run = Run(list(chain.from_iterable(r.keys for r in runs)), np.concatenate([r.counts for r in runs]),
              np.concatenate([r.docs for r in runs]))
    return _slice(run, start, end), block_keys


# --- reading postings: segments and fresh records together --------------------------------

class Postings:
    """A user's postings as one reader sees them: the directory, its segments and the fresh records."""

    def __init__(self, reader: Reader, user: bytes) -> None:
        self.reader, self.user = reader, user
        self._started = time.monotonic()
        self._dir_raw = reader.get(DOCS_CF, dir_key(user))
        self.directory = Directory.decode(self._dir_raw) if self._dir_raw else Directory(b"")
        self._cursor = reader.cursor(POSTINGS_CF)  # made after the directory was read: see unchanged()
        self.next_docnum = UserState.decode(reader.get(DOCS_CF, state_key(user))).next_docnum
        nums = list(range(self.directory.sealed, self.next_docnum))
        raw = reader.multi_get(DOCS_CF, [fresh_key(user, d) for d in nums])
        self.fresh = [(d, r) for d, r in zip(nums, raw) if r is not None]

    def unchanged(self) -> bool:
        """Whether what was read is one state: read within half the grace of retired data (so
        nothing the directory named was purged meanwhile), or the directory has not moved."""
        if time.monotonic() - self._started < GRACE_MS / 2000:
            return True
        return self.reader.get(DOCS_CF, dir_key(self.user)) == self._dir_raw

    def _blocks(self, span: Span, start: bytes, end: bytes) -> Iterator[Block]:
        """The blocks of a segment that may hold keys in [start, end] (end inclusive)."""
        prefix = segment_prefix(self.user, span)
        cut = len(prefix)
        for key, value in self._cursor.walk(prefix + start):
            if not key.startswith(prefix):
                return
            yield Block(value)
            if key[cut:] >= end:
                return

    def _exact_in(self, span: Span, key: bytes, plain: array, bitmaps: list[BitMap]) -> None:
        for block in self._blocks(span, key, key):
            i = bisect_left(block.keys, key)
            if i < len(block.keys) and block.keys[i] == key:
                block.gather(i, i + 1, plain, bitmaps)

    def exact(self, key: bytes) -> BitMap:
        """Docs of one posting key."""
        plain, bitmaps = array("I"), []
        for span in self.directory.spans:
            self._exact_in(span, key, plain, bitmaps)
        needle = SEP + key + SEP
        plain.extend(d for d, record in self.fresh if needle in record)
        bitmaps.append(BitMap(plain))
        return BitMap.union(*bitmaps) if len(bitmaps) > 1 else bitmaps[0]

    def range(self, start: bytes, end: bytes) -> Iterator[tuple[bytes, BitMap]]:
        """(key, docs) of every key in [start, end); a key recurs once per segment holding it."""
        for span in self.directory.spans:
            for block in self._blocks(span, start, end):
                for k in range(bisect_left(block.keys, start), bisect_left(block.keys, end)):
                    yield block.keys[k], block.bitmap(k)
        for d, record in self.fresh:
            keys = fresh_keys(record)
            for k in range(bisect_left(keys, start), bisect_left(keys, end)):
                yield keys[k], BitMap((d,))

    def union(self, start: bytes, end: bytes, fields: frozenset[int], summary: bytes | None = None) -> BitMap:
        """Docs of every key in [start, end) whose field (last byte) is in `fields`; segments that
        carry summaries answer from the `summary` key instead, when one is given."""
        unwanted = [b"\x00%c%s" % (f, SEP) for f in BY_CODE if f not in fields]
        plain, bitmaps = array("I"), []
        for span in self.directory.spans:
            if summary is not None and span[1] - span[0] >= SUMMARY_SPAN:
                self._exact_in(span, summary, plain, bitmaps)
                continue
            for block in self._blocks(span, start, end):
                i, j = bisect_left(block.keys, start), bisect_left(block.keys, end)
                if i == j:
                    continue
                joined = SEP.join(block.keys[i:j]) + SEP
                if not any(u in joined for u in unwanted):
                    block.gather(i, j, plain, bitmaps)
                    continue
                keep = [k for k in range(i, j) if block.keys[k][-1] in fields]
                for _, run in groupby(enumerate(keep), lambda pair: pair[1] - pair[0]):  # consecutive keys
                    ks = [k for _, k in run]
                    block.gather(ks[0], ks[-1] + 1, plain, bitmaps)
        for d, record in self.fresh:
            keys = fresh_keys(record)
            if any(keys[k][-1] in fields for k in range(bisect_left(keys, start), bisect_left(keys, end))):
                plain.append(d)
        bitmaps.append(BitMap(plain))
        return BitMap.union(*bitmaps)

    def all_postings(self) -> Iterator[tuple[bytes, BitMap]]:
        """Every (key, docs) of the user but the summaries, segment by segment, then the fresh records."""
        return self.range(b"", bytes((SUMMARY,)))


# --- maintenance ----------------------------------------------------------------------------

GRACE_MS = 10_000  # what a step replaces stays this long, so a search that read the old directory finds it
_RETIRED = struct.Struct(">Q")  # due time (ms), then the keys: cf index, length, key
_RETIRED_KEY = struct.Struct(">BH")
_CFS = (POSTINGS_CF, DOCS_CF)


def retired_key(user: bytes, sealed: int) -> bytes:
    return user + b"x" + struct.pack(">I", sealed)


def _encode_retired(due_ms: int, keys: list[tuple[str, bytes]]) -> bytes:
    return _RETIRED.pack(due_ms) + b"".join(_RETIRED_KEY.pack(_CFS.index(cf), len(k)) + k for cf, k in keys)


def _decode_retired(data: bytes) -> tuple[int, list[tuple[str, bytes]]]:
    (due,), at, keys = _RETIRED.unpack_from(data), _RETIRED.size, []
    while at < len(data):
        cf, size = _RETIRED_KEY.unpack_from(data, at)
        at += _RETIRED_KEY.size
        keys.append((_CFS[cf], data[at:at + size]))
        at += size
    return due, keys


@dataclass
class Plan:
    """One maintenance step: the writes that move the user from directory `expected` to `directory`.

    What the step replaces (merged segments' blocks, sealed fresh records) is not deleted but
    retired: listed in a record that a step GRACE_MS later deletes with everything it lists."""

    user: bytes
    expected: bytes
    directory: bytes
    sealed: int = 0  # the new sealed mark (names the retired record)
    puts: list[tuple[bytes, bytes]] = field(default_factory=list)  # search_postings
    retire: list[tuple[str, bytes]] = field(default_factory=list)
    purge: list[tuple[str, bytes]] = field(default_factory=list)  # retired records due, and what they list
    docs: int = 0  # docs sealed


def _due(reader: Reader, user: bytes, now_ms: int) -> list[tuple[str, bytes]]:
    """Retired records whose grace is over, and the keys they list."""
    out: list[tuple[str, bytes]] = []
    for key, value in reader.scan(DOCS_CF, user + b"x", user + b"y"):
        due, keys = _decode_retired(value)
        if due <= now_ms:
            out += [*keys, (DOCS_CF, key)]
    return out


def plan_step(reader: Reader, user: bytes, live: BitMap | None = None, now_ms: int | None = None) -> Plan | None:
    """The next step for a user (None: nothing to do now): purge what is due, seal SEAL_DOCS fresh
    docs, carry merges."""
    raw = reader.get(DOCS_CF, dir_key(user))
    if raw is None:
        return None
    directory = Directory.decode(raw)
    purge = _due(reader, user, int(time.time() * 1000) if now_ms is None else now_ms)
    next_docnum = UserState.decode(reader.get(DOCS_CF, state_key(user))).next_docnum
    lo = directory.sealed
    if next_docnum - lo < SEAL_DOCS:
        return Plan(user, raw, raw, purge=purge) if purge else None
    hi = lo + SEAL_DOCS
    records = reader.multi_get(DOCS_CF, [fresh_key(user, d) for d in range(lo, hi)])
    run = merge([Run.of_doc(d, fresh_keys(r)) for d, r in zip(range(lo, hi), records) if r is not None])
    spans, span = list(directory.spans), (lo, hi)
    plan = Plan(user, raw, b"", hi, retire=[(DOCS_CF, fresh_key(user, d)) for d in range(lo, hi)], purge=purge,
                docs=SEAL_DOCS)
    width = SEAL_DOCS
    while (width * MERGE_FANOUT <= MAX_SPAN and len(spans) >= MERGE_FANOUT - 1
           and all(b - a == width for a, b in spans[-(MERGE_FANOUT - 1):])):
        older = spans[-(MERGE_FANOUT - 1):]
        del spans[-(MERGE_FANOUT - 1):]
        parts = []
        for s in older:
            part, block_keys = read_run(reader, user, s)
            parts.append(part)
            plan.retire += [(POSTINGS_CF, k) for k in block_keys]
        run = merge([*parts, run], live)
        span, width = (older[0][0], hi), width * MERGE_FANOUT
        if width == SUMMARY_SPAN:  # wider segments merge their parts' summaries like any posting
            run = with_summaries(run)
    spans.append(span)
    plan.puts = list(encode_blocks(segment_prefix(user, span), run))
    plan.directory = Directory(directory.nonce, hi, tuple(spans)).encode()
    return plan


def apply(txn: Txn, plan: Plan, now_ms: int | None = None) -> bool:
    """Write the plan if the user's directory is still the one it was made from; what it replaces
    is retired from now (`now_ms`, default the clock) for GRACE_MS."""
    if txn.get(DOCS_CF, dir_key(plan.user)) != plan.expected:
        return False
    for cf, key in plan.purge:
        txn.delete(cf, key)
    for key, value in plan.puts:
        txn.put(POSTINGS_CF, key, value)
    if plan.retire:
        now = int(time.time() * 1000) if now_ms is None else now_ms
        txn.put(DOCS_CF, retired_key(plan.user, plan.sealed), _encode_retired(now + GRACE_MS, plan.retire))
    txn.put(DOCS_CF, dir_key(plan.user), plan.directory)
    return True
