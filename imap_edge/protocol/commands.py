"""The commands: one argument type and one small parser each, in a table keyed by name.

``parse(reader)`` reads ``tag SP [UID SP] name [SP arguments]`` and returns a ``Command``.
Which command is allowed in which state (not authenticated, authenticated, selected,
logout) is the session's business, not the grammar's.
"""
from __future__ import annotations

import base64
import binascii
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeAlias

from imap_edge.protocol import fetch, search, values
from imap_edge.protocol.errors import ParseError, UnknownCommand
from imap_edge.protocol.fetch import FetchAttribute
from imap_edge.protocol.search import SearchKey
from imap_edge.protocol.sequence import SequenceSet, sequence_set
from imap_edge.protocol.tokens import TAG, Reader

UID_COMMANDS = frozenset({"COPY", "MOVE", "FETCH", "SEARCH", "STORE", "EXPUNGE", "THREAD"})
LIST_SELECTION = frozenset({"SUBSCRIBED", "REMOTE", "RECURSIVEMATCH", "SPECIAL-USE"})
SPECIAL_USE = frozenset({"\\All", "\\Archive", "\\Drafts", "\\Flagged", "\\Junk", "\\Sent", "\\Trash", "\\Important"})
MAX_ID_FIELDS = 30  # RFC 2971


@dataclass(frozen=True)
class NoArguments:
    """CAPABILITY, NOOP, LOGOUT, STARTTLS, NAMESPACE, IDLE, CHECK, CLOSE, UNSELECT, EXPUNGE."""


@dataclass(frozen=True)
class Login:
    userid: str
    password: str = field(repr=False)


@dataclass(frozen=True)
class Authenticate:
    """``mechanism`` upper-cased; ``initial_response`` is SASL-IR's decoded base64 (``=`` is b"")."""

    mechanism: str
    initial_response: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Id:
    """RFC 2971: ``None`` for ``ID NIL``, else the field pairs in order."""

    fields: tuple[tuple[str, str | None], ...] | None


@dataclass(frozen=True)
class Enable:
    capabilities: tuple[str, ...]


@dataclass(frozen=True)
class Compress:
    mechanism: str


@dataclass(frozen=True)
class QResync:
    """SELECT's ``QRESYNC (uidvalidity modseq [known-uids] [(known-seqs known-uids)])``."""

    uidvalidity: int
    modseq: int
    known_uids: SequenceSet | None = None
    seq_match: tuple[SequenceSet, SequenceSet] | None = None


@dataclass(frozen=True)
class Select:
    """SELECT and EXAMINE."""

    mailbox: str
    condstore: bool = False
    qresync: QResync | None = None


@dataclass(frozen=True)
class Create:
    mailbox: str
    special_use: tuple[str, ...] = ()  # RFC 6154 CREATE-SPECIAL-USE: (USE (\Drafts))


@dataclass(frozen=True)
class MailboxArgument:
    """DELETE, SUBSCRIBE, UNSUBSCRIBE."""

    mailbox: str


@dataclass(frozen=True)
class Rename:
    old: str
    new: str


@dataclass(frozen=True)
class ListReturn:
    subscribed: bool = False
    children: bool = False
    special_use: bool = False
    status: tuple[str, ...] | None = None  # LIST-STATUS (RFC 5819)


@dataclass(frozen=True)
class List:
    """LIST (RFC 5258 extended form) and LSUB (one pattern, no options)."""

    reference: str
    patterns: tuple[str, ...]
    selection: frozenset[str] = frozenset()
    returns: ListReturn = ListReturn()


@dataclass(frozen=True)
class Status:
    mailbox: str
    items: tuple[str, ...]


@dataclass(frozen=True)
class AppendMessage:
    flags: tuple[str, ...]
    internal_date: dt.datetime | None
    data: bytes = field(repr=False)
    binary: bool = False  # sent as literal8 (BINARY, RFC 3516)


@dataclass(frozen=True)
class Append:
    """APPEND, with MULTIAPPEND (RFC 3502): one or more messages."""

    mailbox: str
    messages: tuple[AppendMessage, ...]


@dataclass(frozen=True)
class Fetch:
    sequence: SequenceSet
    attributes: tuple[FetchAttribute, ...]
    changedsince: int | None = None
    vanished: bool = False  # QRESYNC: UID FETCH ... (CHANGEDSINCE n VANISHED)


@dataclass(frozen=True)
class Store:
    sequence: SequenceSet
    mode: str  # "+" add, "-" remove, "" replace
    silent: bool
    flags: tuple[str, ...]
    unchangedsince: int | None = None


@dataclass(frozen=True)
class Copy:
    """COPY and MOVE."""

    sequence: SequenceSet
    mailbox: str


@dataclass(frozen=True)
class UidExpunge:
    sequence: SequenceSet


