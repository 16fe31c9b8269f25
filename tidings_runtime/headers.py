"""A lenient reader of a message's header section (RFC 5322 2.2), on bytes, for every
part that looks at or edits header fields without a full MIME parse (the SMTP edge's
checks, the router's spam verdict field, a draft's fields when it is sent).

It never raises: a first line that is not a header field means the message has no header
section; a later line that is neither a field nor a folded continuation ends the section
(as Python's email parser does). Values are unfolded, otherwise kept as sent; edits keep
every other byte as it was.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

_FIELD = re.compile(rb"^([\x21-\x39\x3b-\x7e]+)[ \t]*:(.*)$", re.DOTALL)
_LINE_END = re.compile(rb"\r?\n")


@dataclass(frozen=True)
class Field:
    name: str          # lower case
    value: bytes       # unfolded
    start: int         # its bytes in the raw message, folded lines and line end included
    end: int


@dataclass(frozen=True)
class HeaderSection:
    fields: tuple[tuple[str, bytes], ...]   # (lower-case name, unfolded value)
    size: int                               # bytes of the section in the raw message
    has_nul: bool

    def values(self, name: str) -> list[bytes]:
        key = name.lower()
        return [value for field, value in self.fields if field == key]


def header_fields(raw: bytes) -> tuple[list[Field], int]:
    """Every field of the header section, and the section's size (where its blank line or
    the first line that is not a field starts)."""
    fields: list[Field] = []
    position = 0
    for start, end, line in _lines(raw):
        if not line:                                   # the blank line: body follows
            break
        if line[:1] in (b" ", b"\t") and fields:       # folded continuation
            last = fields[-1]
            fields[-1] = Field(last.name, last.value + b" " + line.strip(), last.start, end)
        else:
            parsed = _FIELD.match(line)
            if parsed is None:
                break
            fields.append(Field(parsed.group(1).decode("ascii").lower(), parsed.group(2).strip(), start, end))
        position = end
    return fields, position


def _lines(raw: bytes) -> Iterator[tuple[int, int, bytes]]:
    """(start, end with its line end, the line without it) of each line; the last may lack one."""
    position = 0
    for match in _LINE_END.finditer(raw):
        yield position, match.end(), raw[position:match.start()]
        position = match.end()
    if position < len(raw):
        yield position, len(raw), raw[position:]


def read_header_section(raw: bytes) -> HeaderSection:
    fields, size = header_fields(raw)
    return HeaderSection(fields=tuple((f.name, f.value) for f in fields), size=size, has_nul=b"\0" in raw[:size])


def remove_fields(raw: bytes, drop: Callable[[str, bytes], bool]) -> bytes:
    """``raw`` without the header fields for which ``drop(lower-case name, unfolded value)``
    is true (with their folded lines); every other byte unchanged."""
    fields, _ = header_fields(raw)
    dropped = [f for f in fields if drop(f.name, f.value)]
    if not dropped:
        return raw
    return b"".join(_kept(raw, dropped))


def _kept(raw: bytes, dropped: list[Field]) -> Iterator[bytes]:
    position = 0
    for field in dropped:
        yield raw[position:field.start]
        position = field.end
    yield raw[position:]
