"""Shared test helpers for the storage node: raw mail, ids, engines with the embedded index."""
from __future__ import annotations

from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path
from typing import TypeVar

from search_node.index import COLUMN_FAMILIES as SEARCH_COLUMN_FAMILIES
from storage_node import codec
from storage_node.batch import Txn
from storage_node.blobs import LocalBlobStore
from storage_node.engine import Engine, MessageState, NewMessage, run_group
from storage_node.indexing import EmbeddedIndex
from tidings_runtime.mime import parse_mail

T = TypeVar("T")

USER = "0123456789abcdef"
OTHER = "fedcba9876543210"


def raw_mail(subject: str = "hello", body: str = "hi there") -> bytes:
    m = EmailMessage()
    m["From"] = "Bob <bob@example.test>"
    m["To"] = "alice@example.test"
    m["Subject"] = subject
    m["Message-ID"] = f"<{subject.replace(' ', '.')}@example.test>"
    m.set_content(body)
    return m.as_bytes()


def mid(n: int) -> str:
    return f"{n:032x}"


def new(message_id: str, ms: int, user: str = USER, unread: bool = True, raw: bytes | None = None,
        folder: str = "inbox", version: int = 1, body: bytes | None = None) -> NewMessage:
    raw = raw or raw_mail(f"m{message_id[-4:]}")
    return NewMessage(user_id=user, id=message_id, thread_id=message_id[:16], folder_id=folder, unread=unread,
                      starred=False, received_ms=ms, version=version, size=len(raw), parsed=parse_mail(raw),
                      body_value=body or codec.encode_inline_body(raw))


def state(message_id: str, version: int, *, user: str = USER, tombstone: bool = False, folder: str = "inbox",
          unread: bool = True, starred: bool = False, ms: int = 1000) -> MessageState:
    return MessageState(user_id=user, id=message_id, version=version, tombstone=tombstone,
                        raw=b"" if tombstone else raw_mail(f"m{message_id[-4:]}", "replicated body"),
                        folder_id=folder, unread=unread, starred=starred, received_ms=ms,
                        thread_id=message_id[:16])


def indexed_engine(path: Path) -> Engine:
    """An engine as server.open_engine makes it: search column families and the embedded index."""
    return Engine(path / "db", LocalBlobStore(path / "blobs"), extra_column_families=SEARCH_COLUMN_FAMILIES,
                  index=EmbeddedIndex())


def apply(engine: Engine, fn: Callable[[Txn], T]) -> T:
    """Run one mutation in a synced batch of its own; raise what it raised."""
    [result] = run_group(engine, [fn])
    if isinstance(result, Exception):
        raise result
    return result  # type: ignore[return-value]
