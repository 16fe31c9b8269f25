"""Index records: the user state, doc records, and the doc bitmaps a doc belongs to (keys: keys.py).

Values carry a version byte. The state holds the next doc number and the time-order
high-water mark; a doc record what ordering, filters and updates need without the text.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any, NamedTuple

from search_node.keys import (
    ATTACHMENT_DOCS,
    STARRED_DOCS,
    UNREAD_DOCS,
    folder_bitmap,
    size_slice,
)

_STATE = struct.Struct(">BIq16s")  # version, next doc number, high-water received_ms, high-water id
_META = struct.Struct(">BqQB16s")  # version, received_ms, size, flags, id; folder id follows
_VERSION = 1
UNREAD, STARRED, ATTACHMENT = 1, 2, 4
SIZE_BITS = 48
FLAG_BITMAPS = {UNREAD: UNREAD_DOCS, STARRED: STARRED_DOCS, ATTACHMENT: ATTACHMENT_DOCS}


@dataclass(frozen=True)
class UserState:
    """Next doc number, and the newest (received_ms, id) numbered so far: the time-order high-water mark."""

    next_docnum: int = 0
    high_ms: int = -(1 << 62)
    high_id: bytes = b""

    def encode(self) -> bytes:
        return _STATE.pack(_VERSION, self.next_docnum, self.high_ms, self.high_id.ljust(16, b"\x00"))

    @classmethod
    def decode(cls, data: bytes | None) -> UserState:
        if data is None:
            return cls()
        _v, nxt, ms, hid = _STATE.unpack(data)
        return cls(nxt, ms, hid if ms > -(1 << 62) else b"")


class DocMeta(NamedTuple):
    """What ordering, filters and updates need of a doc without reading its text (a named
    tuple, not a frozen dataclass: a search decodes a record for each doc of its page and for
    each out-of-order doc above it, a few hundred, and a tuple is made in half the time)."""

    doc_id: str
    received_ms: int
    size: int
    flags: int
    folder_id: str

    @property
    def sort_key(self) -> tuple[int, str]:
        return self.received_ms, self.doc_id

    def encode(self) -> bytes:
        head = _META.pack(_VERSION, self.received_ms, self.size, self.flags, bytes.fromhex(self.doc_id))
        return head + self.folder_id.encode()

    @classmethod
    def decode(cls, data: bytes) -> DocMeta:
        _v, ms, size, flags, raw_id = _META.unpack_from(data)
        return cls(raw_id.hex(), ms, size, flags, data[_META.size:].decode())


def flags_of(unread: bool, starred: bool, has_attachments: bool) -> int:
    return (UNREAD if unread else 0) | (STARRED if starred else 0) | (ATTACHMENT if has_attachments else 0)


def meta_of(doc: Any) -> DocMeta:
    """The record of an IndexDoc."""
    if not 0 <= doc.size < 1 << SIZE_BITS:
        raise ValueError(f"message size out of range: {doc.size}")
    return DocMeta(doc.id, doc.received_ms, doc.size, flags_of(doc.unread, doc.starred, doc.has_attachments),
                   doc.folder_id)


def doc_bitmaps(meta: DocMeta) -> list[bytes]:
    """Names of the doc bitmaps besides `all` and `displaced` a doc belongs to."""
    names = [name for flag, name in FLAG_BITMAPS.items() if meta.flags & flag]
    names.append(folder_bitmap(meta.folder_id))
    names.extend(size_slice(bit) for bit in range(SIZE_BITS) if meta.size >> bit & 1)
    return names