@dataclass(frozen=True)
class Search:
    """``returns`` is ``None`` without RETURN (an old-style ``* SEARCH`` answer), else the
    ESEARCH options (empty means ALL, RFC 4731)."""

    key: SearchKey
    charset: str | None = None
    returns: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Thread:
    algorithm: str
    charset: str
    key: SearchKey


Arguments: TypeAlias = (NoArguments | Login | Authenticate | Id | Enable | Compress | Select | Create | MailboxArgument
                        | Rename | List | Status | Append | Fetch | Store | Copy | UidExpunge | Search | Thread)


@dataclass(frozen=True)
class Command:
    tag: str
    name: str  # upper case: "FETCH", also for "UID FETCH" (then uid is True)
    arguments: Arguments = NoArguments()
    uid: bool = False


# -- the small parsers; each starts after the command name, before any SP


def _none(reader: Reader) -> NoArguments:
    return NoArguments()


def _text(reader: Reader, raw: bytes, what: str) -> str:
    return reader.text(raw, what)


def _login(reader: Reader) -> Login:
    reader.sp()
    userid = _text(reader, reader.astring("a user name"), "user name")
    reader.sp()
    return Login(userid, _text(reader, reader.astring("a password"), "password"))


def _authenticate(reader: Reader) -> Authenticate:
    reader.sp()
    mechanism = reader.keyword("a SASL mechanism")
    if not reader.take_sp():
        return Authenticate(mechanism)
    start = reader.pos
    if reader.take(b"="):
        return Authenticate(mechanism, b"")
    raw = reader.atom("base64 data or '='")
    try:
        return Authenticate(mechanism, base64.b64decode(raw, validate=True))
    except binascii.Error:
        raise ParseError(f"bad base64 at position {start}") from None


def _id(reader: Reader) -> Id:
    reader.sp()
    if reader.take_nil():
        return Id(None)
    start = reader.pos
    items = reader.paren_list(lambda: reader.nstring("an ID field"), "'(' or NIL")
    if len(items) % 2:
        raise ParseError(f"ID fields must come in pairs, at position {start}")
    if len(items) > 2 * MAX_ID_FIELDS:
        raise ParseError(f"more than {MAX_ID_FIELDS} ID fields")
    pairs: list[tuple[str, str | None]] = []
    for name, value in zip(items[::2], items[1::2]):
        if name is None:
            raise ParseError(f"an ID field name cannot be NIL, at position {start}")
        pairs.append((_text(reader, name, "ID field"), None if value is None else _text(reader, value, "ID value")))
    return Id(tuple(pairs))


def _enable(reader: Reader) -> Enable:
    names = []
    reader.sp()
    names.append(reader.keyword("a capability"))
    while reader.take_sp():
        names.append(reader.keyword("a capability"))
    return Enable(tuple(names))


def _compress(reader: Reader) -> Compress:
    reader.sp()
    return Compress(reader.keyword("a compression mechanism"))


def _qresync(reader: Reader) -> QResync:
    reader.expect(b"(", "'('")
    uidvalidity = reader.nz_number("a UIDVALIDITY")
    reader.sp()
    modseq = reader.modseq()
    known: SequenceSet | None = None
    match: tuple[SequenceSet, SequenceSet] | None = None
    if reader.take_sp():
        if reader.peek() != b"(":
            known = _no_star(reader, "known UIDs")
            if not reader.take_sp():
                reader.expect(b")", "')'")
                return QResync(uidvalidity, modseq, known)
        reader.expect(b"(", "'('")
        seqs = _no_star(reader, "known sequence numbers")
        reader.sp()
        match = (seqs, _no_star(reader, "known UIDs"))
        reader.expect(b")", "')'")
    reader.expect(b")", "')'")
    return QResync(uidvalidity, modseq, known, match)


def _no_star(reader: Reader, what: str) -> SequenceSet:
    start = reader.pos
    found = sequence_set(reader, allow_saved=False)
    if found.has_star:
        raise ParseError(f"{what} cannot contain '*', at position {start}")
    return found


def _select(reader: Reader) -> Select:
    reader.sp()
    mailbox = values.mailbox(reader)
    condstore = False
    qresync: QResync | None = None
    if reader.take_sp():
        def param() -> None:
            nonlocal condstore, qresync
            start = reader.pos
            name = reader.keyword("a SELECT parameter")
            if name == "CONDSTORE":
                condstore = True
            elif name == "QRESYNC":
                reader.sp()
                qresync = _qresync(reader)
            else:
                raise ParseError(f"unknown SELECT parameter {name} at position {start}")
        reader.paren_list(param, "SELECT parameters", empty=False)
    return Select(mailbox, condstore, qresync)


