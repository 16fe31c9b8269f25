"""SEARCH keys (RFC 3501 6.4.4 / RFC 9051 6.4.4, CONDSTORE's MODSEQ (RFC 7162), WITHIN's
OLDER/YOUNGER (RFC 5032)) as an AST that knows no mailbox. Every node prints canonically
in IMAP syntax, so ``parse(str(key)) == key``; the key names are a table of small handlers.
"""
from __future__ import annotations

import codecs
import datetime as dt
import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeAlias

from imap_edge.protocol import values
from imap_edge.protocol.errors import ParseError
from imap_edge.protocol.sequence import SequenceSet, sequence_set
from imap_edge.protocol.tokens import Reader

RETURN_OPTIONS = frozenset({"MIN", "MAX", "ALL", "COUNT", "SAVE"})  # RFC 4731, RFC 5182
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _string(text: str) -> str:
    if "\r" in text or "\n" in text or "\x00" in text:
        data = text.encode("utf-8")
        return "{" + str(len(data)) + "}\r\n" + text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(frozen=True)
class Simple:
    """``ALL`` or ``NEW`` (RECENT and UNSEEN)."""

    name: str

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class FlagKey:
    """A flag set (``present``) or not: ``SEEN``, ``UNSEEN``, ``OLD``, ``KEYWORD $Junk`` …"""

    flag: str
    present: bool

    def __str__(self) -> str:
        name = _FLAG_NAMES.get((self.flag, self.present))
        if name is not None:
            return name
        return f"{'KEYWORD' if self.present else 'UNKEYWORD'} {self.flag}"


@dataclass(frozen=True)
class TextKey:
    """``BCC``, ``BODY``, ``CC``, ``FROM``, ``SUBJECT``, ``TEXT``, ``TO`` with a substring."""

    field: str
    value: str

    def __str__(self) -> str:
        return f"{self.field} {_string(self.value)}"


@dataclass(frozen=True)
class HeaderKey:
    name: str
    value: str

    def __str__(self) -> str:
        return f"HEADER {_string(self.name)} {_string(self.value)}"


@dataclass(frozen=True)
class DateKey:
    """``BEFORE``, ``ON``, ``SINCE`` (internal date) and ``SENT*`` (the Date: header)."""

    field: str
    date: dt.date

    def __str__(self) -> str:
        return f"{self.field} {self.date.day}-{_MONTHS[self.date.month - 1]}-{self.date.year:04d}"


@dataclass(frozen=True)
class SizeKey:
    larger: bool
    size: int

    def __str__(self) -> str:
        return f"{'LARGER' if self.larger else 'SMALLER'} {self.size}"


@dataclass(frozen=True)
class AgeKey:
    """WITHIN: ``OLDER n`` / ``YOUNGER n`` seconds."""

    older: bool
    seconds: int

    def __str__(self) -> str:
        return f"{'OLDER' if self.older else 'YOUNGER'} {self.seconds}"


@dataclass(frozen=True)
class SetKey:
    """A sequence set of message numbers, or of UIDs (``UID 1:*``)."""

    set: SequenceSet
    uid: bool = False

    def __str__(self) -> str:
        return f"UID {self.set}" if self.uid else str(self.set)


@dataclass(frozen=True)
class ModSeqKey:
    """CONDSTORE ``MODSEQ ["/flags/\\Seen" all] n``: changed at or after n."""

    modseq: int
    entry: str | None = None
    entry_type: str | None = None

    def __str__(self) -> str:
        if self.entry is None:
            return f"MODSEQ {self.modseq}"
        return f"MODSEQ {_string(self.entry)} {self.entry_type} {self.modseq}"


@dataclass(frozen=True)
class Not:
    key: SearchKey

    def __str__(self) -> str:
        return f"NOT {self.key}"


@dataclass(frozen=True)
class Or:
    left: SearchKey
    right: SearchKey

    def __str__(self) -> str:
        return f"OR {self.left} {self.right}"


@dataclass(frozen=True)
class And:
    """A parenthesized group, or the several keys of a command."""

    keys: tuple[SearchKey, ...]

    def __str__(self) -> str:
        return "(" + " ".join(str(key) for key in self.keys) + ")"


SearchKey: TypeAlias = (Simple | FlagKey | TextKey | HeaderKey | DateKey | SizeKey | AgeKey | SetKey | ModSeqKey | Not | Or
                        | And)


def leaves(key: SearchKey) -> Iterator[SearchKey]:
    """The keys under NOT, OR and groups, in order."""
    if isinstance(key, And):
        for part in key.keys:
            yield from leaves(part)
    elif isinstance(key, Or):
        yield from leaves(key.left)
        yield from leaves(key.right)
    elif isinstance(key, Not):
        yield from leaves(key.key)
    else:
        yield key


_FLAGS: dict[str, tuple[str, bool]] = {
    "ANSWERED": ("\\Answered", True), "UNANSWERED": ("\\Answered", False),
    "DELETED": ("\\Deleted", True), "UNDELETED": ("\\Deleted", False),
    "DRAFT": ("\\Draft", True), "UNDRAFT": ("\\Draft", False),
    "FLAGGED": ("\\Flagged", True), "UNFLAGGED": ("\\Flagged", False),
    "SEEN": ("\\Seen", True), "UNSEEN": ("\\Seen", False),
    "RECENT": ("\\Recent", True), "OLD": ("\\Recent", False),
}
_FLAG_NAMES = {value: name for name, value in _FLAGS.items()}
_TEXT_FIELDS = ("BCC", "BODY", "CC", "FROM", "SUBJECT", "TEXT", "TO")
_DATE_FIELDS = ("BEFORE", "ON", "SINCE", "SENTBEFORE", "SENTON", "SENTSINCE")


