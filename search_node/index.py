"""The search index facade the storage node embeds: writes go into the caller's batch, reads into a snapshot.

Writes to one user must be serialized by the caller (they read-modify-write that user's
bitmaps); any number of threads may search at once: a SearchIndex holds no mutable state.
"""
from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

from search_node import fields as F
from search_node.check import batched, check_user
from search_node.executor import Execution, InvalidCursor, decode_cursor, encode_cursor
from search_node.grammar import QuerySyntaxError, parse
from search_node.plan import plan
from search_node.postings import (ALL, ATTACHMENT, COLUMN_FAMILIES, DELETED, DISPLACED, DOCS_CF, POSTINGS_CF, DocMeta,
                                  UserState, bitmap_key, doc_bitmaps, doc_id_bytes, flags_of, forward_key, id_key,
                                  late_key, meta_key, meta_of, pack_docnum, posting_keys, rebuild_marker, state_key,
                                  unpack_docnum, user_prefix, user_range)
from search_node.store import Committer, Reader, Txn
from search_node.tiers import NEVER, BitmapChanges, advance, read_bitmap

__all__ = ["COLUMN_FAMILIES", "IndexDoc", "InvalidCursor", "QuerySyntaxError", "SearchIndex", "SearchResult",
           "in_time_order"]

MAX_LIMIT = 1000
REBUILD_CHUNK_DOCS = 1000  # docs per rebuild batch
REBUILD_CHUNK_KEYS = 50_000  # deletes per rebuild batch


@dataclass(frozen=True)
class IndexDoc:
    id: str  # message id, 32 lowercase hex digits; unique per user
    received_ms: int
    size: int
    folder_id: str
    unread: bool
    starred: bool
    has_attachments: bool
    rfc822msgid: str
    from_: tuple[tuple[str, str], ...]
    to: tuple[tuple[str, str], ...]
    cc: tuple[tuple[str, str], ...]
    bcc: tuple[tuple[str, str], ...]
    subject: str
    text: str
    html: str
    attachments: tuple[tuple[str, str, str | None], ...]  # (filename, content type, text or None)


def _changes(txn: Txn, user: bytes) -> BitmapChanges:
    """Edits whose posting folds drop the user's removed docs."""
    return BitmapChanges(POSTINGS_CF, lambda: read_bitmap(txn, DOCS_CF, bitmap_key(user, DELETED)))


class _Chunker:
    """A rebuild's current batch: with a Committer, each chunk is committed on its own and the
    last writes go into the caller's txn; without, everything goes into the caller's txn."""

    def __init__(self, last: Txn, chunks: Committer | None) -> None:
        self.last = last
        self._chunks = chunks
        self.txn = chunks.new_txn() if chunks is not None else last
        self._pending = 0

    def count(self, writes: int) -> None:
        self._pending += writes
        if self._pending >= REBUILD_CHUNK_KEYS:
            self.flush()

    def flush(self) -> None:
        if self._chunks is not None:
            self._chunks.commit(self.txn)
            self.txn = self._chunks.new_txn()
        self._pending = 0


def in_time_order(docs: Iterable[IndexDoc]) -> list[IndexDoc]:
    """Docs as `rebuild` takes them: by (received_ms, id), the last of each id kept."""
    return sorted({doc.id: doc for doc in docs}.values(), key=lambda d: (d.received_ms, d.id))


@dataclass(frozen=True)
class SearchResult:
    ids: list[str]
    total: int
    next_cursor: str | None


