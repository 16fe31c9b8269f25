"""Small typed values of the grammar: flags, dates, date-times, mailbox names, status items."""
from __future__ import annotations

import datetime as dt
import re

from imap_edge.protocol import mutf7
from imap_edge.protocol.errors import ParseError
from imap_edge.protocol.tokens import ATOM, LIST_ATOM, Reader

SYSTEM_FLAGS = {name.upper(): name for name in
                ("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft", "\\Recent")}
MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
STATUS_ITEMS = frozenset({"MESSAGES", "RECENT", "UIDNEXT", "UIDVALIDITY", "UNSEEN", "DELETED", "SIZE",
                          "HIGHESTMODSEQ", "APPENDLIMIT", "MAILBOXID"})

_DATE = re.compile(rb"([0-9]{1,2})-([A-Za-z]{3})-([0-9]{4})")
_DATE_TIME = re.compile(rb'"([ 0-9][0-9]|[0-9])-([A-Za-z]{3})-([0-9]{4}) ([0-9]{2}):([0-9]{2}):([0-9]{2}) '
                        rb'([+-])([0-9]{2})([0-9]{2})"')


def flag(reader: Reader) -> str:
    """``flag``: a system flag (canonical capitals), a ``\\`` extension or a keyword.
    ``\\Recent`` is the server's; a client cannot set it."""
    start = reader.pos
    if reader.take(b"\\"):
        name = "\\" + reader.atom("a flag name").decode("ascii")
        name = SYSTEM_FLAGS.get(name.upper(), name)
        if name == "\\Recent":
            reader.pos = start
            raise ParseError(f"\\Recent cannot be set, at position {start}")
        return name
    return reader.atom("a flag").decode("ascii")


def flag_list(reader: Reader) -> tuple[str, ...]:
    return tuple(reader.paren_list(lambda: flag(reader), "a flag list"))


def keyword(reader: Reader) -> str:
    return reader.atom("a keyword").decode("ascii")


def _month(name: bytes, reader: Reader, start: int) -> int:
    try:
        return MONTHS.index(name.decode("ascii").upper()) + 1
    except ValueError:
        raise ParseError(f"bad month at position {start}") from None


def date(reader: Reader) -> dt.date:
    """``date``: ``1-Feb-1994``, bare or quoted."""
    start = reader.pos
    quoted = reader.take(b'"')
    found = _DATE.match(reader.data, reader.pos)
    if found is None:
        reader.pos = start
        raise reader.error("a date (d-Mon-yyyy)")
    reader.pos = found.end()
    if quoted and not reader.take(b'"'):
        raise reader.error("'\"'")
    try:
        return dt.date(int(found.group(3)), _month(found.group(2), reader, start), int(found.group(1)))
    except ValueError:
        raise ParseError(f"bad date at position {start}") from None


def date_time(reader: Reader) -> dt.datetime:
    """``date-time``: ``"17-Jul-1996 02:44:25 -0700"``."""
    start = reader.pos
    found = _DATE_TIME.match(reader.data, reader.pos)
    if found is None:
        raise reader.error("a date-time (\"dd-Mon-yyyy hh:mm:ss +zzzz\")")
    day, month, year, hour, minute, second, sign, zh, zm = found.groups()
    try:
        offset = dt.timedelta(hours=int(zh), minutes=int(zm))
        if int(zm) >= 60:
            raise ValueError
        zone = dt.timezone(-offset if sign == b"-" else offset)
        value = dt.datetime(int(year), _month(month, reader, start), int(day), int(hour), int(minute),
                            int(second), tzinfo=zone)
    except ValueError:
        raise ParseError(f"bad date-time at position {start}") from None
    reader.pos = found.end()
    return value


def decode_mailbox(raw: bytes, utf8: bool) -> str:
    """A mailbox name's bytes as text: UTF-8 under IMAP4rev2 / UTF8=ACCEPT, else modified
    UTF-7 (8-bit names are taken as UTF-8: some clients send them). ``INBOX`` in any case is ``INBOX``."""
    try:
        if utf8 or any(byte > 0x7F for byte in raw):
            name = raw.decode("utf-8")
        else:
            name = mutf7.decode(raw)
    except UnicodeDecodeError:
        raise ParseError("mailbox name is not valid UTF-8") from None
    except mutf7.MUTF7Error as error:
        raise ParseError(f"mailbox name is not valid modified UTF-7: {error}") from None
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in name):
        raise ParseError("mailbox name has a control character")
    return "INBOX" if name.upper() == "INBOX" else name


def mailbox(reader: Reader) -> str:
    return decode_mailbox(reader.astring("a mailbox name"), reader.utf8)


def list_mailbox(reader: Reader) -> str:
    """``list-mailbox``: a pattern with ``%`` and ``*``, as an atom or a string."""
    if reader.peek() in (b'"', b"{"):
        raw = reader.string()
    else:
        found = reader.match(LIST_ATOM)
        if found is None:
            raise reader.error("a mailbox pattern")
        raw = found
    return decode_mailbox(raw, reader.utf8)


def status_item(reader: Reader) -> str:
    start = reader.pos
    name = reader.keyword("a status item")
    if name not in STATUS_ITEMS:
        raise ParseError(f"unknown status item {name} at position {start}")
    return name


def is_atom(text: bytes) -> bool:
    return ATOM.fullmatch(text) is not None