class _Keys:
    """One search program's reading: the charset decodes every string argument."""

    def __init__(self, reader: Reader, charset: str | None) -> None:
        self.reader = reader
        self.charset = charset
        handlers: dict[str, Callable[[], SearchKey]] = {
            "ALL": lambda: Simple("ALL"), "NEW": lambda: Simple("NEW"),
            "KEYWORD": lambda: self._keyword(True), "UNKEYWORD": lambda: self._keyword(False),
            "HEADER": self._header, "LARGER": lambda: self._size(True), "SMALLER": lambda: self._size(False),
            "OLDER": lambda: self._age(True), "YOUNGER": lambda: self._age(False),
            "UID": self._uid, "NOT": self._not, "OR": self._or, "MODSEQ": self._modseq,
        }
        for name, (flag, present) in _FLAGS.items():
            handlers[name] = functools.partial(FlagKey, flag, present)
        for name in _TEXT_FIELDS:
            handlers[name] = functools.partial(self._text_key, name)
        for name in _DATE_FIELDS:
            handlers[name] = functools.partial(self._date_key, name)
        self.handlers = handlers

    def key(self) -> SearchKey:
        return self.reader.nested(self._key)

    def _key(self) -> SearchKey:
        reader = self.reader
        first = reader.peek()
        if first == b"(":
            return And(tuple(reader.paren_list(self.key, empty=False)))
        if first.isdigit() or first in (b"*", b"$"):
            return SetKey(sequence_set(reader))
        start = reader.pos
        name = reader.keyword("a search key")
        handler = self.handlers.get(name)
        if handler is None:
            raise ParseError(f"unknown search key {name} at position {start}")
        return handler()

    def _arg(self) -> None:
        self.reader.sp()

    def _text(self) -> str:
        self._arg()
        raw = self.reader.astring("a search string")
        try:
            return raw.decode(self.charset or "utf-8")
        except UnicodeDecodeError:
            raise ParseError(f"search string is not valid {self.charset or 'UTF-8'}") from None

    def _text_key(self, field: str) -> SearchKey:
        return TextKey(field, self._text())

    def _date_key(self, field: str) -> SearchKey:
        return DateKey(field, self._date())

    def _keyword(self, present: bool) -> SearchKey:
        self._arg()
        return FlagKey(values.keyword(self.reader), present)

    def _header(self) -> SearchKey:
        name = self._text()
        return HeaderKey(name, self._text())

    def _size(self, larger: bool) -> SearchKey:
        self._arg()
        return SizeKey(larger, self.reader.number("a size", limit=2**63 - 1))

    def _age(self, older: bool) -> SearchKey:
        self._arg()
        return AgeKey(older, self.reader.nz_number("a number of seconds"))

    def _date(self) -> dt.date:
        self._arg()
        return values.date(self.reader)

    def _uid(self) -> SearchKey:
        self._arg()
        return SetKey(sequence_set(self.reader), uid=True)

    def _not(self) -> SearchKey:
        self._arg()
        return Not(self.key())

    def _or(self) -> SearchKey:
        self._arg()
        left = self.key()
        self._arg()
        return Or(left, self.key())

    def _modseq(self) -> SearchKey:
        reader = self.reader
        self._arg()
        if reader.peek() == b'"':
            start = reader.pos
            entry = reader.text(reader.quoted(), "an entry name")
            if not entry.startswith("/flags/") or len(entry) == len("/flags/"):
                raise ParseError(f"entry name must be \"/flags/<flag>\", at position {start}")
            reader.sp()
            start = reader.pos
            entry_type = reader.keyword("priv, shared or all").lower()
            if entry_type not in ("priv", "shared", "all"):
                raise ParseError(f"entry type must be priv, shared or all, at position {start}")
            reader.sp()
            return ModSeqKey(reader.number("a mod-sequence", limit=2**63 - 1), entry, entry_type)
        return ModSeqKey(reader.number("a mod-sequence", limit=2**63 - 1))


def charset(reader: Reader) -> str:
    """``charset``: an atom or a quoted string naming one Python knows (else ``NO [BADCHARSET]``)."""
    raw = reader.quoted() if reader.peek() == b'"' else reader.atom("a charset")
    name = raw.decode("ascii", "replace").upper()
    try:
        codecs.lookup(name)
    except LookupError:
        raise ParseError(f"unsupported charset {name}", code="BADCHARSET (US-ASCII UTF-8)", status="NO") from None
    return name


def keys(reader: Reader, charset_name: str | None) -> SearchKey:
    """``1*(SP search-key)`` (the first SP already read): one key, or ``And`` of several."""
    parser = _Keys(reader, None if charset_name in (None, "US-ASCII", "UTF-8") else charset_name)
    found = [parser.key()]
    while reader.take_sp():
        found.append(parser.key())
    return found[0] if len(found) == 1 else And(tuple(found))


def parse_search_key(text: str, charset_name: str | None = None) -> SearchKey:
    """Search keys on their own (tests)."""
    reader = Reader(text.encode("utf-8"))
    result = keys(reader, charset_name)
    reader.end()
    return result
