"""The stored shapes of one storage node: frozen dataclasses, no encoding, no I/O."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

from tidings_runtime.mime import Address, AttachmentPart, ParsedMail

__all__ = ["Address", "AttachmentPart", "ParsedMail", "MessageRecord", "FolderCounts", "cells_digest", "DirectoryValue"]


@dataclass(frozen=True)
class MessageRecord:
    """One stored message of one user: immutable content plus the mutable cells."""

    id: str
    thread_id: str
    received_ms: int
    size: int
    rfc822_msgid: str
    in_reply_to: str
    references: tuple[str, ...]
    from_: tuple[Address, ...]
    to: tuple[Address, ...]
    cc: tuple[Address, ...]
    bcc: tuple[Address, ...]
    subject: str
    snippet: str
    attachments: tuple[AttachmentPart, ...]
    # Mutable cells, resolved last-writer-wins by `version` (an HLC timestamp).
    folder_no: int
    unread: bool
    starred: bool
    version: int
    tombstone: bool = False
    # IMAP's other flags (codec's record format 2; absent from older records: all off).
    answered: bool = False
    draft: bool = False
    deleted: bool = False                # IMAP \Deleted: marked for EXPUNGE, not yet our delete
    keywords: tuple[str, ...] = ()       # tidings_runtime.keywords.canonical
    # The header fields IMAP lists (tidings_runtime.kept_headers), kept at store time; None in a
    # record stored before they were kept, or when they cannot be (the reader reads the raw).
    headers: bytes | None = None

    @property
    def has_imap_flags(self) -> bool:
        return self.answered or self.draft or self.deleted or bool(self.keywords)

    def cells(self) -> bytes:
        """The mutable cells but the version, hashed (8 bytes; empty for a tombstone): two
        copies of one version with different cells are told apart, and the larger wins."""
        if self.tombstone:
            return b""
        return cells_digest(self.folder_no, self.unread, self.starred, self.answered, self.draft,
                            self.deleted, self.keywords)

    @property
    def has_attachments(self) -> bool:
        return bool(self.attachments)


def cells_digest(folder_no: int, unread: bool, starred: bool, answered: bool, draft: bool, deleted: bool,
                 keywords: tuple[str, ...]) -> bytes:
    flags = sum(bit << i for i, bit in enumerate((unread, starred, answered, draft, deleted)))
    text = "\n".join(keywords).encode()
    return hashlib.blake2b(folder_no.to_bytes(4, "big") + bytes([flags]) + text, digest_size=8).digest()


@dataclass(frozen=True)
class FolderCounts:
    total: int = 0
    unread: int = 0

    def plus(self, total: int, unread: int) -> FolderCounts:
        return FolderCounts(self.total + total, self.unread + unread)


@dataclass(frozen=True)
class DirectoryValue:
    value: bytes
    version: int
