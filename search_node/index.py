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
from search_node.executor import Execution
from search_node.grammar import QuerySyntaxError, parse
from search_node.keys import (
    ALL,
    COLUMN_FAMILIES,
    DISPLACED,
    DOCS_CF,
    PENDING_CF,
    bitmap_key,
    dir_key,
    doc_id_bytes,
    forward_key,
    fresh_key,
    id_key,
    late_key,
    meta_key,
    pack_docnum,
    pending_key,
    pending_user,
    rebuild_marker,
    state_key,
    unpack_docnum,
    user_prefix,
    user_range,
)
from search_node.maintenance import Plan as MaintenancePlan
from search_node.maintenance import apply, has_retired, plan_step
from search_node.plan import plan
from search_node.records import ATTACHMENT, DocMeta, UserState, doc_bitmaps, flags_of, meta_of
from search_node.segments import Directory, fresh_record
from search_node.store import AnyCommitter, Reader, Txn
from search_node.tiers import BitmapChanges, read_bitmap
from tidings_runtime.cursor import InvalidCursor
from tidings_runtime.cursor import decode as decode_cursor
from tidings_runtime.cursor import encode as encode_cursor

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


class _Chunker:
    """A rebuild's current batch: with a Committer, each chunk is committed on its own and the
    last writes go into the caller's txn; without, everything goes into the caller's txn."""

    def __init__(self, last: Txn, chunks: AnyCommitter | None) -> None:
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
        changes = BitmapChanges()
        raw_state = txn.get(DOCS_CF, state_key(user))
        if raw_state is None:  # the user's first doc: a directory whose nonce no earlier plan knows
            txn.put(DOCS_CF, dir_key(user), Directory.new().encode())
        state = self._write_docs(txn, user, [doc], UserState.decode(raw_state), changes)
        txn.put(DOCS_CF, state_key(user), state.encode())
        txn.put(PENDING_CF, pending_key(user), b"")
        changes.apply(txn)

    def _write_docs(self, txn: Txn, user: bytes, docs: list[IndexDoc], state: UserState,
                    changes: BitmapChanges) -> UserState:
        """Number `docs` in order; each doc's postings go into its fresh record (see segments.py)."""
        for doc in docs:
            fw = F.analyze(doc)
            txn.put(DOCS_CF, fresh_key(user, state.next_docnum), fresh_record(F.posting_texts(fw)))
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
        """Drop a message: its doc bitmaps and records now, its postings when a merge meets them.

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
                chunks: AnyCommitter | None = None) -> int:
        """Replace a user's index by one built from `docs`, numbered in time order (no displaced docs).

        `docs` must come in (received_ms, id) order without repeats (`in_time_order` sorts a
        collection); they are read one chunk at a time, so a stream of them never sits in memory
        whole. With `chunks`, the work is written in bounded batches through it and only the last
        one goes into `txn`; an interrupted rebuild leaves a marker that `check` reports, and
        running it again starts over, and the docs are sealed into segments before it returns.
        Without, everything goes into `txn` and the docs stay fresh until maintenance seals them.
        Returns the number of docs indexed. Raises ValueError (leaving the marker) on docs out of order.
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
        batch.txn.put(DOCS_CF, dir_key(user), Directory.new().encode())  # plans made before now will not apply
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
        if chunks is not None:  # seal what the chunks committed, so searches do not meet a mailbox of fresh docs
            self.maintain(reader, chunks, user_id)
        batch.last.put(DOCS_CF, state_key(user), state.encode())
        batch.last.put(PENDING_CF, pending_key(user), b"")  # retired data of the sealing waits for a later purge
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

    # --- maintenance ------------------------------------------------------------------------
    def plan_maintenance(self, reader: Reader, user_id: str) -> MaintenancePlan | None:
        """The user's next sealing step, read from committed state (None: too few fresh docs)."""
        user = user_prefix(user_id)
        return plan_step(reader, user, read_bitmap(reader, DOCS_CF, bitmap_key(user, ALL)))

    def apply_maintenance(self, txn: Txn, step: MaintenancePlan) -> bool:
        """Write a step into `txn`, unless the user's segments changed since it was planned."""
        return apply(txn, step)

    def pending_users(self, reader: Reader) -> list[str]:
        """Users marked as possibly needing maintenance (every add marks its user)."""
        return [pending_user(key) for key, _ in reader.scan(PENDING_CF, b"", None)]

    def forget(self, txn: Txn, reader: Reader, user_id: str) -> bool:
        """Unmark a user in `txn`, unless a step is or will be due: enough fresh docs to seal, or
        retired data to purge (`reader`: committed state, which only maintenance adds retired data to)."""
        user = user_prefix(user_id)
        raw = txn.get(DOCS_CF, dir_key(user))
        if raw is not None:
            next_docnum = UserState.decode(txn.get(DOCS_CF, state_key(user))).next_docnum
            if Directory.decode(raw).to_seal(next_docnum) or has_retired(reader, user):
                return False
        txn.delete(PENDING_CF, pending_key(user))
        return True

    def maintain(self, reader: Reader, committer: AnyCommitter, user_id: str, max_steps: int | None = None) -> int:
        """Plan and commit steps one after another until none is left or after `max_steps`;
        returns the docs sealed."""
        sealed = steps = 0
        while max_steps is None or steps < max_steps:
            step = self.plan_maintenance(reader, user_id)
            if step is None:
                break
            txn = committer.new_txn()
            if self.apply_maintenance(txn, step):
                committer.commit(txn)
                sealed += step.docs
            steps += 1
        return sealed

    def check(self, reader: Reader, user_id: str, docs: Iterable[IndexDoc]) -> list[str]:
        """Compare the stored index with the one `docs` imply; returns the problems (empty: they match).
        `docs` are read once, as a stream (see check.py)."""
        return check_user(reader, user_prefix(user_id), docs)[1]
