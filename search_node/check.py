"""Consistency check: compare a user's stored index with the one a stream of IndexDocs implies.

Docs are read in chunks; what is held meanwhile is the id → doc number map, the expected doc
bitmaps (roaring) and, for postings, one digest per group of keys: the sum of hash(key, doc)
over the group's postings. Memory stays bounded however many posting lists a mailbox has
(millions of pair lists at 100k messages). Where a group's digests differ and the docs can be
read again (a collection, not an iterator), a second pass builds those groups' lists exactly
to name the postings that differ.
"""
from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

from pyroaring import BitMap

from search_node import fields as F
from search_node import segments
from search_node.keys import (
    ALL,
    DISPLACED,
    DOCS_CF,
    DocTag,
    bitmap_name,
    bitmap_range,
    forward_key,
    key_doc_id,
    key_docnum,
    late_docnum,
    late_range,
    meta_key,
    rebuild_marker,
    split_posting_key,
    state_key,
    tag_range,
    unpack_docnum,
)
from search_node.records import DocMeta, UserState, doc_bitmaps, meta_of
from search_node.segment_reader import Postings
from search_node.store import Reader
from search_node.tiers import scan_bitmaps

T = TypeVar("T")
MAX_PROBLEMS = 50
CHUNK_DOCS = 500  # docs whose records are read in one multi_get
GROUPS = 1 << 16  # posting digests kept
_MASK = (1 << 64) - 1


def _group(key: bytes) -> int:
    return hash(key) & (GROUPS - 1)


class _Postings:
    """Posting lists as digests per key group, and exactly (bitmaps) for the keys of `exact` groups."""

    def __init__(self, exact: frozenset[int] = frozenset()) -> None:
        self.digests = [0] * GROUPS
        self.exact_groups = exact
        self.exact: dict[bytes, BitMap] = {}

    def add(self, key: bytes, docnums: Iterable[int]) -> None:
        group = _group(key)
        total = self.digests[group]
        for docnum in docnums:
            total += hash((key, docnum))
        self.digests[group] = total & _MASK
        if group in self.exact_groups:
            self.exact.setdefault(key, BitMap()).update(docnums)


class _Expected:
    """The postings and doc bitmaps the docs imply, built a chunk of docs at a time."""

    def __init__(self, exact: frozenset[int] = frozenset()) -> None:
        self.postings = _Postings(exact)
        self.bitmaps: dict[bytes, BitMap] = {ALL: BitMap()}

    def add(self, docnum: int, meta: DocMeta, fw: F.Forward) -> None:
        for text in F.posting_texts(fw):
            self.postings.add(text.encode(), (docnum,))
        for name in (ALL, *doc_bitmaps(meta)):
            self.bitmaps.setdefault(name, BitMap()).add(docnum)


def check_user(reader: Reader, user: bytes, docs: Iterable[Any]) -> tuple[int, list[str]]:
    """(number of docs read, problems found; empty when the index matches them)."""
    problems: list[str] = []
    if reader.get(DOCS_CF, rebuild_marker(user)) is not None:
        problems.append("a rebuild did not complete: run it again")
    numbers = {key_doc_id(k): unpack_docnum(v) for k, v in reader.scan(DOCS_CF, *tag_range(user, DocTag.ID))}
    meta_nums = BitMap(key_docnum(k) for k, _ in reader.scan(DOCS_CF, *tag_range(user, DocTag.META)))
    forward_nums = BitMap(key_docnum(k) for k, _ in reader.scan(DOCS_CF, *tag_range(user, DocTag.FORWARD)))
    if meta_nums != BitMap(numbers.values()) or forward_nums != meta_nums:
        problems.append("doc records, forward records and the id map disagree")

    expected, seen = _Expected(), set[str]()
    count = 0
    for chunk in batched(docs, CHUNK_DOCS):
        count += len(chunk)
        problems += _check_chunk(reader, user, chunk, numbers, seen, expected)
        del problems[MAX_PROBLEMS:]  # a badly damaged index must not fill memory with reports
    problems += [f"indexed but absent: {i}" for i in sorted(numbers.keys() - seen)]

    stored_bitmaps = {bitmap_name(user, k): bm for k, bm in scan_bitmaps(reader, DOCS_CF, *bitmap_range(user))}
    displaced = stored_bitmaps.pop(DISPLACED, BitMap())
    problems += _compare_postings(reader, user, docs, numbers, expected.postings, meta_nums)
    segments_now = Postings(reader, user)
    problems += [f"prefix summaries of segment {lo}-{hi} differ from its postings"
                 for lo, hi in segments_now.directory.spans
                 if hi - lo >= segments.SUMMARY_SPAN and not segments_now.summaries_hold((lo, hi))]
    for name in sorted(expected.bitmaps.keys() | stored_bitmaps.keys()):
        if expected.bitmaps.get(name, BitMap()) != stored_bitmaps.get(name, BitMap()):
            problems.append(f"doc bitmap {name.decode()} differs")
    problems += _check_order(reader, user, displaced)
    late = BitMap(late_docnum(k) for k, _ in reader.scan(DOCS_CF, *late_range(user, None, None)))
    if late != displaced:
        problems.append("time keys of displaced docs differ from the displaced bitmap")
    return count, problems[:MAX_PROBLEMS]


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Consecutive lists of `size` items (the last shorter), read lazily: itertools.batched of 3.12."""
    stream = iter(items)
    while chunk := list(itertools.islice(stream, size)):
        yield chunk


def _check_chunk(reader: Reader, user: bytes, chunk: list[Any], numbers: dict[str, int], seen: set[str],
                 expected: _Expected) -> list[str]:
    """Each doc's stored record and forward record against the doc; its postings into `expected`."""
    problems = []
    indexed = []
    for doc in chunk:
        if doc.id in seen:  # a repeated doc counts once
            continue
        if doc.id in numbers:
            indexed.append((doc, numbers[doc.id]))
            seen.add(doc.id)
        else:
            problems.append(f"not indexed: {doc.id}")
    metas = reader.multi_get(DOCS_CF, [meta_key(user, n) for _, n in indexed])
    forwards = reader.multi_get(DOCS_CF, [forward_key(user, n) for _, n in indexed])
    for (doc, docnum), stored_meta, stored_forward in zip(indexed, metas, forwards):
        if stored_meta is None:
            continue
        meta = meta_of(doc)
        if DocMeta.decode(stored_meta) != meta:
            problems.append(f"record differs for {doc.id}: {DocMeta.decode(stored_meta)} != {meta}")
        fw = F.analyze(doc)
        if stored_forward != F.encode_forward(fw):
            problems.append(f"forward record differs for {doc.id}")
        expected.add(docnum, meta, fw)
    return problems


