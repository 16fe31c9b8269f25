"""One node's RocksDB and the rules of the data model: apply mutations, read, resolve LWW.

No gRPC here (service.py translates). Mutations are plain functions of a `Txn`, so the
group committer can run many of them into one synced WriteBatch. Every mutation is
idempotent: storing an id twice, or applying an older version, changes nothing.
"""
from __future__ import annotations

import itertools
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

from storage_node import codec, keys, queue_index, spam_model
from storage_node.batch import Txn
from storage_node.blobs import BlobStore
from storage_node.errors import InvalidArgument, NotFound
from storage_node.model import DirectoryValue, FolderCounts, MessageRecord
from storage_node.rdict_store import RdictStore
from tidings_runtime import keywords
from tidings_runtime.kept_headers import kept
from tidings_runtime.mime import ParsedMail, parse_mail
from tidings_runtime.partitions import folder_id_of, folder_number

INLINE_BODY_LIMIT = 256 * 1024  # larger raw messages go to the object store


class MailIndex(Protocol):
    """What the engine needs of the embedded search index (search_node.index.SearchIndex)."""

    def on_store(self, txn: Txn, user_id: str, record: MessageRecord, parsed: ParsedMail) -> None: ...
    def on_update(self, txn: Txn, user_id: str, record: MessageRecord) -> None: ...
    def on_expunge(self, txn: Txn, user_id: str, record: MessageRecord) -> None: ...


@dataclass(frozen=True)
class NewMessage:
    user_id: str
    id: str
    thread_id: str
    folder_id: str
    unread: bool
    starred: bool
    received_ms: int
    version: int
    size: int
    parsed: ParsedMail
    body_value: bytes  # already encoded: inline (compressed) or a blob reference
    answered: bool = False
    draft: bool = False
    deleted: bool = False
    keywords: tuple[str, ...] = ()
    headers: bytes | None = None   # tidings_runtime.kept_headers.kept(raw)


@dataclass(frozen=True)
class MessageState:
    """A message as one replica holds it (raw empty for a tombstone), or as StoreMessage
    hands it over; the fields are the wire's ReplicaMessage."""

    user_id: str
    id: str
    version: int
    tombstone: bool
    raw: bytes
    folder_id: str
    unread: bool
    starred: bool
    received_ms: int
    thread_id: str
    answered: bool = False
    draft: bool = False
    deleted: bool = False
    keywords: tuple[str, ...] = ()


@dataclass(frozen=True)
class Change:
    """An update of some cells (None: unchanged). Keywords: `keywords_set` replaces the set
    (a repair's newest state); otherwise `keywords_add` and `keywords_remove` change it."""

    user_id: str
    id: str
    version: int
    unread: bool | None = None
    starred: bool | None = None
    folder_id: str | None = None
    expunge: bool = False
    answered: bool | None = None
    draft: bool | None = None
    deleted: bool | None = None
    keywords_add: tuple[str, ...] = ()
    keywords_remove: tuple[str, ...] = ()
    keywords_set: tuple[str, ...] | None = None

    def keywords_of(self, held: tuple[str, ...]) -> tuple[str, ...]:
        try:
            if self.keywords_set is not None:
                return keywords.canonical(self.keywords_set)
            if not (self.keywords_add or self.keywords_remove):
                return held
            return keywords.changed(held, self.keywords_add, self.keywords_remove)
        except keywords.BadKeyword as exc:
            raise InvalidArgument(str(exc)) from None


def check_keywords(names: tuple[str, ...]) -> tuple[str, ...]:
    try:
        return keywords.canonical(names)
    except keywords.BadKeyword as exc:
        raise InvalidArgument(str(exc)) from None


def folder_no(folder_id: str) -> int:
    """A system folder's or a custom folder's number (its id spells it: no lookup)."""
    number = folder_number(folder_id)
    if number is None:
        raise InvalidArgument(f"unknown folder {folder_id!r}")
    return number


def check_user_id(user_id: str) -> None:
    if len(user_id) != 2 * keys.USER_BYTES or not _is_hex(user_id):
        raise InvalidArgument(f"malformed user id {user_id!r}")


def check_message_id(message_id: str) -> None:
    if len(message_id) != 2 * keys.ID_BYTES or not _is_hex(message_id):
        raise NotFound(f"no message {message_id!r}")