def _create(reader: Reader) -> Create:
    reader.sp()
    mailbox = values.mailbox(reader)
    uses: tuple[str, ...] = ()
    if reader.take_sp():
        def param() -> tuple[str, ...]:
            start = reader.pos
            name = reader.keyword("a CREATE parameter")
            if name != "USE":
                raise ParseError(f"unknown CREATE parameter {name} at position {start}")
            reader.sp()
            return tuple(reader.paren_list(lambda: _special_use(reader), "a special-use list", empty=False))
        for found in reader.paren_list(param, "CREATE parameters", empty=False):
            uses += found
    return Create(mailbox, uses)


def _special_use(reader: Reader) -> str:
    start = reader.pos
    reader.expect(b"\\", "a special-use attribute")
    name = "\\" + reader.atom("a special-use attribute").decode("ascii")
    canonical = {use.upper(): use for use in SPECIAL_USE}.get(name.upper())
    if canonical is None:
        raise ParseError(f"unknown special-use attribute {name} at position {start}", code="USEATTR", status="NO")
    return canonical


def _mailbox(reader: Reader) -> MailboxArgument:
    reader.sp()
    return MailboxArgument(values.mailbox(reader))


def _rename(reader: Reader) -> Rename:
    reader.sp()
    old = values.mailbox(reader)
    reader.sp()
    return Rename(old, values.mailbox(reader))


def _list(reader: Reader) -> List:
    reader.sp()
    selection: set[str] = set()
    if reader.peek() == b"(":
        def option() -> None:
            start = reader.pos
            name = reader.keyword("a LIST selection option")
            if name not in LIST_SELECTION:
                raise ParseError(f"unknown LIST selection option {name} at position {start}")
            selection.add(name)
        reader.paren_list(option, "selection options")
        if selection == {"RECURSIVEMATCH"}:
            raise ParseError("RECURSIVEMATCH needs another selection option")
        reader.sp()
    reference = values.mailbox(reader)
    reader.sp()
    if reader.peek() == b"(":
        patterns = tuple(reader.paren_list(lambda: values.list_mailbox(reader), "patterns", empty=False))
    else:
        patterns = (values.list_mailbox(reader),)
    returns = ListReturn()
    if reader.take_sp():
        reader.expect(b"RETURN", "RETURN")
        reader.sp()
        flags: dict[str, bool] = {}
        status: tuple[str, ...] | None = None

        def option() -> None:
            nonlocal status
            start = reader.pos
            name = reader.keyword("a LIST return option")
            if name in ("SUBSCRIBED", "CHILDREN", "SPECIAL-USE"):
                flags[name.replace("-", "_").lower()] = True
            elif name == "STATUS":
                reader.sp()
                status = tuple(reader.paren_list(lambda: values.status_item(reader), "status items", empty=False))
            else:
                raise ParseError(f"unknown LIST return option {name} at position {start}")
        reader.paren_list(option, "return options")
        returns = ListReturn(flags.get("subscribed", False), flags.get("children", False),
                             flags.get("special_use", False), status)
    return List(reference, patterns, frozenset(selection), returns)


def _lsub(reader: Reader) -> List:
    reader.sp()
    reference = values.mailbox(reader)
    reader.sp()
    return List(reference, (values.list_mailbox(reader),), frozenset({"SUBSCRIBED"}))


def _status(reader: Reader) -> Status:
    reader.sp()
    mailbox = values.mailbox(reader)
    reader.sp()
    return Status(mailbox, tuple(reader.paren_list(lambda: values.status_item(reader), "status items", empty=False)))


def _append(reader: Reader) -> Append:
    reader.sp()
    mailbox = values.mailbox(reader)
    messages: list[AppendMessage] = []
    while reader.take_sp():
        flags: tuple[str, ...] = ()
        when: dt.datetime | None = None
        if reader.peek() == b"(":
            flags = values.flag_list(reader)
            reader.sp()
        if reader.peek() == b'"':
            when = values.date_time(reader)
            reader.sp()
        if not reader.is_literal():
            raise reader.error("a literal (the message)")
        binary = reader.peek() == b"~"
        data = reader.literal(binary=True)
        messages.append(AppendMessage(flags, when, data, binary))
    if not messages:
        raise reader.error("a space")
    return Append(mailbox, tuple(messages))


def _fetch(reader: Reader) -> Fetch:
    reader.sp()
    sequence = sequence_set(reader)
    reader.sp()
    attributes = fetch.attributes(reader)
    changedsince: int | None = None
    vanished = False
    if reader.take_sp():
        def modifier() -> None:
            nonlocal changedsince, vanished
            start = reader.pos
            name = reader.keyword("a FETCH modifier")
            if name == "CHANGEDSINCE":
                reader.sp()
                changedsince = reader.number("a mod-sequence", limit=2**63 - 1)
            elif name == "VANISHED":
                vanished = True
            else:
                raise ParseError(f"unknown FETCH modifier {name} at position {start}")
        reader.paren_list(modifier, "FETCH modifiers", empty=False)
        if vanished and changedsince is None:
            raise ParseError("VANISHED needs CHANGEDSINCE")
    return Fetch(sequence, attributes, changedsince, vanished)


