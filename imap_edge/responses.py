"""Server responses, from Python values to bytes (RFC 3501 / RFC 9051 section 7, and the
extensions of issue 20). The protocol layer's other half: it knows no session and no mailbox.

Strings: a string with CR, LF or NUL, with 8-bit bytes (before UTF8=ACCEPT / IMAP4rev2) or
longer than ``max_quoted`` goes as a literal, any other as a quoted string with ``\\`` and
``"`` escaped. Human-readable text after a status (``OK``, ``NO`` …) never carries CR or LF:
they become spaces, so nothing a caller passes can end a line early.
"""
from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeAlias

from imap_edge.protocol import mutf7
from imap_edge.protocol.sequence import SequenceSet, compact

CRLF = b"\r\n"
STATUSES = frozenset({"OK", "NO", "BAD", "BYE", "PREAUTH"})
_ASTRING_ATOM = re.compile(rb"[^\x00-\x20\x7f-\xff(){%*\"\\]+")
_CODE_NAME = re.compile(r"[A-Z0-9.\-]+")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@dataclass(frozen=True)
class Atom:
    """Written as is: flags, keywords, capability names."""

    text: str


@dataclass(frozen=True)
class Literal:
    """Forced to a literal; ``binary`` allows NUL (``~{n}``, RFC 3516 BINARY)."""

    data: bytes
    binary: bool = False


@dataclass(frozen=True)
class Raw:
    """Bytes already encoded (a nested response built by another call)."""

    data: bytes


@dataclass(frozen=True)
class Address:
    """One ENVELOPE address. A group is ``Address(None, None, "group", None)`` ... ``Address(None, None, None, None)``."""

    name: str | None
    adl: str | None
    mailbox: str | None
    host: str | None


@dataclass(frozen=True)
class Envelope:
    """RFC 3501 7.4.2; the server fills ``sender`` and ``reply_to`` from ``from_`` when absent."""

    date: str | None = None
    subject: str | None = None
    from_: tuple[Address, ...] = ()
    sender: tuple[Address, ...] = ()
    reply_to: tuple[Address, ...] = ()
    to: tuple[Address, ...] = ()
    cc: tuple[Address, ...] = ()
    bcc: tuple[Address, ...] = ()
    in_reply_to: str | None = None
    message_id: str | None = None


Params = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class BodyPart:
    """A non-multipart body. ``lines`` for text/* and message/rfc822; ``envelope`` and ``body``
    for message/rfc822 (and message/global). The rest is the BODYSTRUCTURE extension data."""

    type: str
    subtype: str
    params: Params = ()
    id: str | None = None
    description: str | None = None
    encoding: str = "7BIT"
    size: int = 0
    lines: int | None = None
    envelope: Envelope | None = None
    body: BodyStructure | None = None
    md5: str | None = None
    disposition: tuple[str, Params] | None = None
    language: tuple[str, ...] | None = None
    location: str | None = None


@dataclass(frozen=True)
class Multipart:
    parts: tuple[BodyStructure, ...]
    subtype: str
    params: Params = ()
    disposition: tuple[str, Params] | None = None
    language: tuple[str, ...] | None = None
    location: str | None = None


BodyStructure: TypeAlias = BodyPart | Multipart
Value: TypeAlias = (None | int | str | bytes | Atom | Literal | Raw | dt.datetime | Envelope | BodyPart | Multipart
                    | Sequence["Value"])


@dataclass(frozen=True)
class Code:
    """A response code: ``[NAME]`` or ``[NAME data]``."""

    name: str
    data: bytes = b""

    def __bytes__(self) -> bytes:
        return b"[" + self.name.encode("ascii") + (b" " + self.data if self.data else b"") + b"]"


@dataclass(frozen=True)
class ThreadNode:
    """A THREAD response tree (RFC 5256); ``message`` is None for a missing parent."""

    message: int | None
    children: tuple[ThreadNode, ...] = ()


