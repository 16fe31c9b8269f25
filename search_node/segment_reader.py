"""The read side of postings: what one reader sees of a user's directory, segments and fresh records.

The directory is read first, then the fresh records above its sealed mark, and one RocksDB
iterator is made, through which every segment the directory names is read (a view of that
moment, however long the reading takes). A maintenance step retires what it replaces for
segments.GRACE_MS before a later one deletes it, so as long as those first reads take less
than that, all they name is there: the reader sees one state, with no snapshot and no retry.
"""
from __future__ import annotations

import time
from array import array
from bisect import bisect_left
from collections.abc import Iterator
from itertools import groupby

import numpy as np
from pyroaring import BitMap

from search_node import segments
from search_node.fields import BY_CODE
from search_node.keys import (
    DOCS_CF,
    KEY_END,
    POSTINGS_CF,
    SUMMARY,
    TERM,
    dir_key,
    field_suffix,
    fresh_key,
    kind_range,
    posting_field,
    segment_prefix,
    state_key,
)
from search_node.records import UserState
from search_node.segments import (
    SEP,
    Block,
    Directory,
    Run,
    Span,
    blocks_of,
    concat_runs,
    fresh_keys,
    slice_run,
    with_summaries,
)
from search_node.store import Reader


class Postings:
    """A user's postings as one reader sees them: the directory, its segments and the fresh records."""

    def __init__(self, reader: Reader, user: bytes) -> None:
        self.reader, self.user = reader, user
        for _ in range(3):  # again if the process stalled for half the grace meanwhile (rare: a pause)
            started = time.monotonic()
            raw_dir = reader.get(DOCS_CF, dir_key(user))
            self.directory = Directory.decode(raw_dir) if raw_dir else Directory(b"")
            self.next_docnum = UserState.decode(reader.get(DOCS_CF, state_key(user))).next_docnum
            nums = list(range(self.directory.sealed, self.next_docnum))
            raw = reader.multi_get(DOCS_CF, [fresh_key(user, d) for d in nums])
            self.fresh = [(d, r) for d, r in zip(nums, raw) if r is not None]
            self._cursor = reader.cursor(POSTINGS_CF)
            if time.monotonic() - started < segments.GRACE_MS / 2000:
                break

    def _blocks(self, span: Span, start: bytes, end: bytes) -> Iterator[Block]:
        """The blocks of a segment that may hold keys in [start, end] (end inclusive)."""
        prefix = segment_prefix(self.user, span)
        return (block for _, block in blocks_of(self._cursor.walk(prefix + start), prefix, end))

    def _exact_in(self, span: Span, key: bytes, plain: array[int], bitmaps: list[BitMap]) -> None:
        for block in self._blocks(span, key, key):
            i = bisect_left(block.keys, key)
            if i < len(block.keys) and block.keys[i] == key:
                block.gather(i, i + 1, plain, bitmaps)

    def exact(self, key: bytes) -> BitMap:
        """Docs of one posting key."""
        plain: array[int] = array("I")
        bitmaps: list[BitMap] = []
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
        for d, keys in fresh_in_range(self.fresh, start, end):
            for key in keys:
                yield key, BitMap((d,))

    def union(self, start: bytes, end: bytes, fields: frozenset[int], summary: bytes | None = None) -> BitMap:
        """Docs of every key in [start, end) whose field (last byte) is in `fields`; segments that
        carry summaries answer from the `summary` key instead, when one is given."""
        unwanted = [field_suffix(f) + SEP for f in BY_CODE if f not in fields]
        plain: array[int] = array("I")
        bitmaps: list[BitMap] = []
        for span in self.directory.spans:
            if summary is not None and span[1] - span[0] >= segments.SUMMARY_SPAN:
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
                keep = [k for k in range(i, j) if posting_field(block.keys[k]) in fields]
                for _, run in groupby(enumerate(keep), lambda pair: pair[1] - pair[0]):  # consecutive keys
                    ks = [k for _, k in run]
                    block.gather(ks[0], ks[-1] + 1, plain, bitmaps)
        for d, keys in fresh_in_range(self.fresh, start, end):
            if any(posting_field(key) in fields for key in keys):
                plain.append(d)
        bitmaps.append(BitMap(plain))
        return BitMap.union(*bitmaps)

    def run_of(self, span: Span, start: bytes = b"", end: bytes = KEY_END) -> Run:
        """A segment's keys in [start, end) with their docs, as a run."""
        runs = [block.run() for block in self._blocks(span, start, end)]
        return slice_run(concat_runs(runs), start, end)

    def summaries_hold(self, span: Span) -> bool:
        """Whether a wide segment's summaries are those its term postings imply (only those two
        key ranges are read, not the pairs)."""
        terms = self.run_of(span, *kind_range(TERM))
        stored = self.run_of(span, kind_range(SUMMARY)[0])
        expected = slice_run(with_summaries(terms), kind_range(SUMMARY)[0], KEY_END)
        return (expected.keys == stored.keys and np.array_equal(expected.counts, stored.counts)
                and np.array_equal(expected.docs, stored.docs))

    def all_postings(self) -> Iterator[tuple[bytes, BitMap]]:
        """Every (key, docs) of the user but the summaries, segment by segment, then the fresh records."""
        return self.range(b"", kind_range(SUMMARY)[0])


def fresh_in_range(fresh: list[tuple[int, bytes]], start: bytes, end: bytes) -> Iterator[tuple[int, list[bytes]]]:
    """(doc, its keys in [start, end)) of the fresh records holding any. Such a key begins with what
    `start` and `end` have in common, so one search of a record's bytes passes over most records
    without splitting them into keys."""
    shared = next((i for i, (a, b) in enumerate(zip(start, end)) if a != b), min(len(start), len(end)))
    needle = SEP + start[:shared]
    for d, record in fresh:
        if needle in record:
            keys = fresh_keys(record)
            i, j = bisect_left(keys, start), bisect_left(keys, end)
            if i < j:
                yield d, keys[i:j]