def _store(reader: Reader) -> Store:
    reader.sp()
    sequence = sequence_set(reader)
    reader.sp()
    unchangedsince: int | None = None
    if reader.peek() == b"(":
        def modifier() -> None:
            nonlocal unchangedsince
            start = reader.pos
            name = reader.keyword("a STORE modifier")
            if name != "UNCHANGEDSINCE":
                raise ParseError(f"unknown STORE modifier {name} at position {start}")
            reader.sp()
            unchangedsince = reader.number("a mod-sequence", limit=2**63 - 1)
        reader.paren_list(modifier, "STORE modifiers", empty=False)
        reader.sp()
    mode = "+" if reader.take(b"+") else "-" if reader.take(b"-") else ""
    reader.expect(b"FLAGS", "FLAGS, +FLAGS or -FLAGS")
    silent = reader.take(b".SILENT")
    reader.sp()
    if reader.peek() == b"(":
        flags = values.flag_list(reader)
    else:
        found = [values.flag(reader)]
        while reader.take_sp():
            found.append(values.flag(reader))
        flags = tuple(found)
    return Store(sequence, mode, silent, flags, unchangedsince)


def _copy(reader: Reader) -> Copy:
    reader.sp()
    sequence = sequence_set(reader)
    reader.sp()
    return Copy(sequence, values.mailbox(reader))


def _expunge(reader: Reader, uid: bool) -> NoArguments | UidExpunge:
    if not uid:
        return NoArguments()
    reader.sp()
    return UidExpunge(sequence_set(reader))


def _search(reader: Reader) -> Search:
    reader.sp()
    returns: tuple[str, ...] | None = None
    if reader.take(b"RETURN "):
        def option() -> str:
            start = reader.pos
            name = reader.keyword("a SEARCH return option")
            if name not in search.RETURN_OPTIONS:
                raise ParseError(f"unknown SEARCH return option {name} at position {start}")
            return name
        returns = tuple(dict.fromkeys(reader.paren_list(option, "return options")))
        reader.sp()
    charset: str | None = None
    if reader.take(b"CHARSET "):
        charset = search.charset(reader)
        reader.sp()
    return Search(search.keys(reader, charset), charset, returns)


def _thread(reader: Reader) -> Thread:
    reader.sp()
    algorithm = reader.keyword("a thread algorithm")
    reader.sp()
    charset = search.charset(reader)
    reader.sp()
    return Thread(algorithm, charset, search.keys(reader, charset))


_PARSERS: dict[str, Callable[[Reader], Arguments]] = {
    "CAPABILITY": _none, "NOOP": _none, "LOGOUT": _none, "STARTTLS": _none, "NAMESPACE": _none,
    "IDLE": _none, "CHECK": _none, "CLOSE": _none, "UNSELECT": _none,
    "LOGIN": _login, "AUTHENTICATE": _authenticate, "ID": _id, "ENABLE": _enable, "COMPRESS": _compress,
    "SELECT": _select, "EXAMINE": _select, "CREATE": _create, "DELETE": _mailbox, "SUBSCRIBE": _mailbox,
    "UNSUBSCRIBE": _mailbox, "RENAME": _rename, "LIST": _list, "LSUB": _lsub, "STATUS": _status,
    "APPEND": _append, "FETCH": _fetch, "STORE": _store, "COPY": _copy, "MOVE": _copy,
    "EXPUNGE": lambda reader: _expunge(reader, False), "SEARCH": _search, "THREAD": _thread,
}
COMMANDS = frozenset(_PARSERS)


def parse(reader: Reader) -> Command:
    """One framed command. Errors carry the tag once it has been read."""
    tag_raw = reader.match(TAG)
    if tag_raw is None:
        raise reader.error("a tag")
    tag = tag_raw.decode("ascii")
    try:
        reader.sp()
        start = reader.pos
        name = reader.keyword("a command name")
        uid = False
        if name == "UID":
            reader.sp()
            start = reader.pos
            name = reader.keyword("a command name after UID")
            if name not in UID_COMMANDS:
                raise UnknownCommand(f"UID {name} is not a command, at position {start}")
            uid = True
        parser = _PARSERS.get(name)
        if parser is None:
            raise UnknownCommand(f"unknown command {name}")
        arguments = _expunge(reader, True) if uid and name == "EXPUNGE" else parser(reader)
        if reader.peek() == b" " and reader.pos == len(reader.data) - 1:
            reader.pos += 1  # a trailing space, as some clients send, is forgiven
        reader.end()
    except ParseError as error:
        raise error.with_tag(tag) from None
    return Command(tag, name, arguments, uid)
