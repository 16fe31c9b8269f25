"""The embedded search index as the engine sees it: every message change becomes the
matching index change in the same Txn, so index and mail share one WriteBatch.

Rebuild and check read every body again; a message whose blob is missing is indexed (and
checked) by its record alone, its headers, folder and flags, without body text, HTML or
attachments, and reported, so one lost blob neither stops a rebuild halfway nor hides the
message from searches on its sender or subject."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from search_node.index import IndexDoc, SearchIndex
from storage_node.batch import Txn
from storage_node.engine import Engine
from storage_node.errors import BlobMissing
from storage_node.model import MessageRecord, ParsedMail
from tidings_runtime.mime import parse_mail
from tidings_runtime.partitions import folder_id_of


def index_doc(record: MessageRecord, parsed: ParsedMail) -> IndexDoc:
    texts = parsed.attachment_texts or (None,) * len(parsed.attachments)
    return IndexDoc(
        id=record.id, received_ms=record.received_ms, size=record.size,
        folder_id=folder_id_of(record.folder_no), unread=record.unread, starred=record.starred,
        has_attachments=record.has_attachments, rfc822msgid=record.rfc822_msgid,
        from_=record.from_, to=record.to, cc=record.cc, bcc=record.bcc, subject=record.subject,
        text=parsed.text, html=parsed.html,
        attachments=tuple((a.filename, a.content_type, text) for a, text in zip(parsed.attachments, texts)),
    )


class EmbeddedIndex:
    """Implements engine.MailIndex over search_node's SearchIndex."""

    def __init__(self, index: SearchIndex | None = None) -> None:
        self.index = index or SearchIndex()
        self.on_added: Callable[[str], None] | None = None  # told of users whose index got docs

    def on_store(self, txn: Txn, user_id: str, record: MessageRecord, parsed: ParsedMail) -> None:
        self.index.add(txn, user_id, index_doc(record, parsed))
        self.added(user_id)

    def added(self, user_id: str) -> None:
        if self.on_added is not None:
            self.on_added(user_id)

    def on_update(self, txn: Txn, user_id: str, record: MessageRecord) -> None:
        self.index.update(txn, user_id, record.id, folder_id=folder_id_of(record.folder_no),
                          unread=record.unread, starred=record.starred)

    def on_expunge(self, txn: Txn, user_id: str, record: MessageRecord) -> None:
        self.index.remove(txn, user_id, record.id)


NO_BODY = ParsedMail(rfc822_msgid="", in_reply_to="", references=(), from_=(), to=(), cc=(), bcc=(), subject="",
                     text="", html="", snippet="", attachments=())


def _doc(engine: Engine, user_id: str, record: MessageRecord, missing: list[str]) -> IndexDoc:
    """The record's index document; by the record alone (its id added to `missing`) when its
    body's blob is not in the store."""
    try:
        parsed = parse_mail(engine.raw(user_id, record.id))
    except BlobMissing:
        missing.append(record.id)
        parsed = NO_BODY
    return index_doc(record, parsed)


def stored_docs(engine: Engine, user_id: str, missing: list[str]) -> Iterator[IndexDoc]:
    """The index documents the stored messages of a user imply (bodies parsed again)."""
    for record in engine.user_records(user_id):
        yield _doc(engine, user_id, record, missing)


def stored_docs_in_time_order(engine: Engine, user_id: str, missing: list[str]) -> Iterator[IndexDoc]:
    """stored_docs by (received_ms, id), one message parsed at a time: only the order is held
    in memory (two small values a message), never the mailbox's text."""
    order = sorted((record.received_ms, record.id) for record in engine.user_records(user_id))
    for _, message_id in order:
        record = engine.record(user_id, message_id)
        if record is not None and not record.tombstone:
            yield _doc(engine, user_id, record, missing)


@dataclass
class Rebuilt:
    documents: int
    blobs_missing: list[str] = field(default_factory=list)    # ids indexed without their body


def rebuild_user(engine: Engine, index: SearchIndex, txn: Txn, user_id: str) -> Rebuilt:
    """Replace a user's index by one built from the stored messages: the count, and the
    messages indexed without their body (blob missing).

    Runs as a mutation of its own in the commit thread, so no other write interleaves with
    the chunks it commits straight to the engine (its `new_txn`/`commit` make it the rebuild's
    Committer) before its last one (which goes into `txn`)."""
    rebuilt = Rebuilt(0)
    rebuilt.documents = index.rebuild(txn, engine, user_id,
                                      stored_docs_in_time_order(engine, user_id, rebuilt.blobs_missing), chunks=engine)
    if isinstance(engine.index, EmbeddedIndex):
        engine.index.added(user_id)  # sealed already; what the sealing retired waits for the maintainer's purge
    return rebuilt


class _StoredDocs:
    """stored_docs, readable more than once (check reads them again to name damaged postings)."""

    def __init__(self, engine: Engine, user_id: str) -> None:
        self._engine, self._user_id = engine, user_id
        self.count = 0
        self.missing: list[str] = []

    def __iter__(self) -> Iterator[IndexDoc]:
        self.count, self.missing = 0, []
        for doc in stored_docs(self._engine, self._user_id, self.missing):
            self.count += 1
            yield doc


def check_user(engine: Engine, index: SearchIndex, user_id: str) -> tuple[int, list[str]]:
    """(messages, problems): the index against the stored messages, each message whose blob
    is missing a problem of its own (its body cannot be checked)."""
    docs = _StoredDocs(engine, user_id)
    problems = index.check(engine, user_id, docs)
    return docs.count, [*problems, *(f"message {m}: blob missing, body not checked" for m in docs.missing)]
