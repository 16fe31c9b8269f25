"""The read side of postings: what one reader sees of a user's directory, segments and fresh records.

The directory is read first, then the fresh records it leaves above its sealed mark, then
every segment it names through one RocksDB iterator (a point-in-time view). What a later
maintenance step replaces outlives the reader by segments.GRACE_MS, so the three agree; a
reader that took longer checks the directory again (`unchanged`).
"""
from __future__ import annotations

import time
from array import array
from bisect import bisect_left
from collections.abc import Iterator
from itertools import groupby

from pyroaring import BitMap

from search_node import segments
from search_node.fields import BY_CODE
from search_node.postings import DOCS_CF, POSTINGS_CF, UserState, state_key
from search_node.segments import (SEP, SUMMARY, Block, Directory, Span, dir_key, fresh_key, fresh_keys,
                                  segment_prefix)
from search_node.store import Reader


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
        if time.monotonic() - self._started < segments.GRACE_MS / 2000:
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
