"""The stored shapes of one storage node: frozen dataclasses, no encoding, no I/O."""
from __future__ import annotations

from dataclasses import dataclass

from tidings_runtime.mime import Address, AttachmentPart, ParsedMail

__all__ = ["Address", "AttachmentPart", "ParsedMail", "MessageRecord", "FolderCounts", "DirectoryValue"]


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

    @property
    def has_attachments(self) -> bool:
        return bool(self.attachments)


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
