"""Consistency check: compare a user's stored index with the one a list of IndexDocs implies."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from search_node import fields as F
from search_node.postings import (ALL, DELETED, DISPLACED, DOCS_CF, POSTINGS_CF, DocMeta, UserState, bitmap_key,
                                  doc_bitmaps, late_docnum, late_range, meta_of, posting_keys, rebuild_marker, split_posting_key,
                                  state_key, unpack_docnum)
from search_node.store import Reader
from search_node.tiers import TAIL, scan_bitmaps, tail_header

MAX_PROBLEMS = 50


def _docs_range(user: bytes, tag: bytes) -> tuple[bytes, bytes]:
    return user + tag, user + bytes([tag[0] + 1])


def check_user(reader: Reader, user: bytes, docs: Sequence[Any]) -> list[str]:
    problems: list[str] = []
    if reader.get(DOCS_CF, rebuild_marker(user)) is not None:
        problems.append("a rebuild did not complete: run it again")
    wanted = {doc.id: doc for doc in docs}
    numbers = {k[len(user) + 1:].hex(): unpack_docnum(v) for k, v in reader.scan(DOCS_CF, *_docs_range(user, b"i"))}
    metas = {unpack_docnum(k[-4:]): DocMeta.decode(v) for k, v in reader.scan(DOCS_CF, *_docs_range(user, b"d"))}
    forwards = {unpack_docnum(k[-4:]): v for k, v in reader.scan(DOCS_CF, *_docs_range(user, b"f"))}
    problems += [f"not indexed: {i}" for i in sorted(wanted.keys() - numbers.keys())]
    problems += [f"indexed but absent: {i}" for i in sorted(numbers.keys() - wanted.keys())]
    if set(metas) != set(numbers.values()) or set(forwards) != set(metas):
        problems.append("doc records, forward records and the id map disagree")

    expected_postings: dict[bytes, set[int]] = {}
    expected_bitmaps: dict[bytes, set[int]] = {ALL: set()}
    pairs: dict[int, set[tuple[str, str, int]]] = {}
    for doc_id, docnum in numbers.items():
        doc = wanted.get(doc_id)
        if doc is None or docnum not in metas:
            continue
        meta = meta_of(doc)
        if metas[docnum] != meta:
            problems.append(f"record differs for {doc_id}: {metas[docnum]} != {meta}")
        fw = F.analyze(doc)
        if forwards.get(docnum) != F.encode_forward(fw):
            problems.append(f"forward record differs for {doc_id}")
        for kind, term, code in F.posting_terms(fw):
            expected_postings.setdefault(posting_keys(b"", [(kind, term, code)])[0], set()).add(docnum)
        pairs[docnum] = F.adjacent_pairs(fw)
        for name in (ALL, *doc_bitmaps(meta)):
            expected_bitmaps.setdefault(name, set()).add(docnum)

    expected_postings.update(_expected_pairs(reader, user, pairs))
    prefix = bitmap_key(user, b"")
    stored_bitmaps = {k[len(prefix):]: set(bm) for k, bm in scan_bitmaps(reader, DOCS_CF, prefix, user + b"c")}
    displaced, deleted = stored_bitmaps.pop(DISPLACED, set()), stored_bitmaps.pop(DELETED, set())
    if deleted & (metas.keys() | stored_bitmaps.get(ALL, set())):
        problems.append("docs marked deleted are still live")
    stored_postings = {k[len(user):]: set(bm) - deleted
                       for k, bm in scan_bitmaps(reader, POSTINGS_CF, user, user + b"\xff")}
    for key in sorted(expected_postings.keys() | stored_postings.keys()):
        if expected_postings.get(key, set()) != stored_postings.get(key, set()):
            kind, term, code = split_posting_key(user + key + b"\x00")
            problems.append(f"posting {F.BY_CODE[code].name}:{term!r} (kind {kind}) differs")

    for name in sorted(expected_bitmaps.keys() | stored_bitmaps.keys()):
        if expected_bitmaps.get(name, set()) != stored_bitmaps.get(name, set()):
            problems.append(f"doc bitmap {name.decode()} differs")
    problems += _check_order(reader, user, metas, displaced)
    late = {late_docnum(k) for k, _ in reader.scan(DOCS_CF, *late_range(user, None, None))}
    if late != displaced:
        problems.append("time keys of displaced docs differ from the displaced bitmap")
    return problems[:MAX_PROBLEMS]


def _expected_pairs(reader: Reader, user: bytes, pairs: dict[int, set[tuple[str, str, int]]]) -> dict[bytes, set[int]]:
    """Pair postings the docs imply, given when each term became common (its stored `since`)."""
    terms = sorted({(t, code) for found in pairs.values() for a, b, code in found for t in (a, b)})
    tails = reader.multi_get(POSTINGS_CF, [k + TAIL for k in posting_keys(user, [(F.TERM, t, c) for t, c in terms])])
    since = {term: tail_header(tail)[1] for term, tail in zip(terms, tails)}
    expected: dict[bytes, set[int]] = {}
    for docnum, found in pairs.items():
        for a, b, code in found:
            if docnum >= max(since[(a, code)], since[(b, code)]):
                key = posting_keys(b"", [(F.PAIR, F.pair_term(a, b), code)])[0]
                expected.setdefault(key, set()).add(docnum)
    return expected


def _check_order(reader: Reader, user: bytes, metas: dict[int, DocMeta], displaced: set[int]) -> list[str]:
    """Doc numbers of docs not marked displaced must follow (received_ms, id) order."""
    problems = [f"displaced doc {d} has no record" for d in sorted(displaced - metas.keys())]
    keys = [metas[d].sort_key for d in sorted(metas.keys() - displaced)]
    if any(a >= b for a, b in zip(keys, keys[1:])):
        problems.append("doc numbers of in-order docs are not in time order")
    state = UserState.decode(reader.get(DOCS_CF, state_key(user)))
    if metas and (state.next_docnum <= max(metas) or (keys and (state.high_ms, state.high_id.hex()) < keys[-1])):
        problems.append(f"user state {state} is behind the docs")
    return problems