def _text(text: str) -> bytes:
    return text.replace("\r", " ").replace("\n", " ").encode("utf-8")


def _uids(uids: Iterable[int] | SequenceSet | str) -> bytes:
    if isinstance(uids, SequenceSet | str):
        return str(uids).encode("ascii")
    return compact(uids).encode("ascii")


# -- response codes (RFC 9051 7.1 and the extensions')

def code(name: str, *data: str | int) -> Code:
    if not _CODE_NAME.fullmatch(name):
        raise ValueError(f"bad response code name {name!r}")
    return Code(name, " ".join(str(item) for item in data).encode("utf-8"))


def uidnext(uid: int) -> Code:
    return code("UIDNEXT", uid)


def uidvalidity(value: int) -> Code:
    return code("UIDVALIDITY", value)


def unseen(number: int) -> Code:
    return code("UNSEEN", number)


def highestmodseq(modseq: int) -> Code:
    return code("HIGHESTMODSEQ", modseq)


def appenduid(uidvalidity: int, uids: Iterable[int] | SequenceSet | str) -> Code:
    return Code("APPENDUID", f"{uidvalidity} ".encode("ascii") + _uids(uids))


def copyuid(uidvalidity: int, source: Iterable[int] | SequenceSet | str,
            destination: Iterable[int] | SequenceSet | str) -> Code:
    """UIDPLUS: both sets in the same order. Pass ordered sets as strings when they are not ascending."""
    return Code("COPYUID", f"{uidvalidity} ".encode("ascii") + _uids(source) + b" " + _uids(destination))


def modified(numbers: Iterable[int] | SequenceSet | str) -> Code:
    return Code("MODIFIED", _uids(numbers))


def permanentflags(flags: Iterable[str]) -> Code:
    return Code("PERMANENTFLAGS", _flag_list(flags))


def capability(capabilities: Iterable[str]) -> Code:
    return Code("CAPABILITY", " ".join(capabilities).encode("ascii"))


def badcharset(charsets: Iterable[str] = ("US-ASCII", "UTF-8")) -> Code:
    return Code("BADCHARSET", b"(" + b" ".join(ENCODER.astring(name) for name in charsets) + b")")


READ_ONLY, READ_WRITE, TRYCREATE = Code("READ-ONLY"), Code("READ-WRITE"), Code("TRYCREATE")
NOMODSEQ, CLOSED, ALREADYEXISTS, NONEXISTENT = Code("NOMODSEQ"), Code("CLOSED"), Code("ALREADYEXISTS"), Code("NONEXISTENT")
TOOBIG, ALERT, PARSE, CANNOT, LIMIT = Code("TOOBIG"), Code("ALERT"), Code("PARSE"), Code("CANNOT"), Code("LIMIT")
OVERQUOTA, SERVERBUG, CLIENTBUG, INUSE = Code("OVERQUOTA"), Code("SERVERBUG"), Code("CLIENTBUG"), Code("INUSE")
EXPUNGEISSUED, AUTHENTICATIONFAILED = Code("EXPUNGEISSUED"), Code("AUTHENTICATIONFAILED")
AUTHORIZATIONFAILED, UNAVAILABLE, NOPERM = Code("AUTHORIZATIONFAILED"), Code("UNAVAILABLE"), Code("NOPERM")
PRIVACYREQUIRED, CONTACTADMIN, USEATTR = Code("PRIVACYREQUIRED"), Code("CONTACTADMIN"), Code("USEATTR")


def _flag_list(flags: Iterable[str]) -> bytes:
    return b"(" + b" ".join(flag.encode("ascii") for flag in flags) + b")"


def _params(params: Params) -> list[Value]:
    return [item for pair in params for item in pair] if params else []


