"""Index keys and values: posting keys, per-user doc numbers, doc records and doc bitmaps.

A posting key is kind(1) | term utf-8 | 0x00 | field(1): one term's lists for every field are
adjacent in key order, and so are all terms sharing a prefix. Two column families.
`search_postings`: the segments that hold posting lists by those keys (see segments.py).
`search_docs`: per-user state, doc records, forward records (analyzed text), fresh postings
records, the segment directory, the message-id -> doc number map and the doc bitmaps (all,
displaced, flags, folders, size slices), each in two tiers (see tiers.py). `search_pending`:
user -> empty, for users whose postings may need maintenance, so a restarted node finds them.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

POSTINGS_CF = "search_postings"
DOCS_CF = "search_docs"
PENDING_CF = "search_pending"
COLUMN_FAMILIES: tuple[str, ...] = (POSTINGS_CF, DOCS_CF, PENDING_CF)

_DOCNUM = struct.Struct(">I")
_STATE = struct.Struct(">BIq16s")  # version, next doc number, high-water received_ms, high-water id
_META = struct.Struct(">BqQB16s")  # version, received_ms, size, flags, id; folder id follows
_VERSION = 1
UNREAD, STARRED, ATTACHMENT = 1, 2, 4
SIZE_BITS = 48

ALL = b"all"  # every live doc number of the user
DISPLACED = b"displaced"  # docs that arrived after a newer one: doc-number order is not time order for them
FLAG_BITMAPS = {UNREAD: b"unread", STARRED: b"starred", ATTACHMENT: b"attachment"}


def user_prefix(user_id: str) -> bytes:
    if len(user_id) != 16 or user_id.lower() != user_id:
        raise ValueError(f"user id must be 16 lowercase hex digits: {user_id!r}")
    return bytes.fromhex(user_id)


def doc_id_bytes(doc_id: str) -> bytes:
    if len(doc_id) != 32 or doc_id.lower() != doc_id:
        raise ValueError(f"message id must be 32 lowercase hex digits: {doc_id!r}")
    return bytes.fromhex(doc_id)


# --- posting keys -----------------------------------------------------------------------

def posting_key(kind: int, term: str, field: int) -> bytes:
    """The key of one (kind, term, field) posting list (fields.posting_texts builds the same, as text)."""
    return b"%c%s\x00%c" % (kind, term.encode(), field)


def term_range(kind: int, term: str) -> tuple[bytes, bytes]:
    """Keys of one term in every field."""
    base = b"%c%s" % (kind, term.encode())
    return base + b"\x00", base + b"\x01"


def prefix_range(kind: int, prefix: str) -> tuple[bytes, bytes]:
    """Keys of every term starting with `prefix` (0xff never occurs in UTF-8)."""
    base = b"%c%s" % (kind, prefix.encode())
    return base, base + b"\xff"


def split_posting_key(key: bytes) -> tuple[int, str, int]:
    """(kind, term, field) of a posting key."""
    return key[0], key[1:-2].decode(), key[-1]


def user_range(user: bytes) -> tuple[bytes, bytes]:
    """Every key of one user in either column family (no key byte after the user prefix is 0xff)."""
    return user, user + b"\xff"


# --- doc keys -----------------------------------------------------------------------------

def state_key(user: bytes) -> bytes:
    return user + b"s"


def rebuild_marker(user: bytes) -> bytes:
    """Present while a chunked rebuild of the user is under way (or was interrupted)."""
    return user + b"r"


def meta_key(user: bytes, docnum: int) -> bytes:
    return user + b"d" + _DOCNUM.pack(docnum)


def forward_key(user: bytes, docnum: int) -> bytes:
    return user + b"f" + _DOCNUM.pack(docnum)


_TIME = struct.Struct(">QI")


def late_key(user: bytes, received_ms: int, docnum: int) -> bytes:
    """A displaced doc by receive time, so a time range finds its displaced docs by one scan."""
    return user + b"t" + _TIME.pack(received_ms + (1 << 63), docnum)


def late_range(user: bytes, lo_ms: int | None, hi_ms: int | None) -> tuple[bytes, bytes]:
    lo = user + b"t" + _TIME.pack(lo_ms + (1 << 63), 0) if lo_ms is not None else user + b"t"
    hi = user + b"t" + _TIME.pack(hi_ms + (1 << 63), 0) if hi_ms is not None else user + b"u"
    return lo, hi


def late_docnum(key: bytes) -> int:
    return _TIME.unpack_from(key, len(key) - _TIME.size)[1]


def id_key(user: bytes, doc_id: str) -> bytes:
    return user + b"i" + doc_id_bytes(doc_id)


def bitmap_key(user: bytes, name: bytes) -> bytes:
    return user + b"b" + name


def folder_bitmap(folder_id: str) -> bytes:
    return b"folder:" + folder_id.encode()


def size_slice(bit: int) -> bytes:
    return b"size:%02d" % bit


def pack_docnum(docnum: int) -> bytes:
    return _DOCNUM.pack(docnum)


def unpack_docnum(data: bytes) -> int:
    return _DOCNUM.unpack(data)[0]


# --- values -----------------------------------------------------------------------------

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


@dataclass(frozen=True)
class DocMeta:
    """What ordering, filters and updates need of a doc without reading its text."""

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