class SearchIndex:
    """Stateless and thread-safe; every method works on the store handed to it."""

    # --- writes -------------------------------------------------------------------------
    def add(self, txn: Txn, user_id: str, doc: IndexDoc) -> None:
        """Index a message; adding an id that is already indexed only applies its flags and folder."""
        user = user_prefix(user_id)
        if txn.get(DOCS_CF, id_key(user, doc.id)) is not None:
            self.update(txn, user_id, doc.id, folder_id=doc.folder_id, unread=doc.unread, starred=doc.starred)
            return
        changes = _changes(txn, user)
        state = UserState.decode(txn.get(DOCS_CF, state_key(user)))
        txn.put(DOCS_CF, state_key(user), self._write_docs(txn, user, [doc], state, changes).encode())
        changes.apply(txn)

    def _write_docs(self, txn: Txn, user: bytes, docs: list[IndexDoc], state: UserState,
                    changes: BitmapChanges) -> UserState:
        """Number and post `docs` in order. A pair of adjacent terms is posted only from the doc on
        which both its terms are common (their `since`): rarer pairs are verified from term postings."""
        forwards = [F.analyze(doc) for doc in docs]
        keyed = [dict(zip(terms, posting_keys(user, terms))) for terms in map(F.posting_terms, forwards)]
        distinct = list(dict.fromkeys(key for keys in keyed for key in keys.values()))
        headers = dict(zip(distinct, changes.prefetch(txn, POSTINGS_CF, distinct)))
        for doc, fw, keys in zip(docs, forwards, keyed):
            docnum = state.next_docnum
            changes.add_keys(POSTINGS_CF, list(keys.values()), docnum)
            common = set()
            for term, key in keys.items():
                if term[2] in F.PAIR_CODES:  # count every doc of a pair field's term, paired or not
                    header = headers[key]
                    if header[1] == NEVER:
                        header = headers[key] = advance(header, [docnum])
                    if header[1] <= docnum:
                        common.add(term)
            adjacent = F.adjacent_pairs(fw)
            pairs = [(F.PAIR, F.pair_term(a, b), code) for a, b, code in adjacent
                     if (F.TERM, a, code) in common and (F.TERM, b, code) in common]
            changes.add_keys(POSTINGS_CF, posting_keys(user, pairs), docnum)
            state = self._write_records(txn, user, doc, fw, state, changes)
        return state

    def _write_records(self, txn: Txn, user: bytes, doc: IndexDoc, fw: F.Forward, state: UserState,
                       changes: BitmapChanges) -> UserState:
        meta, docnum, raw_id = meta_of(doc), state.next_docnum, doc_id_bytes(doc.id)
        in_order = (doc.received_ms, raw_id) > (state.high_ms, state.high_id)
        names = [ALL, *doc_bitmaps(meta)] if in_order else [ALL, DISPLACED, *doc_bitmaps(meta)]
        changes.add_keys(DOCS_CF, [bitmap_key(user, name) for name in names], docnum)
        if not in_order:
            txn.put(DOCS_CF, late_key(user, doc.received_ms, docnum), b"")
        txn.put(DOCS_CF, meta_key(user, docnum), meta.encode())
        txn.put(DOCS_CF, forward_key(user, docnum), F.encode_forward(fw))
        txn.put(DOCS_CF, id_key(user, doc.id), pack_docnum(docnum))
        if in_order:
            return UserState(docnum + 1, doc.received_ms, raw_id)
        return UserState(docnum + 1, state.high_ms, state.high_id)

    def update(self, txn: Txn, user_id: str, doc_id: str, *, folder_id: str, unread: bool, starred: bool) -> None:
        """Set a message's folder and flags; an id that is not indexed is ignored."""
        user = user_prefix(user_id)
        found = self._locate(txn, user, doc_id)
        if found is None:
            return
        docnum, old = found
        new = DocMeta(old.doc_id, old.received_ms, old.size,
                      flags_of(unread, starred, bool(old.flags & ATTACHMENT)), folder_id)
        if new == old:
            return
        changes = BitmapChanges()
        before, after = set(doc_bitmaps(old)), set(doc_bitmaps(new))
        for name in before - after:
            changes.discard(DOCS_CF, bitmap_key(user, name), docnum)
        changes.add_keys(DOCS_CF, [bitmap_key(user, name) for name in after - before], docnum)
        changes.apply(txn)
        txn.put(DOCS_CF, meta_key(user, docnum), new.encode())

    def remove(self, txn: Txn, user_id: str, doc_id: str) -> None:
        """Drop a message: its doc bitmaps and records now, its postings lazily (it joins `deleted`).

        An id that is not indexed is ignored.
        """
        user = user_prefix(user_id)
        found = self._locate(txn, user, doc_id)
        if found is None:
            return
        docnum, meta = found
        late = late_key(user, meta.received_ms, docnum)
        names = [ALL, *doc_bitmaps(meta)] if txn.get(DOCS_CF, late) is None else [ALL, DISPLACED, *doc_bitmaps(meta)]
        changes = BitmapChanges()
        for name in names:
            changes.discard(DOCS_CF, bitmap_key(user, name), docnum)
        changes.add(DOCS_CF, bitmap_key(user, DELETED), docnum)
        changes.apply(txn)
        for key in (meta_key(user, docnum), forward_key(user, docnum), id_key(user, doc_id), late):
            txn.delete(DOCS_CF, key)

    def _locate(self, txn: Txn, user: bytes, doc_id: str) -> tuple[int, DocMeta] | None:
        raw = txn.get(DOCS_CF, id_key(user, doc_id))
        if raw is None:
            return None
        docnum = unpack_docnum(raw)
        data = txn.get(DOCS_CF, meta_key(user, docnum))
        if data is None:
            raise RuntimeError(f"search index: {doc_id} maps to doc {docnum}, which has no record")
        return docnum, DocMeta.decode(data)

    def rebuild(self, txn: Txn, reader: Reader, user_id: str, docs: Iterable[IndexDoc],
                chunks: Committer | None = None) -> int:
        """Replace a user's index by one built from `docs`, numbered in time order (no displaced docs).

        `docs` must come in (received_ms, id) order without repeats (`in_time_order` sorts a
        collection); they are read one chunk at a time, so a stream of them never sits in memory
        whole. With `chunks`, the work is written in bounded batches through it and only the last
        one goes into `txn`; an interrupted rebuild leaves a marker that `check` reports, and
        running it again starts over. Without, everything goes into `txn`. Returns the number of
        docs indexed. Raises ValueError (leaving the marker) on docs out of order.
        """
        user = user_prefix(user_id)
        batch, marker = _Chunker(txn, chunks), rebuild_marker(user)
        batch.txn.put(DOCS_CF, marker, b"")
        batch.flush()
        for cf in COLUMN_FAMILIES:
            for key, _ in reader.scan(cf, *user_range(user)):
                if key != marker:
                    batch.txn.delete(cf, key)
                    batch.count(1)
        batch.flush()
        state, last = UserState(), (-(1 << 62), "")
        for chunk in batched(docs, REBUILD_CHUNK_DOCS):
            for doc in chunk:
                if (doc.received_ms, doc.id) <= last:
                    raise ValueError(f"rebuild needs docs in time order without repeats; {doc.id} is not")
                last = (doc.received_ms, doc.id)
            changes = BitmapChanges()
            state = self._write_docs(batch.txn, user, chunk, state, changes)
            changes.apply(batch.txn)
            batch.txn.put(DOCS_CF, state_key(user), state.encode())
            batch.flush()
        batch.last.put(DOCS_CF, state_key(user), state.encode())
        batch.last.delete(DOCS_CF, marker)
        return state.next_docnum

    # --- reads --------------------------------------------------------------------------
    def search(self, reader: Reader, user_id: str, query: str, limit: int = 50, cursor: str | None = None,
               now_ms: int | None = None) -> SearchResult:
        """Matches newest first (received_ms, then id, descending); `total` counts all of them.

        Raises QuerySyntaxError for bad query text and InvalidCursor for a foreign cursor.
        """
        if not 1 <= limit <= MAX_LIMIT:
            raise ValueError(f"limit must be 1..{MAX_LIMIT}")
        user = user_prefix(user_id)
        after = decode_cursor(cursor) if cursor else None
        now = int(time.time() * 1000) if now_ms is None else now_ms
        run = Execution(reader, user)
        result = run.matches(plan(parse(query), now))
        metas, more = run.page(result, limit, after)
        next_cursor = encode_cursor(metas[-1].sort_key) if more and metas else None
        return SearchResult([m.doc_id for m in metas], len(result), next_cursor)

    def check(self, reader: Reader, user_id: str, docs: Iterable[IndexDoc]) -> list[str]:
        """Compare the stored index with the one `docs` imply; returns the problems (empty: they match).
        `docs` are read once, as a stream (see check.py)."""
        return check_user(reader, user_prefix(user_id), docs)[1]
