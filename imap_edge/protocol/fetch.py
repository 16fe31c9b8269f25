"""FETCH attributes (RFC 3501 6.4.5, RFC 9051 6.4.5, BINARY RFC 3516, CONDSTORE's MODSEQ,
OBJECTID's EMAILID/THREADID): names, body sections, partials and the ALL/FAST/FULL macros."""
from __future__ import annotations

import re
from dataclasses import dataclass

from imap_edge.protocol.errors import ParseError
from imap_edge.protocol.tokens import MAX_NUMBER64, Reader

SIMPLE = frozenset({"ENVELOPE", "FLAGS", "INTERNALDATE", "RFC822", "RFC822.HEADER", "RFC822.SIZE", "RFC822.TEXT",
                    "BODY", "BODYSTRUCTURE", "UID", "MODSEQ", "EMAILID", "THREADID", "SAVEDATE"})
SECTIONED = frozenset({"BODY", "BODY.PEEK", "BINARY", "BINARY.PEEK", "BINARY.SIZE"})
_NAME = re.compile(rb"[A-Za-z0-9.]+")
_TEXT = re.compile(rb"HEADER\.FIELDS\.NOT|HEADER\.FIELDS|HEADER|TEXT|MIME", re.IGNORECASE)


@dataclass(frozen=True)
class Section:
    """``[1.2.HEADER.FIELDS (From Subject)]``: part numbers, then an optional text specifier."""

    parts: tuple[int, ...] = ()
    text: str | None = None  # HEADER, HEADER.FIELDS, HEADER.FIELDS.NOT, TEXT, MIME
    fields: tuple[str, ...] = ()

    def __str__(self) -> str:
        spec = ".".join(str(part) for part in self.parts)
        if self.text:
            spec = f"{spec}.{self.text}" if spec else self.text
        if self.fields:
            spec += " (" + " ".join(_astring(field) for field in self.fields) + ")"
        return f"[{spec}]"


def _astring(text: str) -> str:
    if re.fullmatch(r"[!#$&'+,\-./0-9:;<=>?@A-Z^_`a-z|~\[\]]+", text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(frozen=True)
class FetchAttribute:
    """One requested item. ``name`` is ``BODY``/``BINARY``/``BINARY.SIZE`` with a ``section``
    for the sectioned forms (``peek`` for ``.PEEK``); ``partial`` is (origin, length)."""

    name: str
    section: Section | None = None
    partial: tuple[int, int] | None = None
    peek: bool = False

    def __str__(self) -> str:
        text = self.name + (".PEEK" if self.peek else "")
        if self.section is not None:
            text += str(self.section)
        if self.partial is not None:
            text += f"<{self.partial[0]}.{self.partial[1]}>"
        return text

    def response_name(self) -> str:
        """The item's name in the FETCH response: no ``.PEEK``, only the partial's origin."""
        text = self.name
        if self.section is not None:
            text += str(self.section)
        if self.partial is not None:
            text += f"<{self.partial[0]}>"
        return text

    @property
    def sets_seen(self) -> bool:
        """Fetching it sets ``\\Seen`` (on a read-write mailbox)."""
        if self.name in ("RFC822", "RFC822.TEXT"):
            return True
        return self.name in ("BODY", "BINARY") and self.section is not None and not self.peek


MACROS: dict[str, tuple[FetchAttribute, ...]] = {
    "FAST": (FetchAttribute("FLAGS"), FetchAttribute("INTERNALDATE"), FetchAttribute("RFC822.SIZE")),
}
MACROS["ALL"] = MACROS["FAST"] + (FetchAttribute("ENVELOPE"),)
MACROS["FULL"] = MACROS["ALL"] + (FetchAttribute("BODY"),)


def section(reader: Reader, *, binary: bool) -> Section:
    start = reader.pos
    reader.expect(b"[", "'['")
    parts: list[int] = []
    text: str | None = None
    fields: tuple[str, ...] = ()
    if reader.peek().isdigit():
        parts.append(reader.nz_number("a part number"))
        while reader.take(b"."):
            if reader.peek().isdigit():
                parts.append(reader.nz_number("a part number"))
                continue
            if binary:
                raise reader.error("a part number")
            text = _text(reader)
            break
    elif not binary and reader.peek() != b"]":
        text = _text(reader)
    if text == "MIME" and not parts:
        raise ParseError(f"MIME needs a part number, at position {start}")
    if text in ("HEADER.FIELDS", "HEADER.FIELDS.NOT"):
        reader.sp()
        fields = tuple(reader.text(raw, "a header field name") for raw in
                       reader.paren_list(lambda: reader.astring("a header field name"), "a header list", empty=False))
    reader.expect(b"]", "']'")
    return Section(tuple(parts), text, fields)


def _text(reader: Reader) -> str:
    found = _TEXT.match(reader.data, reader.pos)
    if found is None:
        raise reader.error("HEADER, HEADER.FIELDS, HEADER.FIELDS.NOT, TEXT or MIME")
    reader.pos = found.end()
    return found.group().decode("ascii").upper()


def attribute(reader: Reader) -> FetchAttribute:
    start = reader.pos
    raw = reader.match(_NAME)
    if raw is None:
        raise reader.error("a fetch attribute")
    name = raw.decode("ascii").upper()
    if reader.peek() != b"[":
        if name in SIMPLE:
            return FetchAttribute(name)
        if name in SECTIONED:
            raise reader.error("'['")
        raise ParseError(f"unknown fetch attribute {name} at position {start}")
    if name not in SECTIONED:
        raise ParseError(f"unknown fetch attribute {name} at position {start}")
    peek = name.endswith(".PEEK")
    base = name.removesuffix(".PEEK")
    found = section(reader, binary=base != "BODY")
    partial: tuple[int, int] | None = None
    if base != "BINARY.SIZE" and reader.take(b"<"):
        origin = reader.number("a partial origin", limit=MAX_NUMBER64)     # number64 (RFC 9051)
        reader.expect(b".", "'.'")
        length = reader.nz_number("a partial length", limit=MAX_NUMBER64)
        reader.expect(b">", "'>'")
        partial = (origin, length)
    return FetchAttribute(base, found, partial, peek)


def attributes(reader: Reader) -> tuple[FetchAttribute, ...]:
    """``ALL`` / ``FAST`` / ``FULL`` / one attribute / a parenthesized list of them."""
    if reader.peek() == b"(":
        return tuple(reader.paren_list(lambda: attribute(reader), empty=False))
    start = reader.pos
    raw = reader.match(_NAME)
    if raw is not None and raw.decode("ascii").upper() in MACROS and reader.peek() != b"[":
        return MACROS[raw.decode("ascii").upper()]
    reader.pos = start
    return (attribute(reader),)
