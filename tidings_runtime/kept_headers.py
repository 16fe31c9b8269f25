"""The header fields kept beside a message's summary, so IMAP's ENVELOPE and the header
fields clients list (mutt's and Thunderbird's ``BODY.PEEK[HEADER.FIELDS (...)]``) are
answered from the listing, without reading the body.

``kept(raw)`` is every field of ``KEPT`` in the message's header section, each as stored
(folded lines and line ends included), in their order; the storage node keeps it with the
record at store time and the IMAP edge answers from it exactly as from the whole header.
It is None, and a reader must read the raw, when the header section is not one that both
Python's email parser and the edge's own field splitting read the same way (a line that is
neither a field ``name:`` nor a folded continuation before the blank line, a bare CR, a last
field without a line end), or when the kept fields come to more than ``LIMIT`` bytes.
"""
from __future__ import annotations

import re

from tidings_runtime.headers import header_fields

ENVELOPE = ("date", "subject", "from", "sender", "reply-to", "to", "cc", "bcc", "in-reply-to", "message-id")
KEPT = frozenset({
    *ENVELOPE,
    # mutt's header list, NeoMutt's X-Original-To, Thunderbird's defaults and a few more
    "references", "content-type", "content-description", "lines", "list-post", "x-label", "x-original-to",
    "priority", "x-priority", "importance", "newsgroups", "list-id",
})
LIMIT = 8192
_NAMED = re.compile(rb"[\x21-\x39\x3b-\x7e]+:")   # a field as Python's email parser takes one: no space before ':'


def covers(names: tuple[str, ...] | list[str]) -> bool:
    """Whether a ``HEADER.FIELDS`` list names only kept fields (so the kept ones answer it)."""
    return all(name.lower() in KEPT for name in names)


def kept(raw: bytes) -> bytes | None:
    """The kept fields of ``raw``'s header section, or None when they cannot stand for it."""
    fields, size = header_fields(raw)
    rest = raw[size:]
    if rest and not (rest.startswith(b"\r\n") or rest.startswith(b"\n")):
        return None     # the section ended at a line that is no field: the parsers differ there
    header = raw[:size]
    if b"\r" in header.replace(b"\r\n", b""):
        return None
    if fields and not header.endswith(b"\n"):
        return None
    for field in fields:
        if not _NAMED.match(raw, field.start):
            return None
    block = b"".join(raw[f.start:f.end] for f in fields if f.name in KEPT)
    return block if len(block) <= LIMIT else None