def _stored_postings(reader: Reader, user: bytes, live: BitMap, groups: frozenset[int] | None = None
                     ) -> tuple[_Postings, dict[bytes, BitMap]]:
    """Digests of the stored postings of live docs, and for keys in `groups` their lists."""
    digests, exact = _Postings(), dict[bytes, BitMap]()
    for key, stored in Postings(reader, user).all_postings():
        docs = stored & live
        digests.add(key, docs)
        if groups is not None and _group(key) in groups:
            exact.setdefault(key, BitMap()).update(docs)
    return digests, exact


def _compare_postings(reader: Reader, user: bytes, docs: Iterable[Any], numbers: dict[str, int],
                      expected: _Postings, live: BitMap) -> list[str]:
    """Stored posting lists against the expected digests; the groups that differ, named key by key
    when the docs can be read a second time."""
    stored, _ = _stored_postings(reader, user, live)
    differing = frozenset(g for g, (a, b) in enumerate(zip(expected.digests, stored.digests)) if a != b)
    if not differing:
        return []
    if isinstance(docs, Iterator):  # read once already
        return [f"posting lists differ in {len(differing)} of {GROUPS} key groups"]
    exact = _Expected(differing)
    for chunk in batched(docs, CHUNK_DOCS):
        _check_chunk(reader, user, chunk, numbers, set(), exact)
    _, stored_lists = _stored_postings(reader, user, live, differing)
    keys = [key for key in stored_lists.keys() | exact.postings.exact.keys()
            if stored_lists.get(key, BitMap()) != exact.postings.exact.get(key, BitMap())]
    problems = []
    for key in sorted(keys):
        kind, term, code = split_posting_key(key)
        problems.append(f"posting {F.BY_CODE[code].name}:{term!r} (kind {kind}) differs")
    return problems


def _metas_in_docnum_order(reader: Reader, user: bytes) -> Iterator[tuple[int, DocMeta]]:
    for key, value in reader.scan(DOCS_CF, *tag_range(user, DocTag.META)):
        yield key_docnum(key), DocMeta.decode(value)


def _check_order(reader: Reader, user: bytes, displaced: BitMap) -> list[str]:
    """Doc numbers of docs not marked displaced must follow (received_ms, id) order."""
    with_record: BitMap = BitMap()
    previous: tuple[int, str] | None = None
    in_order = True
    for docnum, meta in _metas_in_docnum_order(reader, user):
        with_record.add(docnum)
        if docnum in displaced:
            continue
        if previous is not None and previous >= meta.sort_key:
            in_order = False
        previous = meta.sort_key
    problems = [f"displaced doc {d} has no record" for d in displaced - with_record]
    if not in_order:
        problems.append("doc numbers of in-order docs are not in time order")
    state = UserState.decode(reader.get(DOCS_CF, state_key(user)))
    if with_record and (state.next_docnum <= with_record.max()
                        or (previous is not None and (state.high_ms, state.high_id.hex()) < previous)):
        problems.append(f"user state {state} is behind the docs")
    return problems
