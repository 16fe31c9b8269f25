"""A lenient reader of a message's header section (RFC 5322 2.2), on bytes.

It never raises: a first line that is not a header field means the message
has no header section; a later line that is neither a field nor a folded
continuation ends the section (as Python's email parser does). Values are
unfolded, otherwise kept as sent.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

_FIELD = re.compile(rb"^([\x21-\x39\x3b-\x7e]+)[ \t]*:(.*)$", re.DOTALL)
_LINE_END = re.compile(rb"\r?\n")


@dataclass(frozen=True)
class HeaderSection:
    fields: tuple[tuple[str, bytes], ...]   # (lower-case name, unfolded value)
    size: int                               # bytes of the section in the raw message
    has_nul: bool

    def values(self, name: str) -> list[bytes]:
        key = name.lower()
        return [value for field, value in self.fields if field == key]


def read_header_section(raw: bytes) -> HeaderSection:
    fields: list[tuple[str, bytes]] = []
    position = 0
    for match in _LINE_END.finditer(raw):
        line = raw[position:match.start()]
        if not line:                                   # the blank line: body follows
            break
        if line[:1] in (b" ", b"\t") and fields:       # folded continuation
            name, value = fields[-1]
            fields[-1] = (name, value + b" " + line.strip())
        else:
            parsed = _FIELD.match(line)
            if parsed is None:
                break
            fields.append((parsed.group(1).decode("ascii").lower(), parsed.group(2).strip()))
        position = match.end()
    section = raw[:position]
    return HeaderSection(fields=tuple(fields), size=len(section), has_nul=b"\0" in section)


def remove_fields(raw: bytes, drop: Callable[[str, bytes], bool]) -> bytes:
    """``raw`` without the header fields for which ``drop(lower-case name, unfolded value)``
    is true (with their folded lines); every other byte unchanged."""
    kept: list[bytes] = []
    removing = False
    current: list[bytes] = []      # the lines of the field being read
    name, value = "", b""
    position = 0
    changed = False

    def close() -> None:
        nonlocal changed
        if current:
            if removing:
                changed = True
            else:
                kept.extend(current)

    for match in _LINE_END.finditer(raw):
        line = raw[position:match.start()]
        whole = raw[position:match.end()]
        if not line:
            break
        if line[:1] in (b" ", b"\t") and current:
            current.append(whole)
            value = value + b" " + line.strip()
            removing = drop(name, value)
        else:
            parsed = _FIELD.match(line)
            if parsed is None:
                break
            close()
            name, value = parsed.group(1).decode("ascii").lower(), parsed.group(2).strip()
            current = [whole]
            removing = drop(name, value)
        position = match.end()
    close()
    if not changed:
        return raw
    return b"".join(kept) + raw[position:]
