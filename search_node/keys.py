"""Every key byte of the search index is built and split here, from one table of tags.

A user is 8 bytes (its 16 hex digits); all of a user's keys start with them, in every column
family. In `search_docs` a one-byte `DocTag` follows the user and names the kind of key, so
each kind is one key range (`tag_range`). A posting key is kind(1) | term (UTF-8) | 0x00 |
field(1), `Kind` its first byte; in `search_postings` it follows the segment prefix
user | lo(4) | hi(4) as the last key of a block. The layout is described in docs/search.md.
"""
from __future__ import annotations

import struct
from collections.abc import Iterable
from enum import Enum, IntEnum, unique

POSTINGS_CF = "search_postings"
DOCS_CF = "search_docs"
PENDING_CF = "search_pending"  # user -> empty: users whose postings may need maintenance
COLUMN_FAMILIES: tuple[str, ...] = (POSTINGS_CF, DOCS_CF, PENDING_CF)

USER_BYTES = 8
ID_BYTES = 16
KEY_END = b"\xff"  # above every posting key and every tag: UTF-8 never holds 0xff


@unique
class DocTag(bytes, Enum):
    """The byte after the user in `search_docs`: which kind of key follows."""

    STATE = b"s"  # user state: version, next doc number, high-water (received_ms, id)
    REBUILD = b"r"  # present while a chunked rebuild runs
    DIRECTORY = b"g"  # the segment directory
    RETIRED = b"x"  # | due ms(8) | sealed(4): keys a maintenance step replaced, purged when due
    FRESH = b"p"  # | docnum(4): a doc's posting keys until a step seals them
    META = b"d"  # | docnum(4): doc record
    FORWARD = b"f"  # | docnum(4): forward record (analyzed text)
    ID = b"i"  # | message id(16): doc number
    LATE = b"t"  # | received_ms + 2^63 (8) | docnum(4): displaced docs by receive time
    BITMAP = b"b"  # | name | Tier: doc bitmaps


@unique
class Kind(IntEnum):
    """The first byte of a posting key. Summaries sort last, so the other kinds are one range."""

    TERM = 1  # one term
    PAIR = 2  # two adjacent terms "a b" (an exact two-word phrase)
    SUMMARY = 3  # the docs with a plain-field term starting with a 1-3 character prefix (field 0)


@unique
class Tier(bytes, Enum):
    """The last byte of a doc bitmap key: the roaring base, or the packed tail of recent additions."""

    BASE = b"\x00"
    TAIL = b"\x01"


TERM, PAIR, SUMMARY = Kind.TERM, Kind.PAIR, Kind.SUMMARY


def _check_tags() -> None:
    """Tags are single bytes below KEY_END (so user_range covers a user), and summaries are the last kind."""
    for tag in (*DocTag, *Tier):
        if len(tag) != 1 or tag >= KEY_END:
            raise AssertionError(f"search key tag {tag!r} must be one byte below 0xff")
    if max(Kind) is not Kind.SUMMARY or min(Kind) < 1:
        raise AssertionError("posting kinds: summaries must sort after every other kind, none may be 0")


_check_tags()

_DOCNUM = struct.Struct(">I")
_TIME = struct.Struct(">QI")
_RETIRED = struct.Struct(">QI")
_SPAN = struct.Struct(">II")
_TIME_OFFSET = 1 << 63


# --- users and ids --------------------------------------------------------------------------

def user_prefix(user_id: str) -> bytes:
    """The 8 bytes every key of the user starts with."""
    if len(user_id) != 2 * USER_BYTES or user_id.lower() != user_id:
        raise ValueError(f"user id must be 16 lowercase hex digits: {user_id!r}")
    return bytes.fromhex(user_id)


def doc_id_bytes(doc_id: str) -> bytes:
    if len(doc_id) != 2 * ID_BYTES or doc_id.lower() != doc_id:
        raise ValueError(f"message id must be 32 lowercase hex digits: {doc_id!r}")
    return bytes.fromhex(doc_id)


def user_range(user: bytes) -> tuple[bytes, bytes]:
    """Every key of one user in any column family (no key byte after the user prefix is 0xff)."""
    return user, user + KEY_END


def pending_key(user: bytes) -> bytes:
    return user


def pending_user(key: bytes) -> str:
    """The user id of a `search_pending` key."""
    return key.hex()


def pack_docnum(docnum: int) -> bytes:
    """A doc number as keys hold it, and as the id map stores it: big-endian u32."""
    return _DOCNUM.pack(docnum)


def unpack_docnum(data: bytes) -> int:
    return int(_DOCNUM.unpack(data)[0])


# --- search_docs ---------------------------------------------------------------------------

def tag_range(user: bytes, tag: DocTag) -> tuple[bytes, bytes]:
    """Every key of one kind of the user."""
    return user + tag, user + bytes((tag[0] + 1,))


def state_key(user: bytes) -> bytes:
    return user + DocTag.STATE


def rebuild_marker(user: bytes) -> bytes:
    """Present while a chunked rebuild of the user is under way (or was interrupted)."""
    return user + DocTag.REBUILD


def dir_key(user: bytes) -> bytes:
    return user + DocTag.DIRECTORY


def fresh_key(user: bytes, docnum: int) -> bytes:
    return user + DocTag.FRESH + _DOCNUM.pack(docnum)


def meta_key(user: bytes, docnum: int) -> bytes:
    return user + DocTag.META + _DOCNUM.pack(docnum)


def meta_keys(user: bytes, docnums: Iterable[int]) -> list[bytes]:
    """meta_key of each doc number, the prefix made once (a search reads hundreds)."""
    prefix, pack = user + DocTag.META, _DOCNUM.pack
    return [prefix + pack(d) for d in docnums]