def check_new_message_id(message_id: str) -> None:
    """A message id handed in to be written: malformed is bad input (not merely absent)."""
    if len(message_id) != 2 * keys.ID_BYTES or not _is_hex(message_id):
        raise InvalidArgument(f"malformed message id {message_id!r}")


_LOWER_HEX = re.compile("[0-9a-f]*")


def _is_hex(value: str) -> bool:
    return _LOWER_HEX.fullmatch(value) is not None


class Engine(RdictStore):
    """The node's RocksDB (get, multi_get, scan from RdictStore: the search index's Reader)
    and the data model's rules."""

    def __init__(self, path: Path, blobs: BlobStore, extra_column_families: Iterable[str] = (),
                 index: MailIndex | None = None) -> None:
        path.mkdir(parents=True, exist_ok=True)
        super().__init__(str(path), [*keys.MAIL_COLUMN_FAMILIES, *keys.NODE_COLUMN_FAMILIES,
                                     *extra_column_families], sync=True)
        self._write_lock = threading.Lock()
        self.blobs = blobs
        self.index = index

    def encode_body(self, raw: bytes) -> bytes:
        """Inline and compressed, or (large) in the object store first: never a dangling ref."""
        if len(raw) > INLINE_BODY_LIMIT:
            return codec.encode_blob_body(self.blobs.put(raw))
        return codec.encode_inline_body(raw)

    def prepare(self, state: MessageState, parsed: ParsedMail | None = None) -> NewMessage:
        """Parse (unless the router shipped its parse of the same bytes) and place the body (blob
        first, so a reference never dangles); no RocksDB writes."""
        return NewMessage(
            user_id=state.user_id, id=state.id, thread_id=state.thread_id or state.id[:2 * keys.THREAD_BYTES],
            folder_id=state.folder_id, unread=state.unread, starred=state.starred,
            received_ms=state.received_ms, version=state.version, size=len(state.raw),
            parsed=parsed or parse_mail(state.raw), body_value=self.encode_body(state.raw),
            answered=state.answered, draft=state.draft, deleted=state.deleted,
            keywords=check_keywords(tuple(state.keywords)), headers=kept(state.raw),
        )

    def new_txn(self) -> Txn:
        return Txn(self)

    def commit(self, txn: Txn) -> None:
        """Write the batch with the WAL synced: durable when this returns."""
        if len(txn):
            with self._write_lock:
                self.write(txn.to_write_batch(self.handle))

    # -- mutations ---------------------------------------------------------------------
    def store_message(self, txn: Txn, new: NewMessage) -> tuple[bool, MessageRecord]:
        key = keys.message(new.user_id, new.id)
        existing = txn.get(keys.CF_MESSAGES, key)
        if existing is not None:
            return False, codec.decode_record(existing)
        p = new.parsed
        record = MessageRecord(
            id=new.id, thread_id=new.thread_id, received_ms=new.received_ms, size=new.size,
            rfc822_msgid=p.rfc822_msgid, in_reply_to=p.in_reply_to, references=p.references,
            from_=p.from_, to=p.to, cc=p.cc, bcc=p.bcc, subject=p.subject, snippet=p.snippet,
            attachments=p.attachments, folder_no=folder_no(new.folder_id), unread=new.unread,
            starred=new.starred, version=new.version, answered=new.answered, draft=new.draft,
            deleted=new.deleted, keywords=new.keywords, headers=new.headers,
        )
        txn.put(keys.CF_BODIES, key, new.body_value)
        txn.put(keys.CF_THREADS, keys.thread_entry(new.user_id, record.thread_id, record.received_ms, record.id), b"")
        if p.rfc822_msgid:
            txn.put(keys.CF_MSGIDS, keys.msgid(new.user_id, p.rfc822_msgid), bytes.fromhex(record.thread_id))
        self._place(txn, new.user_id, None, record)
        if self.index is not None:
            self.index.on_store(txn, new.user_id, record, p)
        return True, record

    def update_message(self, txn: Txn, change: Change) -> MessageRecord:
        check_message_id(change.id)  # an id that cannot exist is NotFound, not a ValueError (UNKNOWN)
        key = keys.message(change.user_id, change.id)
        value = txn.get(keys.CF_MESSAGES, key)
        if value is None:
            raise NotFound(f"no message {change.id}")
        old = codec.decode_record(value)
        if old.tombstone:
            raise NotFound(f"message {change.id} was deleted")
        if change.expunge:
            return self._expunge(txn, change.user_id, old, change.version)  # a tombstone wins over any version
        if change.version <= old.version:
            return old  # last writer wins: this change is older than what we hold
        return self._set_cells(txn, change.user_id, old, replace(
            old,
            unread=old.unread if change.unread is None else change.unread,
            starred=old.starred if change.starred is None else change.starred,
            folder_no=old.folder_no if change.folder_id is None else folder_no(change.folder_id),
            answered=old.answered if change.answered is None else change.answered,
            draft=old.draft if change.draft is None else change.draft,
            deleted=old.deleted if change.deleted is None else change.deleted,
            keywords=change.keywords_of(old.keywords),
            version=change.version,
        ))

    def _set_cells(self, txn: Txn, user_id: str, old: MessageRecord, new: MessageRecord) -> MessageRecord:
        self._place(txn, user_id, old, new)
        if self.index is not None:
            self.index.on_update(txn, user_id, new)
        return new

    def apply_replica(self, txn: Txn, state: MessageState, prepared: NewMessage | None = None) -> bool:
        """Merge a message as another replica holds it; True when this replica changed.

        Not held: stored exactly as given (a tombstone as a bare record: no body, no rows).
        Held live: a newer live version sets the mutable cells; a tombstone of any version
        expunges (message ids are never reused, so a deleted message never comes back).
        Held tombstone: stays; only its version rises to a newer tombstone's, so replicas
        converge on one (key, version, tombstone). `prepared` is `prepare(state)` done
        ahead, off the commit path; it is made here when missing.
        """
        key = keys.message(state.user_id, state.id)
        value = txn.get(keys.CF_MESSAGES, key)
        if value is None:
            if state.tombstone:
                txn.put(keys.CF_MESSAGES, key, codec.encode_record(_bare_tombstone(state)))
            else:
                self.store_message(txn, prepared or self.prepare(state))
            return True
        held = codec.decode_record(value)
        if state.tombstone:
            if not held.tombstone:
                self._expunge(txn, state.user_id, held, state.version)
            elif state.version > held.version:
                txn.put(keys.CF_MESSAGES, key, codec.encode_record(replace(held, version=state.version)))
            else:
                return False
            return True
        if held.tombstone or state.version < held.version:
            return False
        new = replace(
            held, folder_no=folder_no(state.folder_id), unread=state.unread, starred=state.starred,
            answered=state.answered, draft=state.draft, deleted=state.deleted,
            keywords=check_keywords(tuple(state.keywords)), version=state.version)
        if state.version == held.version and new.cells() <= held.cells():
            return False  # the same, or the loser of a tie (copies of one version that differ)
        self._set_cells(txn, state.user_id, held, new)
        return True

    def _expunge(self, txn: Txn, user_id: str, old: MessageRecord, version: int) -> MessageRecord:
        """Replace a live message by its tombstone, at the delete's version (lower than the live
        copy's, possibly: a tombstone wins anyway, and every replica then holds the same one)."""
        tomb = replace(old, tombstone=True, version=version, unread=False, starred=False, answered=False,
                       draft=False, deleted=False, keywords=(), headers=None)
        self._unplace(txn, user_id, old)
        txn.delete(keys.CF_BODIES, keys.message(user_id, old.id))
        txn.delete(keys.CF_THREADS, keys.thread_entry(user_id, old.thread_id, old.received_ms, old.id))
        txn.put(keys.CF_MESSAGES, keys.message(user_id, old.id), codec.encode_record(tomb))
        if self.index is not None:
            self.index.on_expunge(txn, user_id, old)
        return tomb

    def _unplace(self, txn: Txn, user_id: str, old: MessageRecord) -> None:
        listing = keys.listing(user_id, old.folder_no, old.received_ms, old.id)
        txn.delete(keys.CF_BY_FOLDER, listing)
        txn.delete(keys.CF_UNREAD, listing)
        self._count(txn, user_id, old.folder_no, -1, -1 if old.unread else 0)

    def _place(self, txn: Txn, user_id: str, old: MessageRecord | None, new: MessageRecord) -> None:
        """Write the record and its listing rows, keeping unread table and counters true."""
        if old is not None:
            self._unplace(txn, user_id, old)
        value = codec.encode_record(new)
        listing = keys.listing(user_id, new.folder_no, new.received_ms, new.id)
        txn.put(keys.CF_MESSAGES, keys.message(user_id, new.id), value)
        txn.put(keys.CF_BY_FOLDER, listing, value)
        if new.unread:
            txn.put(keys.CF_UNREAD, listing, value)
        self._count(txn, user_id, new.folder_no, 1, 1 if new.unread else 0)

    def _count(self, txn: Txn, user_id: str, folder: int, total: int, unread: int) -> None:
        key = keys.folder(user_id, folder)
        counts = codec.decode_counts(txn.get(keys.CF_FOLDERS, key)).plus(total, unread)
        txn.put(keys.CF_FOLDERS, key, codec.encode_counts(counts))

    def put_directory(self, txn: Txn, key: str, entry: DirectoryValue) -> DirectoryValue:
        dkey = keys.directory(key)
        current = txn.get(keys.CF_DIRECTORY, dkey)
        held = None if current is None else codec.decode_directory(current)
        if held is not None and held.version >= entry.version:
            return held
        txn.put(keys.CF_DIRECTORY, dkey, codec.encode_directory(entry))
        if queue_index.is_queue_item(key):
            queue_index.reindex(txn, key, held.value if held is not None else None, entry.value)
        elif spam_model.is_event(key):
            spam_model.rederive(txn, key, held.value if held is not None else None, entry.value)
        return entry

    def apply_directory(self, txn: Txn, key: str, entry: DirectoryValue) -> bool:
        """put_directory's LWW; True when the entry was written."""
        return self.put_directory(txn, key, entry) is entry

    # -- reads -------------------------------------------------------------------------
    def record(self, user_id: str, message_id: str) -> MessageRecord | None:
        check_message_id(message_id)
        value = self.get(keys.CF_MESSAGES, keys.message(user_id, message_id))
        return None if value is None else codec.decode_record(value)

    def records(self, user_id: str, message_ids: list[str]) -> list[MessageRecord]:
        return [codec.decode_record(v) for v in self.record_values(user_id, message_ids)]

    def record_values(self, user_id: str, message_ids: list[str]) -> list[bytes]:
        """The encoded records of the ids held (codec.decode_record reads one), in the ids' order."""
        ids = [i for i in message_ids if len(i) == 2 * keys.ID_BYTES and _is_hex(i)]
        values = self.multi_get(keys.CF_MESSAGES, keys.messages(user_id, ids))
        return [v for v in values if v is not None]

    def raw(self, user_id: str, message_id: str) -> bytes:
        value = self.get(keys.CF_BODIES, keys.message(user_id, message_id))
        if value is None:
            raise NotFound(f"no message {message_id}")
        raw, ref = codec.decode_body(value)
        return raw if raw is not None else self.blobs.get(ref or "")

    def list_folder(self, user_id: str, folder_id: str, unread_only: bool, limit: int,
                    after: tuple[int, str] | None) -> list[MessageRecord]:
        return [codec.decode_record(v) for v in self.list_folder_values(user_id, folder_id, unread_only, limit, after)]

    def list_folder_values(self, user_id: str, folder_id: str, unread_only: bool, limit: int,
                           after: tuple[int, str] | None) -> list[bytes]:
        """list_folder's records still encoded (the listing keys hold a copy of each record)."""
        number = folder_no(folder_id)
        prefix = keys.folder(user_id, number)
        start = prefix if after is None else keys.prefix_end(keys.listing(user_id, number, *after))
        cf = keys.CF_UNREAD if unread_only else keys.CF_BY_FOLDER
        out: list[bytes] = []
        for _, value in self.scan(cf, start, keys.prefix_end(prefix)):
            out.append(value)
            if len(out) >= limit:
                break
        return out

    def user_records(self, user_id: str) -> Iterator[MessageRecord]:
        """Every live message of one user, in id order."""
        prefix = keys.partition(user_id)
        for _, value in self.scan(keys.CF_MESSAGES, prefix, keys.prefix_end(prefix)):
            record = codec.decode_record(value)
            if not record.tombstone:
                yield record

    def last_key(self, cf: str) -> bytes | None:
        it = self._cfs[cf].iter()
        it.seek_to_last()
        return it.key() if it.valid() else None

    def has_column_family(self, cf: str) -> bool:
        return cf in self._cfs

    def user_ids(self, start: bytes = b"", end: bytes | None = None) -> Iterator[str]:
        """Every user with a message on this node (whose partition key lies in [start, end)):
        one seek per partition, not a full scan."""
        while True:
            first = next(self.scan(keys.CF_MESSAGES, start, end), None)
            if first is None:
                return
            prefix = first[0][:keys.PARTITION_BYTES]
            yield prefix[8:].hex()
            start = keys.prefix_end(prefix)

    def folder_counts(self, user_id: str) -> dict[str, FolderCounts]:
        """Every system folder (zero when empty), then each custom folder this replica has
        counted, by folder id: one scan of the user's counters."""
        counts = {role: FolderCounts() for role in keys.SYSTEM_FOLDERS}
        prefix = keys.partition(user_id)
        for key, value in self.scan(keys.CF_FOLDERS, prefix, keys.prefix_end(prefix)):
            folder_id = folder_id_of(int.from_bytes(key[len(prefix):], "big"))
            if folder_id:
                counts[folder_id] = codec.decode_counts(value)
        return counts

    def thread(self, user_id: str, thread_id: str) -> list[MessageRecord]:
        if not _is_hex(thread_id):
            return []  # no such thread (and no ValueError out of bytes.fromhex)
        prefix = keys.thread(user_id, thread_id)
        ids = [key[-keys.ID_BYTES:].hex() for key, _ in self.scan(keys.CF_THREADS, prefix, keys.prefix_end(prefix))]
        return [r for r in self.records(user_id, ids) if not r.tombstone]

    def lookup_thread(self, user_id: str, rfc822_msgids: list[str]) -> str:
        for mid in rfc822_msgids:
            value = self.get(keys.CF_MSGIDS, keys.msgid(user_id, mid))
            if value is not None:
                return value.hex()
        return ""

    def list_directory(self, partition: str, limit: int, *, due_by_ms: int | None = None,
                       after_key: str = "") -> list[tuple[str, DirectoryValue]]:
        """Entries of a multi-key partition (the queue's shards): due by `due_by_ms` from the
        due index, earliest first, or (None) every entry in key order after `after_key`."""
        if due_by_ms is None:
            start, end = keys.directory_partition_range(partition)
            if after_key:
                start = max(start, keys.prefix_end(keys.directory(after_key)))
            return [(k[8:].decode(), codec.decode_directory(v))
                    for k, v in itertools.islice(self.scan(keys.CF_DIRECTORY, start, end), limit)]
        prefix = keys.derived_prefix(partition)
        index = itertools.islice(self.scan(keys.CF_QUEUE_DUE, prefix, prefix + keys.u64(max(due_by_ms, 0) + 1)), limit)
        due = [index_key[len(prefix) + 8:].decode() for index_key, _ in index]
        held = self.multi_get(keys.CF_DIRECTORY, [keys.directory(key) for key in due])   # one read, not one a key
        return [(key, codec.decode_directory(value)) for key, value in zip(due, held) if value is not None]

    def spam_counts(self, model: str, tokens: list[str]) -> spam_model.Counts:
        """A spam model's counts for these tokens (one multi-get)."""
        return spam_model.counts(self, model, tokens)

    def directory(self, key: str) -> DirectoryValue | None:
        value = self.get(keys.CF_DIRECTORY, keys.directory(key))
        return None if value is None else codec.decode_directory(value)


def _bare_tombstone(state: MessageState) -> MessageRecord:
    """The tombstone of a message this replica never held: no content, only what a ref needs."""
    return MessageRecord(
        id=state.id, thread_id=state.thread_id, received_ms=state.received_ms, size=0, rfc822_msgid="",
        in_reply_to="", references=(), from_=(), to=(), cc=(), bcc=(), subject="", snippet="",
        attachments=(), folder_no=keys.SYSTEM_FOLDERS.get(state.folder_id, 0), unread=False, starred=False,
        version=state.version, tombstone=True,
    )


def run_group(engine: Engine, mutations: list[Callable[[Txn], object]]) -> list[object]:
    """Apply mutations into one batch, each isolated in a child txn; one synced write.

    Returns each mutation's result, or the exception it raised (its writes dropped).
    """
    group = engine.new_txn()
    results: list[object] = []
    for mutate in mutations:
        child = group.child()
        try:
            results.append(mutate(child))
        except Exception as exc:  # the mutation's own error: reported to its caller only
            results.append(exc)
            continue
        child.fold_into(group)
    engine.commit(group)
    return results