class Encoder:
    """One connection's encoder: ``utf8`` after IMAP4rev2 / UTF8=ACCEPT (mailbox names in
    UTF-8, 8-bit strings quoted); ``max_quoted`` is the longest string sent quoted."""

    def __init__(self, *, utf8: bool = False, max_quoted: int = 1000) -> None:
        self.utf8 = utf8
        self.max_quoted = max_quoted

    # -- strings

    def literal(self, data: bytes, *, binary: bool = False) -> bytes:
        if b"\x00" in data:
            if binary:
                return b"~{%d}\r\n" % len(data) + data
            data = data.replace(b"\x00", b"\x80")  # as Dovecot: NUL is not allowed in a literal
        return b"{%d}\r\n" % len(data) + data

    def string(self, value: str | bytes) -> bytes:
        data = value.encode("utf-8") if isinstance(value, str) else value
        if (len(data) > self.max_quoted or b"\r" in data or b"\n" in data or b"\x00" in data
                or (not data.isascii() and not (self.utf8 and _is_utf8(data)))):
            return self.literal(data)
        return b'"' + data.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'

    def nstring(self, value: str | bytes | None) -> bytes:
        return b"NIL" if value is None else self.string(value)

    def astring(self, value: str | bytes) -> bytes:
        data = value.encode("utf-8") if isinstance(value, str) else value
        if _ASTRING_ATOM.fullmatch(data) and data.upper() != b"NIL":
            return data
        return self.string(data)

    def mailbox(self, name: str) -> bytes:
        """A mailbox name: modified UTF-7 unless UTF-8 is on; quoted unless it is ``INBOX``."""
        if name == "INBOX":
            return b"INBOX"
        return self.string(name.encode("utf-8") if self.utf8 else mutf7.encode(name))

    # -- values

    def value(self, value: Value) -> bytes:
        if value is None:
            return b"NIL"
        if isinstance(value, bool):
            raise TypeError("a bool is not an IMAP value")
        if isinstance(value, int):
            if value < 0:
                raise ValueError("IMAP numbers are not negative")
            return str(value).encode("ascii")
        if isinstance(value, str | bytes):
            return self.string(value)
        if isinstance(value, Atom):
            return value.text.encode("utf-8")
        if isinstance(value, Literal):
            return self.literal(value.data, binary=value.binary)
        if isinstance(value, Raw):
            return value.data
        if isinstance(value, dt.datetime):
            return self.date_time(value)
        if isinstance(value, Envelope):
            return self.envelope(value)
        if isinstance(value, BodyPart | Multipart):
            return self.body_structure(value)
        return b"(" + b" ".join(self.value(item) for item in value) + b")"

    def date_time(self, when: dt.datetime) -> bytes:
        """``"17-Jul-1996 02:44:25 -0700"``; a naive datetime is taken as UTC."""
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        offset = when.utcoffset() or dt.timedelta(0)
        minutes = int(offset.total_seconds()) // 60
        sign = "-" if minutes < 0 else "+"
        minutes = abs(minutes)
        text = (f"{when.day:02d}-{_MONTHS[when.month - 1]}-{when.year:04d} "
                f"{when.hour:02d}:{when.minute:02d}:{when.second:02d} {sign}{minutes // 60:02d}{minutes % 60:02d}")
        return b'"' + text.encode("ascii") + b'"'

    def addresses(self, addresses: tuple[Address, ...]) -> bytes:
        if not addresses:
            return b"NIL"
        return b"(" + b"".join(
            b"(" + b" ".join(self.nstring(part) for part in (item.name, item.adl, item.mailbox, item.host)) + b")"
            for item in addresses) + b")"

    def envelope(self, envelope: Envelope) -> bytes:
        fields = [self.nstring(envelope.date), self.nstring(envelope.subject)]
        fields += [self.addresses(group) for group in (envelope.from_, envelope.sender, envelope.reply_to,
                                                       envelope.to, envelope.cc, envelope.bcc)]
        fields += [self.nstring(envelope.in_reply_to), self.nstring(envelope.message_id)]
        return b"(" + b" ".join(fields) + b")"

    def _params(self, params: Params) -> bytes:
        return self.value(_params(params)) if params else b"NIL"

    def _extension(self, disposition: tuple[str, Params] | None, language: tuple[str, ...] | None,
                   location: str | None) -> list[bytes]:
        disposition_bytes = b"NIL" if disposition is None else \
            b"(" + self.string(disposition[0]) + b" " + self._params(disposition[1]) + b")"
        if language is None:
            language_bytes = b"NIL"
        elif len(language) == 1:
            language_bytes = self.string(language[0])
        else:
            language_bytes = self.value(list(language))
        return [disposition_bytes, language_bytes, self.nstring(location)]

    def body_structure(self, body: BodyStructure, *, extended: bool = True) -> bytes:
        """BODYSTRUCTURE (``extended``) or BODY (without the extension data)."""
        if isinstance(body, Multipart):
            out = b"".join(self.body_structure(part, extended=extended) for part in body.parts)
            fields = [out, self.string(body.subtype.upper())]
            if extended:
                fields += [self._params(body.params), *self._extension(body.disposition, body.language, body.location)]
            return b"(" + b" ".join(fields) + b")"
        fields = [self.string(body.type.upper()), self.string(body.subtype.upper()), self._params(body.params),
                  self.nstring(body.id), self.nstring(body.description), self.string(body.encoding.upper()),
                  str(body.size).encode("ascii")]
        if body.envelope is not None and body.body is not None:
            fields += [self.envelope(body.envelope), self.body_structure(body.body, extended=extended),
                       str(body.lines or 0).encode("ascii")]
        elif body.lines is not None:
            fields.append(str(body.lines).encode("ascii"))
        if extended:
            fields += [self.nstring(body.md5), *self._extension(body.disposition, body.language, body.location)]
        return b"(" + b" ".join(fields) + b")"

    # -- status responses

    def tagged(self, tag: str, status: str, text: str, response_code: Code | None = None) -> bytes:
        return self._status(tag.encode("ascii"), status, text, response_code)

    def untagged(self, status: str, text: str, response_code: Code | None = None) -> bytes:
        return self._status(b"*", status, text, response_code)

    def _status(self, tag: bytes, status: str, text: str, response_code: Code | None) -> bytes:
        if status not in STATUSES:
            raise ValueError(f"bad status {status!r}")
        line = tag + b" " + status.encode("ascii")
        if response_code is not None:
            line += b" " + bytes(response_code)
        return line + b" " + (_text(text) or b"done") + CRLF

    def continuation(self, text: str = "Ready") -> bytes:
        return b"+ " + _text(text) + CRLF

    def continuation_data(self, data: bytes) -> bytes:
        """AUTHENTICATE's server challenge, base64 already."""
        return b"+ " + data + CRLF

    # -- untagged data

    def capability(self, capabilities: Iterable[str]) -> bytes:
        return b"* CAPABILITY " + " ".join(capabilities).encode("ascii") + CRLF

    def enabled(self, capabilities: Iterable[str]) -> bytes:
        names = " ".join(capabilities)
        return b"* ENABLED" + (b" " + names.encode("ascii") if names else b"") + CRLF

    def flags(self, flags: Iterable[str]) -> bytes:
        return b"* FLAGS " + _flag_list(flags) + CRLF

    def exists(self, count: int) -> bytes:
        return b"* %d EXISTS\r\n" % count

    def recent(self, count: int) -> bytes:
        return b"* %d RECENT\r\n" % count

    def expunge(self, number: int) -> bytes:
        return b"* %d EXPUNGE\r\n" % number

    def vanished(self, uids: Iterable[int] | SequenceSet | str, *, earlier: bool = False) -> bytes:
        return b"* VANISHED " + (b"(EARLIER) " if earlier else b"") + _uids(uids) + CRLF

    def fetch(self, number: int, items: Sequence[tuple[str, Value]]) -> bytes:
        """``* n FETCH (name value ...)``; names as ``FetchAttribute.response_name()`` gives them."""
        body = b" ".join(name.encode("ascii") + b" " + self.value(item) for name, item in items)
        return b"* %d FETCH (" % number + body + b")" + CRLF

    def flags_value(self, flags: Iterable[str]) -> Raw:
        """A FETCH ``FLAGS`` item's value."""
        return Raw(_flag_list(flags))

    def list(self, attributes: Iterable[str], delimiter: str | None, name: str, *, command: str = "LIST",
             extended: Sequence[Value] = ()) -> bytes:
        """``* LIST (\\HasNoChildren \\Sent) "/" Sent``; ``extended`` is RFC 5258's extended data
        (``("CHILDINFO" ("SUBSCRIBED"))``, ``("OLDNAME" ("x"))``)."""
        line = (b"* " + command.encode("ascii") + b" " + _flag_list(attributes) + b" "
                + (b"NIL" if delimiter is None else self.string(delimiter)) + b" " + self.mailbox(name))
        if extended:
            line += b" " + self.value(list(extended))
        return line + CRLF

    def status(self, mailbox: str, items: Mapping[str, int]) -> bytes:
        body = b" ".join(key.encode("ascii") + b" " + str(value).encode("ascii") for key, value in items.items())
        return b"* STATUS " + self.mailbox(mailbox) + b" (" + body + b")" + CRLF

    def search(self, numbers: Iterable[int], *, modseq: int | None = None) -> bytes:
        line = b"* SEARCH" + b"".join(b" %d" % number for number in numbers)
        if modseq is not None:
            line += b" (MODSEQ %d)" % modseq
        return line + CRLF

    def esearch(self, tag: str | None, *, uid: bool, min: int | None = None, max: int | None = None,
                count: int | None = None, all: Iterable[int] | SequenceSet | str | None = None,
                modseq: int | None = None) -> bytes:
        """RFC 4731 / RFC 9051 ESEARCH: results with no match are left out (COUNT 0 is said)."""
        line = b"* ESEARCH"
        if tag is not None:
            line += b" (TAG " + self.string(tag) + b")"
        if uid:
            line += b" UID"
        if min is not None:
            line += b" MIN %d" % min
        if max is not None:
            line += b" MAX %d" % max
        if count is not None:
            line += b" COUNT %d" % count
        if all is not None:
            numbers = _uids(all)
            if numbers:
                line += b" ALL " + numbers
        if modseq is not None:
            line += b" MODSEQ %d" % modseq
        return line + CRLF

    def namespace(self, personal: Sequence[tuple[str, str | None]] | None,
                  other: Sequence[tuple[str, str | None]] | None = None,
                  shared: Sequence[tuple[str, str | None]] | None = None) -> bytes:
        def spaces(items: Sequence[tuple[str, str | None]] | None) -> bytes:
            if not items:
                return b"NIL"
            return b"(" + b"".join(b"(" + self.string(prefix) + b" " + self.nstring(delimiter) + b")"
                                   for prefix, delimiter in items) + b")"
        return b"* NAMESPACE " + spaces(personal) + b" " + spaces(other) + b" " + spaces(shared) + CRLF

    def id(self, fields: Mapping[str, str | None] | None) -> bytes:
        if fields is None:
            return b"* ID NIL\r\n"
        return b"* ID (" + b" ".join(self.string(key) + b" " + self.nstring(value)
                                     for key, value in fields.items()) + b")" + CRLF

    def thread(self, roots: Sequence[ThreadNode]) -> bytes:
        return b"* THREAD" + (b" " if roots else b"") + b"".join(b"(" + _thread(root) + b")" for root in roots) + CRLF


def _thread(node: ThreadNode) -> bytes:
    parts: list[bytes] = []
    while node.message is not None:
        parts.append(b"%d" % node.message)
        if len(node.children) != 1:
            break
        node = node.children[0]
    children = node.children
    if children and (node.message is None or len(children) > 1):
        parts.append(b"".join(b"(" + _thread(child) + b")" for child in children))
    return b" ".join(parts)


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


ENCODER = Encoder()