def forward_key(user: bytes, docnum: int) -> bytes:
    return user + DocTag.FORWARD + _DOCNUM.pack(docnum)


def key_docnum(key: bytes) -> int:
    """The doc number a fresh, meta or forward key ends with."""
    return int(_DOCNUM.unpack_from(key, len(key) - _DOCNUM.size)[0])


def id_key(user: bytes, doc_id: str) -> bytes:
    return user + DocTag.ID + doc_id_bytes(doc_id)


def key_doc_id(key: bytes) -> str:
    """The message id of an id key."""
    return key[-ID_BYTES:].hex()


def late_key(user: bytes, received_ms: int, docnum: int) -> bytes:
    """A displaced doc by receive time, so a time range finds its displaced docs by one scan."""
    return user + DocTag.LATE + _TIME.pack(received_ms + _TIME_OFFSET, docnum)


def late_range(user: bytes, lo_ms: int | None, hi_ms: int | None) -> tuple[bytes, bytes]:
    """Late keys with lo_ms <= received_ms < hi_ms (None: unbounded)."""
    start, end = tag_range(user, DocTag.LATE)
    lo = late_key(user, lo_ms, 0) if lo_ms is not None else start
    hi = late_key(user, hi_ms, 0) if hi_ms is not None else end
    return lo, hi


def late_docnum(key: bytes) -> int:
    return int(_TIME.unpack_from(key, len(key) - _TIME.size)[1])


def retired_key(user: bytes, due_ms: int, sealed: int) -> bytes:
    """Retired records sort by due time, so a step reads only those it purges."""
    return user + DocTag.RETIRED + _RETIRED.pack(due_ms, sealed)


def retired_range(user: bytes, due_by_ms: int | None = None) -> tuple[bytes, bytes]:
    """The user's retired records, or only those due at `due_by_ms` or before."""
    start, end = tag_range(user, DocTag.RETIRED)
    return start, end if due_by_ms is None else retired_key(user, due_by_ms + 1, 0)


# --- doc bitmaps ---------------------------------------------------------------------------

ALL = b"all"  # every live doc number of the user
DISPLACED = b"displaced"  # docs that arrived after a newer one: doc-number order is not time order for them
UNREAD_DOCS = b"unread"
STARRED_DOCS = b"starred"
ATTACHMENT_DOCS = b"attachment"


def folder_bitmap(folder_id: str) -> bytes:
    return b"folder:" + folder_id.encode()


def size_slice(bit: int) -> bytes:
    return b"size:%02d" % bit


def bitmap_key(user: bytes, name: bytes) -> bytes:
    """A logical doc bitmap; it is stored as two keys, `tier_key` of it."""
    return user + DocTag.BITMAP + name


def bitmap_range(user: bytes) -> tuple[bytes, bytes]:
    return tag_range(user, DocTag.BITMAP)


def bitmap_name(user: bytes, logical: bytes) -> bytes:
    """The name of a logical bitmap key of the user."""
    return logical[len(user) + 1:]


def tier_key(logical: bytes, tier: Tier) -> bytes:
    return logical + tier


def split_tier(key: bytes) -> tuple[bytes, Tier]:
    """(logical bitmap key, tier) of a stored bitmap key."""
    return key[:-1], Tier(key[-1:])


# --- posting keys --------------------------------------------------------------------------

def posting_key(kind: Kind, term: str, field: int) -> bytes:
    """The key of one (kind, term, field) posting list."""
    return b"%c%s\x00%c" % (kind, term.encode(), field)


def posting_affixes(kind: Kind, field: int) -> tuple[str, str]:
    """What goes before and after a term in its posting key, as text whose UTF-8 is the key's bytes
    (fields.posting_texts builds keys in bulk as text)."""
    return chr(kind), "\x00" + chr(field)


def field_suffix(field: int) -> bytes:
    """How every posting key of one field ends."""
    return b"\x00%c" % field


def split_posting_key(key: bytes) -> tuple[int, str, int]:
    """(kind, term, field) of a posting key."""
    return key[0], key[1:-2].decode(), key[-1]


def posting_field(key: bytes) -> int:
    return key[-1]


def posting_term(key: bytes) -> bytes:
    """The term of a posting key, as its UTF-8."""
    return key[1:-2]


def term_range(kind: Kind, term: str) -> tuple[bytes, bytes]:
    """Keys of one term in every field."""
    base = b"%c%s" % (kind, term.encode())
    return base + b"\x00", base + b"\x01"


def prefix_range(kind: Kind, prefix: str) -> tuple[bytes, bytes]:
    """Keys of every term starting with `prefix`."""
    base = b"%c%s" % (kind, prefix.encode())
    return base, base + KEY_END


def kind_range(kind: Kind) -> tuple[bytes, bytes]:
    """Every posting key of one kind."""
    return bytes((kind,)), bytes((kind + 1,))


def summary_key(prefix: str) -> bytes:
    return b"%c%s\x00\x00" % (Kind.SUMMARY, prefix.encode())


# --- search_postings: segments --------------------------------------------------------------

def segment_prefix(user: bytes, span: tuple[int, int]) -> bytes:
    """What the keys of a segment's blocks start with: user | lo | hi."""
    return user + _SPAN.pack(*span)


def segment_range(user: bytes, span: tuple[int, int]) -> tuple[bytes, bytes]:
    """Every block key of one segment (a prefix of no other segment's keys: spans are fixed width)."""
    return segment_prefix(user, span), segment_prefix(user, (span[0], span[1] + 1))


def block_key(prefix: bytes, last_key: bytes) -> bytes:
    """A block is keyed by its last posting key, so one seek finds the block that may hold a key."""
    return prefix + last_key


def block_last_key(prefix: bytes, key: bytes) -> bytes:
    return key[len(prefix):]
