"""The embedded search index as the engine sees it: every message change becomes the
matching index change in the same Txn, so index and mail share one WriteBatch."""
from __future__ import annotations

from collections.abc import Callable, Iterator

from search_node.index import IndexDoc, SearchIndex
from storage_node.batch import Txn
from storage_node.engine import Engine
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


def stored_docs(engine: Engine, user_id: str) -> Iterator[IndexDoc]:
    """The index documents the stored messages of a user imply (bodies parsed again)."""
    for record in engine.user_records(user_id):
        yield index_doc(record, parse_mail(engine.raw(user_id, record.id)))


def stored_docs_in_time_order(engine: Engine, user_id: str) -> Iterator[IndexDoc]:
    """stored_docs by (received_ms, id), one message parsed at a time: only the order is held
    in memory (two small values a message), never the mailbox's text."""
    order = sorted((record.received_ms, record.id) for record in engine.user_records(user_id))
    for _, message_id in order:
        record = engine.record(user_id, message_id)
        if record is not None and not record.tombstone:
            yield index_doc(record, parse_mail(engine.raw(user_id, message_id)))


def rebuild_user(engine: Engine, index: SearchIndex, txn: Txn, user_id: str) -> int:
    """Replace a user's index by one built from the stored messages; returns the count.

    Runs as a mutation of its own in the commit thread, so no other write interleaves with
    the chunks it commits straight to the engine (its `new_txn`/`commit` make it the rebuild's
    Committer) before its last one (which goes into `txn`)."""
    count = index.rebuild(txn, engine, user_id, stored_docs_in_time_order(engine, user_id), chunks=engine)
    if isinstance(engine.index, EmbeddedIndex):
        engine.index.added(user_id)  # sealed already; what the sealing retired waits for the maintainer's purge
    return count


class _StoredDocs:
    """stored_docs, readable more than once (check reads them again to name damaged postings)."""

    def __init__(self, engine: Engine, user_id: str) -> None:
        self._engine, self._user_id = engine, user_id
        self.count = 0

    def __iter__(self) -> Iterator[IndexDoc]:
        self.count = 0
        for doc in stored_docs(self._engine, self._user_id):
            self.count += 1
            yield doc


def check_user(engine: Engine, index: SearchIndex, user_id: str) -> tuple[int, list[str]]:
    docs = _StoredDocs(engine, user_id)
    problems = index.check(engine, user_id, docs)
    return docs.count, problems
