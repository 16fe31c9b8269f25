"""A cursor over one framed command (RFC 9051 section 9 names): every method reads one
production at the current position or raises ``ParseError`` saying what was expected where.

Literal data sits inline after its marker (``{n}`` CRLF, then n bytes), as the framer left it.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from typing import TypeVar

from imap_edge.protocol.errors import ParseError

T = TypeVar("T")

MAX_NUMBER = 2**32 - 1  # number, nz-number (RFC 9051: 32 bits unsigned)
MAX_NUMBER64 = 2**63 - 1  # number64, mod-sequence-value

ATOM = re.compile(rb"[^\x00-\x20\x7f-\xff(){%*\"\\\]]+")
ASTRING_ATOM = re.compile(rb"[^\x00-\x20\x7f-\xff(){%*\"\\]+")  # ASTRING-CHAR: ATOM-CHAR or "]"
LIST_ATOM = re.compile(rb"[^\x00-\x20\x7f-\xff(){\"\\]+")  # list-char: ATOM-CHAR, "%", "*", "]"
TAG = re.compile(rb"[^\x00-\x20\x7f-\xff(){%*\"\\+]+")
DIGITS = re.compile(rb"[0-9]+")
_QUOTED = re.compile(rb'"((?:[^"\\\r\n\x00]|\\["\\])*)"')
_ESCAPE = re.compile(rb"\\([\"\\])")
_LITERAL = re.compile(rb"(~?)\{([0-9]{1,20})(\+?)\}\r\n")


class Reader:
    """The cursor. ``utf8`` is the IMAP4rev2 / UTF8=ACCEPT switch; ``max_depth`` bounds nesting."""

    __slots__ = ("data", "pos", "utf8", "max_depth", "depth")

    def __init__(self, data: bytes, *, utf8: bool = False, max_depth: int = 32) -> None:
        self.data = data
        self.pos = 0
        self.utf8 = utf8
        self.max_depth = max_depth
        self.depth = 0

    # -- position and errors

    def error(self, expected: str) -> ParseError:
        if self.pos >= len(self.data):
            return ParseError(f"expected {expected} at end of command")
        return ParseError(f"expected {expected} at position {self.pos}")

    def at_end(self) -> bool:
        return self.pos >= len(self.data)

    def peek(self) -> bytes:
        return self.data[self.pos:self.pos + 1]

    def end(self) -> None:
        if not self.at_end():
            raise ParseError(f"unexpected text at position {self.pos}")

    def sp(self) -> None:
        if self.data[self.pos:self.pos + 1] != b" ":
            raise self.error("a space")
        self.pos += 1

    def take(self, text: bytes) -> bool:
        """Consume ``text`` (ASCII, case-insensitive) if it is next."""
        end = self.pos + len(text)
        if self.data[self.pos:end].upper() == text.upper():
            self.pos = end
            return True
        return False

    def expect(self, text: bytes, what: str | None = None) -> None:
        if not self.take(text):
            raise self.error(what or repr(text.decode("ascii")))

    def take_sp(self) -> bool:
        return self.take(b" ")

    def nested(self, parse: Callable[[], T]) -> T:
        """Run ``parse`` one level deeper; too deep is an error rather than a stack overflow."""
        if self.depth >= self.max_depth:
            raise ParseError(f"nested deeper than {self.max_depth} levels")
        self.depth += 1
        try:
            return parse()
        finally:
            self.depth -= 1

    # -- atoms and numbers

    def match(self, pattern: re.Pattern[bytes]) -> bytes | None:
        found = pattern.match(self.data, self.pos)
        if found is None:
            return None
        self.pos = found.end()
        return found.group()

    def atom(self, what: str = "an atom") -> bytes:
        value = self.match(ATOM)
        if value is None:
            raise self.error(what)
        return value

    def keyword(self, what: str = "an atom") -> str:
        """An atom, upper-cased: command names, option names, search key names."""
        return self.atom(what).decode("ascii").upper()

    def number(self, what: str = "a number", limit: int = MAX_NUMBER) -> int:
        start = self.pos
        digits = self.match(DIGITS)
        if digits is None:
            raise self.error(what)
        if len(digits) > 20 or int(digits) > limit:
            self.pos = start
            raise ParseError(f"number too large at position {start}")
        return int(digits)

    def nz_number(self, what: str = "a non-zero number", limit: int = MAX_NUMBER) -> int:
        start = self.pos
        value = self.number(what, limit)
        if value == 0:
            self.pos = start
            raise ParseError(f"expected {what} at position {start}, got 0")
        return value

    def modseq(self, what: str = "a mod-sequence") -> int:
        return self.nz_number(what, MAX_NUMBER64)

    # -- strings

    def quoted(self) -> bytes:
        found = _QUOTED.match(self.data, self.pos)
        if found is None:
            if self.peek() != b'"':
                raise self.error("a quoted string")
            raise ParseError(f"bad quoted string at position {self.pos}")
        self.pos = found.end()
        return _ESCAPE.sub(rb"\1", found.group(1))

    def literal(self, *, binary: bool = False) -> bytes:
        start = self.pos
        found = _LITERAL.match(self.data, self.pos)
        if found is None:
            raise self.error("a literal")
        if found.group(1) and not binary:
            raise ParseError(f"literal8 not allowed here at position {start}")
        size = int(found.group(2))
        data = self.data[found.end():found.end() + size]
        if len(data) != size:
            raise ParseError(f"literal shorter than its size at position {start}")
        if not found.group(1) and b"\x00" in data:
            raise ParseError(f"NUL in a literal at position {start}")
        self.pos = found.end() + size
        return data

    def is_literal(self) -> bool:
        return self.peek() == b"{" or self.data[self.pos:self.pos + 2] == b"~{"

    def string(self, what: str = "a string") -> bytes:
        first = self.peek()
        if first == b'"':
            return self.quoted()
        if first == b"{":
            return self.literal()
        raise self.error(what)

    def astring(self, what: str = "an astring") -> bytes:
        first = self.peek()
        if first in (b'"', b"{"):
            return self.string(what)
        if self.data[self.pos:self.pos + 2] == b"~{":
            raise ParseError(f"literal8 not allowed here at position {self.pos}")
        value = self.match(ASTRING_ATOM)
        if value is None:
            raise self.error(what)
        return value

    def nstring(self, what: str = "a string or NIL") -> bytes | None:
        if self.take_nil():
            return None
        return self.string(what)

    def take_nil(self) -> bool:
        end = self.pos + 3
        if self.data[self.pos:end].upper() == b"NIL" and not ATOM.match(self.data, end):
            self.pos = end
            return True
        return False

    def text(self, raw: bytes, what: str) -> str:
        """Bytes of a string argument as text (UTF-8; 7-bit before UTF8=ACCEPT, but 8-bit is forgiven)."""
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ParseError(f"{what} is not valid UTF-8") from None

    # -- lists

    def paren_list(self, item: Callable[[], T], what: str = "'('", *, empty: bool = True) -> list[T]:
        """``"(" [item *(SP item)] ")"``."""
        if not self.take(b"("):
            raise self.error(what)

        def items() -> list[T]:
            values: list[T] = []
            if self.take(b")"):
                if not empty:
                    raise ParseError(f"empty list at position {self.pos - 2}")
                return values
            while True:
                values.append(item())
                if self.take(b")"):
                    return values
                if not self.take_sp():
                    raise self.error("a space or ')'")

        return self.nested(items)
