"""One IMAP connection: the protocol state machine (aiosmtpd's shape: the protocol in one
place, the mailbox policy in ``backend``/``selected``/``searching``).

States (RFC 9051 3): not authenticated -> authenticated -> selected, and logout. Each command
is allowed in the states of ``ALLOWED``; elsewhere it is ``BAD`` naming the state. A parse error
is ``BAD`` with the parser's reason (``NO`` for the few the RFCs make ``NO``); a refusal of the
store is ``NO`` with a response code; an overlong line ends the connection with ``* BYE``; an
unexpected error is ``NO [SERVERBUG]`` and the session goes on. Nothing a client sends can
crash the connection's task or stall it: every read has the idle timeout.

TLS: STARTTLS (offered when the edge has a certificate) answers OK and hands the connection to
``starttls.upgrade``; bytes pipelined after it are refused (BAD, BYE, closed), never read as TLS
input. LOGIN and AUTHENTICATE PLAIN need TLS or a loopback peer (LOGINDISABLED otherwise); after
STARTTLS the capabilities lose STARTTLS and LOGINDISABLED.

Untagged updates (EXISTS, EXPUNGE or once QRESYNC is on VANISHED, FETCH FLAGS) come from the change feed: read after every
command but FETCH, STORE and SEARCH (which must not renumber, RFC 3501 7.4.1: their expunges
wait), and pushed during IDLE from ``Mail.Watch``.
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import enum
import logging
import ssl
import zlib
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from imap_edge import command_log, names, starttls, threads
from imap_edge import message as mime
from imap_edge.backend import Account, Backend, BackendError, BadCredentials, Gone, Summary, TooOld, UserMailbox, flag_changes
from imap_edge.connections import UserConnections
from imap_edge.metrics import COMMANDS
from imap_edge.protocol import CommandParser, Limits, Line, LineTooLong, NeedMore, ParseError, search
from imap_edge.protocol import commands as c
from imap_edge.protocol.fetch import FetchAttribute
from imap_edge.protocol.search import SearchKey
from imap_edge.protocol.sequence import SequenceSet, compact
from imap_edge.responses import Code, Encoder, Literal, Raw, Value
from imap_edge.responses import code as make_code
from imap_edge.searching import Searcher, Unsupported
from imap_edge.selected import FLAGS, PERMANENT_FLAGS, BadSequence, Event, Exists, Expunged, Message, Selected, gaps, left
from tidings_runtime import kept_headers

log = logging.getLogger(__name__)

SERVER_ID = {"name": "Tidings", "vendor": "Tidings", "version": "0.1.0"}
BASE_CAPABILITIES = ("IMAP4rev1", "IMAP4rev2", "LITERAL+", "SASL-IR", "ID", "ENABLE", "IDLE", "NAMESPACE", "UIDPLUS", "MOVE",
                     "UNSELECT", "CHILDREN", "LIST-EXTENDED", "LIST-STATUS", "SPECIAL-USE", "CONDSTORE", "QRESYNC", "ESEARCH",
                     *(f"THREAD={a}" for a in threads.ALGORITHMS))
RAW_CACHE = 16  # message bodies a session keeps (a client fetches a message's parts one by one)
READ_AHEAD = 100  # bodies a FETCH asks for in one Mail.GetMessages (an answer holds about 4 MiB of them)


class State(enum.Enum):
    NOT_AUTHENTICATED = "not authenticated"
    AUTHENTICATED = "authenticated"
    SELECTED = "selected"
    LOGOUT = "logout"


_ANY = frozenset({"CAPABILITY", "NOOP", "LOGOUT", "ID"})
_AUTH = frozenset({"ENABLE", "SELECT", "EXAMINE", "CREATE", "DELETE", "RENAME", "SUBSCRIBE", "UNSUBSCRIBE", "LIST",
                   "LSUB", "STATUS", "APPEND", "NAMESPACE", "IDLE", "COMPRESS"})
_SELECTED = frozenset({"CHECK", "CLOSE", "UNSELECT", "EXPUNGE", "SEARCH", "FETCH", "STORE", "COPY", "MOVE",
                       "THREAD"})
ALLOWED: dict[State, frozenset[str]] = {
    State.NOT_AUTHENTICATED: _ANY | {"LOGIN", "AUTHENTICATE", "STARTTLS"},
    State.AUTHENTICATED: _ANY | _AUTH,
    State.SELECTED: _ANY | _AUTH | _SELECTED,
    State.LOGOUT: frozenset(),
}
_NO_RENUMBER = frozenset({"FETCH", "STORE", "SEARCH", "THREAD"})  # without UID: no EXPUNGE while answering


class Bad(Exception):
    """A command that is wrong as sent: tagged ``BAD``."""


class No(Exception):
    def __init__(self, text: str, response_code: Code | None = None) -> None:
        super().__init__(text)
        self.text = text
        self.code = response_code


class Closed(Exception):
    """The connection ended (EOF, timeout, BYE sent)."""


class Session:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, backend: Backend, *,
                 limits: Limits | None = None, timeout: float = 1800.0, idle_timeout: float = 1800.0,
                 plaintext_ok: bool = True, tls_context: ssl.SSLContext | None = None, tls: bool = False,
                 connections: UserConnections | None = None) -> None:
        """``plaintext_ok``: LOGIN and AUTHENTICATE PLAIN without TLS (a loopback peer);
        ``tls_context``: STARTTLS is offered with it; ``tls``: the connection is TLS already;
        ``connections``: the edge's count of sessions per user (a login over its bound is NO [LIMIT])."""
        self.reader = reader
        self.writer = writer
        self.backend = backend
        self.parser = CommandParser(limits or Limits())
        self.encoder = Encoder()
        self.timeout = timeout
        self.idle_timeout = idle_timeout
        self.plaintext_ok = plaintext_ok
        self.tls_context = tls_context
        self.tls = tls
        self.connections = connections
        self._counted: str | None = None  # the user this session is counted for in ``connections``
        self._upgrade = False  # STARTTLS answered OK: the handshake follows the flush
        self._compress = False  # COMPRESS answered OK: deflate starts after the flush
        self._deflate: Any = None  # zlib's raw deflate streams (RFC 4978), out and in, once active
        self._inflate: Any = None
        self._closing = False  # BYE sent: close after the flush
        self.state = State.NOT_AUTHENTICATED
        self.account: Account | None = None
        self.mailbox: UserMailbox | None = None
        self.selected: Selected | None = None
        self.condstore = False
        self.qresync = False  # ENABLE QRESYNC (RFC 7162): VANISHED for expunges, SELECT (QRESYNC ...)
        self.rev2 = False  # ENABLE IMAP4rev2 (RFC 9051): no RECENT, ESEARCH only, UTF-8 names, LIST on SELECT
        self._out: list[bytes] = []
        self._raws: OrderedDict[str, bytes] = OrderedDict()
        self._ok_code: Code | None = None
        self._commands = 0  # commands read: the n of each one's request id (command_log.py)
        handlers: dict[str, Callable[[c.Command], Awaitable[str]]] = {
            "CAPABILITY": self._capability, "NOOP": self._noop, "CHECK": self._noop, "LOGOUT": self._logout,
            "ID": self._id, "LOGIN": self._login, "AUTHENTICATE": self._authenticate, "STARTTLS": self._starttls,
            "ENABLE": self._enable, "NAMESPACE": self._namespace, "LIST": self._list, "LSUB": self._list,
            "STATUS": self._status, "SELECT": self._select, "EXAMINE": self._select, "CREATE": self._create,
            "DELETE": self._delete, "RENAME": self._rename, "SUBSCRIBE": self._subscribe,
            "UNSUBSCRIBE": self._subscribe, "APPEND": self._append, "IDLE": self._idle, "CLOSE": self._close,
            "UNSELECT": self._close, "EXPUNGE": self._expunge, "FETCH": self._fetch, "STORE": self._store,
            "COPY": self._copy, "MOVE": self._copy, "SEARCH": self._search,
            "THREAD": self._thread, "COMPRESS": self._compress_command,
        }
        self._handlers = handlers

    # -- capabilities

    @property
    def capabilities(self) -> list[str]:
        found = list(BASE_CAPABILITIES)
        if self.state == State.NOT_AUTHENTICATED:
            if self.tls_context is not None and not self.tls:
                found.append("STARTTLS")
            found.append("AUTH=PLAIN")
            if not self._login_allowed:
                found.append("LOGINDISABLED")
        elif self._deflate is None:
            found.append("COMPRESS=DEFLATE")
        return found

    @property
    def _login_allowed(self) -> bool:
        return self.plaintext_ok or self.tls

    # -- output

    def send(self, data: bytes) -> None:
        self._out.append(data)

    async def flush(self) -> None:
        if self._out:
            data = b"".join(self._out)
            self._out.clear()
            if self._deflate is not None:   # each flush ends on a byte boundary the client can read
                data = self._deflate.compress(data) + self._deflate.flush(zlib.Z_SYNC_FLUSH)
            self.writer.write(data)
            await self.writer.drain()

    # -- the loop

    async def run(self) -> None:
        try:
            self.send(self.encoder.untagged("OK", "Tidings IMAP ready", make_code("CAPABILITY", *self.capabilities)))
            await self.flush()
            while self.state != State.LOGOUT:
                event = self.parser.next()
                if isinstance(event, NeedMore):
                    if event.continuation:
                        self.send(self.encoder.continuation("Ready for literal data"))
                        await self.flush()
                    await self._read()
                    continue
                if isinstance(event, LineTooLong):
                    self._refuse(event)
                    self.send(self.encoder.untagged("BYE", "line too long, closing the connection"))
                    await self.flush()
                    return
                if isinstance(event, ParseError):
                    self._refuse(event)
                elif isinstance(event, Line):
                    self.send(self.encoder.untagged("BAD", "unexpected line"))
                else:
                    await self._command(event)
                await self.flush()
                if self._closing:
                    return
                if self._upgrade:
                    await self._start_tls()
                if self._compress:
                    self._start_compression()
        except Closed:
            pass
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.state = State.LOGOUT
            self._release()
            try:
                await self.flush()
            except (ConnectionError, RuntimeError):
                pass
            self.writer.close()

    def _release(self) -> None:
        """This session no longer counts against its user's bound (before LOGOUT's answer, so a
        client that logs in again at once finds its place free)."""
        if self._counted is not None and self.connections is not None:
            self.connections.release(self._counted)
        self._counted = None

    async def _read(self, timeout: float | None = None) -> None:
        try:
            data = await asyncio.wait_for(self.reader.read(65536), timeout or self.timeout)
        except TimeoutError:
            self.send(self.encoder.untagged("BYE", "autologout: idle for too long"))
            raise Closed from None
        if not data:
            raise Closed
        if self._inflate is not None:
            try:
                data = self._inflate.decompress(data)
            except zlib.error as error:
                log.info("IMAP COMPRESS: the client's deflate stream is broken: %s", error)
                raise Closed from None
        self.parser.feed(data)

    def _refuse(self, error: ParseError) -> None:
        response_code = Code(error.code) if error.code else None
        if error.tag is None:
            self.send(self.encoder.untagged("BAD", error.reason))
        else:
            self.send(self.encoder.tagged(error.tag, error.status, error.reason, response_code))
        COMMANDS.labels("unparsed", error.status).inc()

    async def _command(self, command: c.Command) -> None:
        self._commands += 1
        await command_log.logged(command, self._commands, self._dispatch)

    async def _dispatch(self, command: c.Command) -> str:
        """Answer `command`; the status answered (OK, NO, BAD)."""
        name = ("UID " if command.uid else "") + command.name
        status = "OK"
        try:
            if command.name not in ALLOWED[self.state]:
                raise Bad(f"{name} is not allowed in the {self.state.value} state")
            handler = self._handlers[command.name]
            text = await handler(command)
            if self.state == State.SELECTED and command.name not in ("CLOSE", "UNSELECT", "LOGOUT", "IDLE"):
                await self._updates(expunges=command.uid or command.name not in _NO_RENUMBER)
                self._held_back()
            if self.state != State.LOGOUT or command.name == "LOGOUT":
                self.send(self.encoder.tagged(command.tag, "OK", text, self._ok_code))
        except Bad as error:
            status = "BAD"
            self.send(self.encoder.tagged(command.tag, "BAD", str(error)))
        except No as error:
            status = "NO"
            self.send(self.encoder.tagged(command.tag, "NO", error.text, error.code))
        except BackendError as error:
            status = "NO"
            self.send(self.encoder.tagged(command.tag, "NO", error.text, Code(error.code) if error.code else None))
        except Closed:
            raise
        except (ConnectionError, asyncio.CancelledError):
            raise
        except Exception:
            status = "NO"
            log.exception("IMAP %s failed", name)
            self.send(self.encoder.tagged(command.tag, "NO", "internal error, try again", Code("SERVERBUG")))
        finally:
            self._ok_code = None
            COMMANDS.labels(name, status).inc()
        return status

    # -- any state

    async def _capability(self, command: c.Command) -> str:
        self.send(self.encoder.capability(self.capabilities))
        return "CAPABILITY completed"

    async def _noop(self, command: c.Command) -> str:
        return f"{command.name} completed"

    async def _logout(self, command: c.Command) -> str:
        self.send(self.encoder.untagged("BYE", "Tidings IMAP logging out"))
        self.state = State.LOGOUT
        self._release()
        return "LOGOUT completed"

    async def _id(self, command: c.Command) -> str:
        self.send(self.encoder.id(SERVER_ID))
        return "ID completed"

    # -- not authenticated

    async def _starttls(self, command: c.Command) -> str:
        if self.tls:
            raise Bad("TLS is already active")
        if self.tls_context is None:
            raise No("STARTTLS is not offered here", Code("CANNOT"))
        if self._pipelined():
            self.send(self.encoder.untagged("BYE", "commands sent after STARTTLS are refused, closing"))
            self._closing = True
            raise Bad("STARTTLS cannot be pipelined: the bytes after it were not read")
        self._upgrade = True
        return "Begin TLS negotiation now"

    async def _compress_command(self, command: c.Command) -> str:
        """COMPRESS DEFLATE (RFC 4978): after the OK, both directions are raw deflate streams."""
        args = command.arguments
        assert isinstance(args, c.Compress)
        if self._deflate is not None:
            raise No("compression is already active", Code("COMPRESSIONACTIVE"))
        if args.mechanism.upper() != "DEFLATE":
            raise Bad(f"unknown compression mechanism {args.mechanism!r}: only DEFLATE")
        if self._pipelined():   # refused, so compression stays off and they are read as they came
            raise Bad("COMPRESS cannot be pipelined: wait for its answer; compression stays off")
        self._compress = True
        return "DEFLATE active"

    def _start_compression(self) -> None:
        self._compress = False
        self._deflate = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15)
        self._inflate = zlib.decompressobj(-15)

    def _pipelined(self) -> bool:
        """Bytes received after the command that would otherwise be read after the handshake."""
        return bool(self.parser.buffered()) or starttls.pending(self.reader) > 0

    async def _start_tls(self) -> None:
        """The handshake after ``OK Begin TLS negotiation``; the session then starts afresh but
        for its state (RFC 9051 6.2.1: the client asks CAPABILITY again)."""
        self._upgrade = False
        assert self.tls_context is not None
        if self._pipelined():  # arrived while the OK was being written
            raise Closed
        try:
            await starttls.upgrade(self.writer, self.tls_context)
        except (OSError, TimeoutError) as error:
            log.info("IMAP STARTTLS handshake failed: %s", error)
            raise Closed from None
        self.tls = True

    async def _login(self, command: c.Command) -> str:
        args = command.arguments
        assert isinstance(args, c.Login)
        await self._authenticated(args.userid, args.password)
        return "LOGIN completed"

    async def _authenticate(self, command: c.Command) -> str:
        args = command.arguments
        assert isinstance(args, c.Authenticate)
        if args.mechanism != "PLAIN":
            raise No(f"unsupported SASL mechanism {args.mechanism}", Code("CANNOT"))
        response = args.initial_response
        if response is None:
            self.send(self.encoder.continuation_data(b""))
            await self.flush()
            line = await self._line(self.timeout)
            if line.is_cancel:
                raise Bad("AUTHENTICATE cancelled")
            try:
                response = base64.b64decode(line.data, validate=True)
            except binascii.Error:
                raise Bad("AUTHENTICATE data is not base64") from None
        fields = response.split(b"\x00")
        if len(fields) != 3:
            raise Bad("PLAIN wants authzid NUL authcid NUL password")
        try:
            authzid, authcid, password = (part.decode("utf-8") for part in fields)
        except UnicodeDecodeError:
            raise Bad("PLAIN credentials are not UTF-8") from None
        if authzid and authzid.lower() != authcid.lower():
            raise No("cannot act as another user", Code("AUTHORIZATIONFAILED"))
        await self._authenticated(authcid, password)
        return "AUTHENTICATE completed"

    async def _authenticated(self, email: str, password: str) -> None:
        if not self._login_allowed:
            raise No("plaintext login needs TLS: STARTTLS first, or port 2993", Code("PRIVACYREQUIRED"))
        try:
            account = await self.backend.login(email, password)
        except BadCredentials:
            raise No("wrong user name or password", Code("AUTHENTICATIONFAILED")) from None
        if self.connections is not None:
            if not self.connections.acquire(account.user_id):
                raise No(f"too many connections for this user (at most {self.connections.limit}): "
                         "log out of another first", Code("LIMIT"))
            self._counted = account.user_id
        self.account = account
        self.mailbox = self.backend.mailbox(account)
        self.state = State.AUTHENTICATED
        self._ok_code = make_code("CAPABILITY", *self.capabilities)

    async def _line(self, timeout: float) -> Line:
        self.parser.expect_line()
        while True:
            event = self.parser.next()
            if isinstance(event, Line):
                return event
            if isinstance(event, LineTooLong):
                self.send(self.encoder.untagged("BYE", "line too long, closing the connection"))
                raise Closed
            if isinstance(event, ParseError):
                raise Bad(event.reason)
            if isinstance(event, NeedMore):
                await self._read(timeout)
                continue
            raise Bad("expected a line")

    # -- authenticated

    @property
    def _mail(self) -> UserMailbox:
        assert self.mailbox is not None
        return self.mailbox

    async def _enable(self, command: c.Command) -> str:
        args = command.arguments
        assert isinstance(args, c.Enable)
        enabled = []
        for name in args.capabilities:
            if name == "CONDSTORE":
                self.condstore = True
                enabled.append(name)
            elif name == "IMAP4REV2" and self.state == State.AUTHENTICATED:  # not while a mailbox is open
                self._enable_rev2()
                enabled.append("IMAP4rev2")
            elif name == "QRESYNC" and self.state == State.AUTHENTICATED:
                self.qresync = self.condstore = True    # QRESYNC implies CONDSTORE (RFC 7162)
                enabled.append(name)
        self.send(self.encoder.enabled(enabled))
        return "ENABLE completed"

    def _enable_rev2(self) -> None:
        """From here on mailbox names and strings are UTF-8 both ways (RFC 9051 5.1)."""
        self.rev2 = True
        self.encoder.utf8 = True
        self.parser.utf8 = True

    async def _namespace(self, command: c.Command) -> str:
        self.send(self.encoder.namespace([("", names.DELIMITER)]))
        return "NAMESPACE completed"

    async def _folders(self) -> list[names.Folder]:
        return await self._mail.folders()

    async def _folder(self, name: str) -> names.Folder:
        found = names.find(await self._folders(), name)
        if found is None:
            raise No(f"no mailbox {name}", Code("NONEXISTENT"))
        return found

    async def _list(self, command: c.Command) -> str:
        args = command.arguments
        assert isinstance(args, c.List)
        self._check_status_items(args.returns.status)
        if args.patterns == ("",) and command.name == "LIST":
            self.send(self.encoder.list(["\\Noselect"], names.DELIMITER, ""))
            return "LIST completed"
        folders = await self._folders()
        patterns = [names.pattern(args.reference, p) for p in args.patterns]
        present, implied = names.with_parents(f.name for f in folders)
        every = present | implied
        special_only = "SPECIAL-USE" in args.selection
        by_name = {f.name: f for f in folders}
        for name in sorted(every, key=lambda n: (n != "INBOX", n.casefold())):
            if not any(p.match(name) for p in patterns):
                continue
            folder = by_name.get(name)
            if folder is None and (command.name == "LSUB" or args.selection):
                continue
            if folder is not None and special_only and folder.special_use is None:
                continue
            extended = self.rev2 or args.returns != c.ListReturn() or bool(args.selection)
            attributes = _attributes(name, folder, every, extended=extended)
            if folder is not None and (args.returns.subscribed or "SUBSCRIBED" in args.selection) \
                    and command.name == "LIST":
                attributes.append("\\Subscribed")
            self.send(self.encoder.list(attributes, names.DELIMITER, name, command=command.name))
            if folder is not None and args.returns.status:
                await self._send_status(folder, args.returns.status)
        return f"{command.name} completed"

    async def _send_list(self, folder: names.Folder, asked: str) -> None:
        """The LIST response SELECT sends in IMAP4rev2 (RFC 9051 6.3.2): the mailbox's attributes,
        and OLDNAME when the name asked for is not the mailbox's own (another case, our alias)."""
        present, implied = names.with_parents(f.name for f in await self._folders())
        every = present | implied
        extended: list[Value] = []
        if asked != folder.name and not (folder.role == "inbox" and asked.upper() == "INBOX"):
            extended = ["OLDNAME", [asked]]
        self.send(self.encoder.list(_attributes(folder.name, folder, every, extended=True), names.DELIMITER,
                                    folder.name, extended=extended))

    async def _send_status(self, folder: names.Folder, items: tuple[str, ...]) -> None:
        selected = self.selected
        if selected is not None and selected.folder.id == folder.id:
            count, uidvalidity, uid_next, modseq = (selected.exists, selected.uidvalidity, selected.uid_next,
                                                    selected.modseq)
        else:
            view = await self._mail.view(folder.id)
            count, uidvalidity, uid_next, modseq = (len(view.entries), view.uidvalidity, view.uid_next,
                                                    view.highest_modseq)
        values: dict[str, int | None] = {
            "MESSAGES": count, "UIDNEXT": uid_next, "UIDVALIDITY": uidvalidity, "UNSEEN": folder.unread, "RECENT": 0,
            "HIGHESTMODSEQ": modseq}
        if {"SIZE", "DELETED"} & set(items):   # RFC 9051 / RFC 8438: from the folder's listing
            listed = (await self._mail.summaries(folder.id)).values()
            values["SIZE"] = sum(s.size for s in listed)
            values["DELETED"] = sum(1 for s in listed if s.deleted)
        out = {item: value for item in items if (value := values.get(item)) is not None}
        self.send(self.encoder.status(folder.name, out))

    async def _status(self, command: c.Command) -> str:
        args = command.arguments
        assert isinstance(args, c.Status)
        self._check_status_items(args.items)
        folder = await self._folder(args.mailbox)
        await self._send_status(folder, args.items)
        return "STATUS completed"

    def _check_status_items(self, items: tuple[str, ...] | None) -> None:
        if self.rev2 and items and "RECENT" in items:
            raise Bad("STATUS RECENT is not in IMAP4rev2: nothing is \\Recent")

    async def _select(self, command: c.Command) -> str:
        args = command.arguments
        assert isinstance(args, c.Select)
        if self.selected is not None and (self.rev2 or self.qresync):   # RFC 9051 6.3.2 and QRESYNC: OK [CLOSED]
            self.send(self.encoder.untagged("OK", "previous mailbox closed", Code("CLOSED")))
        self.selected = None
        self.state = State.AUTHENTICATED
        if args.qresync is not None and not self.qresync:
            raise Bad("SELECT (QRESYNC ...) needs ENABLE QRESYNC first")
        if args.condstore:
            self.condstore = True
        folder = await self._folder(args.mailbox)
        view = await self._mail.view(folder.id)
        read_only = command.name == "EXAMINE"
        selected = Selected(folder, view, read_only=read_only)
        enc = self.encoder
        self.send(enc.flags(FLAGS))
        self.send(enc.exists(selected.exists))
        if not self.rev2:
            self.send(enc.recent(0))
        else:
            await self._send_list(folder, args.mailbox)
        self.send(enc.untagged("OK", "UIDs valid", make_code("UIDVALIDITY", selected.uidvalidity)))
        self.send(enc.untagged("OK", "predicted next UID", make_code("UIDNEXT", selected.uid_next)))
        self.send(enc.untagged("OK", "highest", make_code("HIGHESTMODSEQ", selected.modseq)))
        permanent = () if read_only else PERMANENT_FLAGS
        self.send(enc.untagged("OK", "flags and keywords are kept" if permanent else "read-only",
                               Code("PERMANENTFLAGS", b"(" + " ".join(permanent).encode("ascii") + b")")))
        self.selected = selected
        self.state = State.SELECTED
        if args.qresync is not None:
            await self._resync(selected, args.qresync)
        self._ok_code = Code("READ-ONLY" if read_only else "READ-WRITE")
        return f"{command.name} completed"

    async def _resync(self, selected: Selected, asked: c.QResync) -> None:
        """SELECT (QRESYNC (uidvalidity modseq [known-uids])) (RFC 7162): the UIDs expunged
        since the client's MODSEQ as VANISHED (EARLIER), then FETCH (UID FLAGS MODSEQ) of each
        message changed since, both only among the known UIDs when given; nothing if the
        UIDVALIDITY is not the mailbox's. The (known-seqs known-uids) pair is not needed: the feed
        or the known UIDs say what is gone."""
        if asked.uidvalidity != selected.uidvalidity:
            return
        known = asked.known_uids
        spans = known.ranges(selected.largest_uid) if known is not None else [(1, selected.largest_uid)]
        await self._vanished_earlier(selected, spans, asked.modseq)
        candidates = selected.by_uid(known) if known is not None else [selected.messages[u] for u in selected.uids]
        changed = [m for m in candidates if m.modseq > asked.modseq]
        await self._load(selected, changed)
        for message in changed:
            self.send(self.encoder.fetch(selected.number(message.uid), [
                ("UID", message.uid), ("FLAGS", self.encoder.flags_value(message.flags)), ("MODSEQ", [message.modseq])]))

    async def _vanished_earlier(self, selected: Selected, spans: list[tuple[int, int]], since: int) -> None:
        """``* VANISHED (EARLIER)`` with the UIDs in ``spans`` expunged or moved out after ``since``
        and not in the session's view. Our MODSEQ is the user's, so the feed from ``since`` holds
        every folder's changes and only this folder's count. When the feed was compacted past
        ``since`` (TooOld) it cannot say which left: every UID of ``spans`` not here is sent,
        as RFC 7162 allows (a client ignores UIDs it never had)."""
        spans = [(low, high) for low, high in spans if low <= high]
        if not spans or since >= selected.modseq:
            return
        try:
            changes, _ = await self._mail.changes(since)
        except TooOld:
            text = str(SequenceSet(tuple(gaps(spans, selected.uids))))
        else:
            gone = left(changes, selected.folder.id) - set(selected.messages)
            text = compact(uid for uid in gone if any(low <= uid <= high for low, high in spans))
        if text:
            self.send(self.encoder.vanished(text, earlier=True))

    async def _fetch_vanished(self, command: c.Command, args: c.Fetch) -> None:
        """UID FETCH ... (CHANGEDSINCE m VANISHED) (RFC 7162): first the UIDs of the set
        expunged since m, as VANISHED (EARLIER)."""
        if not command.uid or not self.qresync:
            raise Bad("VANISHED needs UID FETCH and ENABLE QRESYNC first")
        assert args.changedsince is not None
        selected = self._box
        spans = args.sequence.ranges(selected.largest_uid) if not args.sequence.saved else \
            [(uid, uid) for uid in sorted(selected.saved)]
        await self._vanished_earlier(selected, spans, args.changedsince)

    async def _create(self, command: c.Command) -> str:
        args = command.arguments
        assert isinstance(args, c.Create)
        name = args.mailbox.rstrip(names.DELIMITER)
        if args.special_use:
            raise No("special-use folders are ours: Sent, Drafts, Junk, Trash, Archive", Code("USEATTR"))
        why = names.valid_new_name(name)
        if why is not None:
            raise No(why, Code("CANNOT") if name.upper() != "INBOX" else Code("ALREADYEXISTS"))
        if names.find(await self._folders(), name) is not None:
            raise No(f"mailbox {name} exists", Code("ALREADYEXISTS"))
        await self._mail.create_folder(name)
        return "CREATE completed"

    async def _custom(self, name: str, action: str) -> names.Folder:
        folder = await self._folder(name)
        if folder.role:
            raise No(f"{folder.name} is a system folder and cannot be {action}", Code("CANNOT"))
        return folder

    async def _delete(self, command: c.Command) -> str:
        args = command.arguments
        assert isinstance(args, c.MailboxArgument)
        folder = await self._custom(args.mailbox, "deleted")
        if self.selected is not None and self.selected.folder.id == folder.id:
            raise No("cannot delete the selected mailbox", Code("INUSE"))
        try:
            await self._mail.delete_folder(folder.id)
        except BackendError as error:
            if "folder_not_empty" in error.text:
                raise No(f"{folder.name} is not empty: expunge its messages first", Code("CANNOT")) from None
            raise
        return "DELETE completed"

    async def _rename(self, command: c.Command) -> str:
        args = command.arguments
        assert isinstance(args, c.Rename)
        folder = await self._custom(args.old, "renamed")
        new = args.new.rstrip(names.DELIMITER)
        why = names.valid_new_name(new)
        if why is not None:
            raise No(why, Code("CANNOT"))
        folders = await self._folders()
        if names.find(folders, new) is not None and new.casefold() != folder.name.casefold():
            raise No(f"mailbox {new} exists", Code("ALREADYEXISTS"))
        await self._mail.rename_folder(folder.id, new)
        prefix = folder.name + names.DELIMITER
        for child in folders:
            if child.name.startswith(prefix) and not child.role:
                await self._mail.rename_folder(child.id, new + names.DELIMITER + child.name[len(prefix):])
        return "RENAME completed"

    async def _subscribe(self, command: c.Command) -> str:
        args = command.arguments
        assert isinstance(args, c.MailboxArgument)
        await self._folder(args.mailbox)
        return f"{command.name} completed (every folder is subscribed)"

    async def _append(self, command: c.Command) -> str:
        args = command.arguments
        assert isinstance(args, c.Append)
        try:
            folder = await self._folder(args.mailbox)
        except No:
            raise No(f"no mailbox {args.mailbox}", Code("TRYCREATE")) from None
        before = await self._mail.state()
        ids = []
        for item in args.messages:
            if not item.data:
                raise No("empty message")
            ids.append(await self._mail.append(folder.id, item.data, when=item.internal_date, flags=item.flags))
        uidvalidity, uids = await self._new_uids(folder.id, ids, before)
        if uids is not None:
            self._ok_code = Code("APPENDUID", f"{uidvalidity} {compact(uids)}".encode("ascii"))
        return "APPEND completed"

    async def _new_uids(self, folder_id: str, ids: list[str], since: int) -> tuple[int, list[int] | None]:
        """The UIDs ``ids`` got in ``folder_id`` (in the order of ``ids``), from the change feed after ``since``."""
        changes, _ = await self._mail.changes(since)
        got: dict[str, tuple[int, int]] = {}
        for change in changes:
            if change.folder_id == folder_id and change.id in ids and change.uid:
                if change.kind == "new" or (change.kind == "updated" and change.from_folder_id
                                            and change.from_folder_id != folder_id):
                    got[change.id] = (change.uid, change.modseq)
        if len(got) < len(set(ids)):
            return 0, None
        view = await self._mail.view(folder_id, limit=1)
        return view.uidvalidity, [got[i][0] for i in ids]

    # -- IDLE

    async def _idle(self, command: c.Command) -> str:
        self.send(self.encoder.continuation("idling"))
        if self.selected is not None:
            await self._updates(expunges=True)
        await self.flush()
        watcher: asyncio.Task[None] | None = None
        if self.selected is not None:
            watcher = asyncio.create_task(self._watch(self.selected))
        try:
            line = await self._line(self.idle_timeout)
        finally:
            if watcher is not None:
                watcher.cancel()
                try:
                    await watcher
                except (asyncio.CancelledError, Exception):
                    pass
        if not line.is_done:
            raise Bad("expected DONE")
        return "IDLE terminated"

    async def _watch(self, selected: Selected) -> None:
        try:
            async for change in self._mail.watch(selected.modseq):
                if self.selected is not selected:
                    return
                selected.note(change)
                await self._announce(selected, expunges=True)
                await self.flush()
        except BackendError as error:
            log.info("IDLE watch ended: %s", error.text)

    # -- selected: updates from the feed

    async def _updates(self, *, expunges: bool) -> set[int]:
        """Fold in what the feed says changed and announce it; the UIDs announced with FETCH."""
        selected = self.selected
        if selected is None:
            return set()
        try:
            changes, state = await self._mail.changes(selected.modseq)
        except TooOld:
            selected.resync(await self._mail.view(selected.folder.id))
        else:
            for change in changes:
                selected.note(change)
            selected.modseq = max(selected.modseq, state)
        return await self._announce(selected, expunges=expunges)

    async def _announce(self, selected: Selected, *, expunges: bool) -> set[int]:
        """Expunges and EXISTS, then a FETCH (UID FLAGS [MODSEQ]) of each message whose flags
        moved; the UIDs so announced."""
        self._events(selected.flush(expunges=expunges))
        touched = [selected.messages[uid] for uid in sorted(selected.touched) if uid in selected.messages]
        selected.touched.clear()
        known = [m for m in touched if m.summary is not None]
        if not known:
            return set()
        before = {m.uid: m.flags for m in known}
        await self._load(selected, known, refresh=True)
        announced: set[int] = set()
        for message in known:
            if message.uid in selected.messages and (message.flags != before[message.uid] or self.condstore):
                items: list[tuple[str, Value]] = [("UID", message.uid),
                                                  ("FLAGS", self.encoder.flags_value(message.flags))]
                if self.condstore:
                    items.append(("MODSEQ", [message.modseq]))
                self.send(self.encoder.fetch(selected.number(message.uid), items))
                announced.add(message.uid)
        return announced

    def _held_back(self) -> None:
        """With QRESYNC, expunges held back (FETCH, STORE, SEARCH) while FETCHes carry later
        MODSEQs: ``* OK [HIGHESTMODSEQ n]`` below them, so a client that resynchronizes from what
        it was told cannot skip them (RFC 7162)."""
        held = self.selected.held_below if self.selected is not None else None
        if self.qresync and held is not None:
            self.send(self.encoder.untagged("OK", "expunges held back: resynchronize from here",
                                            make_code("HIGHESTMODSEQ", held)))

    def _event(self, event: Event) -> None:
        self._events([event])

    def _events(self, events: Iterable[Event]) -> None:
        """EXISTS, and the expunges: EXPUNGE each, or once QRESYNC is on one VANISHED of the UIDs
        of each run of them (RFC 7162)."""
        vanished: list[int] = []
        for event in events:
            if isinstance(event, Expunged) and self.qresync:
                vanished.append(event.uid)
                continue
            if vanished:
                self.send(self.encoder.vanished(compact(vanished)))
                vanished = []
            if isinstance(event, Exists):
                self.send(self.encoder.exists(event.count))
            elif isinstance(event, Expunged):
                self.send(self.encoder.expunge(event.number))
        if vanished:
            self.send(self.encoder.vanished(compact(vanished)))

    async def _load(self, selected: Selected, messages: list[Message], *, refresh: bool = False,
                    headers: bool = False) -> None:
        """Fill in the summaries (flags, size, date) of ``messages``; ``headers``: with the kept
        header fields (ENVELOPE without the body)."""
        wanted = [m for m in messages if refresh or m.summary is None or (headers and not m.summary.with_headers)]
        if not wanted:
            return
        found = await self._mail.some_summaries(selected.folder.id, [m.id for m in wanted], headers=headers)
        for message in wanted:
            summary = found.get(message.id)
            if summary is not None:
                message.summary = summary
            elif message.summary is None:
                message.summary = Summary(message.id, selected.folder.id, True, False, 0, 0)   # no flags
                message.gone = True

    # -- selected: commands

    @property
    def _box(self) -> Selected:
        assert self.selected is not None
        return self.selected

    def _resolve(self, sequence: Any, uid: bool) -> list[Message]:
        try:
            return self._box.resolve(sequence, uid)
        except BadSequence as error:
            raise Bad(str(error)) from None

    async def _close(self, command: c.Command) -> str:
        selected = self._box
        if command.name == "CLOSE" and not selected.read_only:
            await self._remove(selected, await self._marked_deleted(selected), announce=False)
        self.selected = None
        self.state = State.AUTHENTICATED
        return f"{command.name} completed"

    async def _remove(self, selected: Selected, messages: list[Message], *, announce: bool) -> None:
        """Expunge: our delete (to Trash; from Trash for good)."""
        semaphore = asyncio.Semaphore(8)

        async def one(message: Message) -> None:
            async with semaphore:
                await self._mail.delete(message.id, selected.folder.id)

        await asyncio.gather(*(one(m) for m in messages))
        events = [selected.expunge(m.uid) for m in sorted(messages, key=lambda m: m.uid, reverse=True)]
        if announce:
            self._events(e for e in events if e is not None)

    async def _marked_deleted(self, selected: Selected) -> list[Message]:
        """The messages with \\Deleted as the store holds it now (another session may have set
        it): the feed folded in (flag changes re-read), then the summaries not read yet."""
        await self._updates(expunges=False)
        await self._load(selected, [selected.messages[uid] for uid in selected.uids])
        return selected.deleted

    async def _expunge(self, command: c.Command) -> str:
        selected = self._box
        if selected.read_only:
            raise No("the mailbox is read-only (EXAMINE)", Code("READ-ONLY"))
        doomed = await self._marked_deleted(selected)
        if isinstance(command.arguments, c.UidExpunge):
            chosen = {m.uid for m in selected.by_uid(command.arguments.sequence)}
            doomed = [m for m in doomed if m.uid in chosen]
        await self._remove(selected, doomed, announce=True)
        if self.qresync:     # RFC 7162: the MODSEQ the expunges reached, in the tagged OK
            await self._updates(expunges=True)
            self._ok_code = make_code("HIGHESTMODSEQ", selected.modseq)
        return f"{'UID ' if command.uid else ''}EXPUNGE completed"

    async def _raw(self, message: Message) -> bytes:
        cached = self._raws.get(message.id)
        if cached is not None:
            self._raws.move_to_end(message.id)
            return cached
        raw = await self._mail.raw(message.id)
        self._remember(message.id, raw)
        return raw

    async def _fetch(self, command: c.Command) -> str:
        args = command.arguments
        assert isinstance(args, c.Fetch)
        selected = self._box
        attributes = list(args.attributes)
        names_asked = {a.name for a in attributes}
        if "MODSEQ" in names_asked or args.changedsince is not None:
            self.condstore = True
        if command.uid and "UID" not in names_asked:
            attributes.insert(0, FetchAttribute("UID"))
        if self.condstore and "MODSEQ" not in names_asked:
            attributes.append(FetchAttribute("MODSEQ"))
        messages = self._resolve(args.sequence, command.uid)
        if args.changedsince is not None:
            messages = [m for m in messages if m.modseq > args.changedsince]
        if args.vanished:
            await self._fetch_vanished(command, args)
        needs_raw = bool(names_asked & {"ENVELOPE", "BODYSTRUCTURE", "BODY", "RFC822", "RFC822.HEADER",
                                        "RFC822.TEXT", "BINARY", "BINARY.SIZE"})
        # ENVELOPE and HEADER.FIELDS of kept names: from the kept header fields beside the summary
        # (a listing, no body read); a message without them (stored before they were kept) is read
        header_only = needs_raw and all(_from_headers(a) for a in attributes if a.name not in _FROM_SUMMARY)
        needs_summary = names_asked & {"FLAGS", "RFC822.SIZE", "INTERNALDATE"} or any(a.sets_seen for a in attributes)
        if needs_summary or header_only:
            await self._load(selected, messages, headers=header_only)
        sets_seen = not selected.read_only and any(a.sets_seen for a in attributes)
        gone = False
        pending = messages
        while pending:
            # with bodies: one batched read of the next READ_AHEAD, answered as far as it reached
            chunk = pending[:READ_AHEAD] if needs_raw else pending
            kept = {m.id: _header_block(m) for m in chunk} if header_only else {}
            unread = [m for m in chunk if needs_raw and kept.get(m.id) is None]
            bodies, missing = await self._bodies(unread) if unread else ({}, set())
            done = 0
            for message in chunk:
                raw = kept.get(message.id) or (bodies.get(message.id) if needs_raw else b"")
                if raw is None and message.id not in missing:
                    break      # past what this answer held: the next read starts here
                done += 1
                try:
                    items = await self._fetch_one(message, attributes, raw, sets_seen)
                except Gone:
                    gone = True
                    continue
                self.send(self.encoder.fetch(selected.number(message.uid), items))
                if sum(len(b) for b in self._out) > 1 << 20:
                    await self.flush()
            if not done:
                raise No("the mail store answered none of the messages, try again", Code("UNAVAILABLE"))
            pending = pending[done:]
        if gone:
            raise No("some messages were expunged meanwhile", Code("EXPUNGEISSUED"))
        return f"{'UID ' if command.uid else ''}FETCH completed"

    async def _bodies(self, messages: list[Message]) -> tuple[dict[str, bytes], set[str]]:
        """The raw bytes of ``messages`` the session holds, and of the others as far as one
        batched read reaches (it may stop short: the rest are in neither), and the ids expunged.
        A summary not read yet is taken from the read."""
        bodies = {m.id: self._raws[m.id] for m in messages if m.id in self._raws}
        wanted = [m for m in messages if m.id not in bodies]
        if not wanted:
            return bodies, set()
        found, missing = await self._mail.fetched([m.id for m in wanted], raw=True)
        for message in wanted:
            held = found.get(message.id)
            if held is not None:
                summary, bodies[message.id] = held
                self._remember(message.id, bodies[message.id])
                if message.summary is None:
                    message.summary = summary
        return bodies, set(missing)

    async def _header_sections(self, selected: Selected, messages: list[Message],
                               names: set[str]) -> dict[int, bytes | None]:
        """Each message's header section (by UID) holding at least the fields ``names``: the
        kept fields from the listing when they cover the names, else (or for a message stored
        before they were kept) the raw, READ_AHEAD to a batched read; None: expunged."""
        blocks: dict[int, bytes | None] = {}
        if kept_headers.covers(sorted(names)):
            await self._load(selected, messages, headers=True)
            blocks = {m.uid: block for m in messages if (block := _header_block(m)) is not None}
        pending = [m for m in messages if m.uid not in blocks]
        while pending:
            bodies, missing = await self._bodies(pending[:READ_AHEAD])
            done = [m for m in pending[:READ_AHEAD] if m.id in bodies or m.id in missing]
            if not done:
                raise No("the mail store answered none of the messages, try again", Code("UNAVAILABLE"))
            for message in done:
                blocks[message.uid] = bodies.get(message.id)
            pending = [m for m in pending if m.uid not in blocks]
        return blocks

    def _remember(self, message_id: str, raw: bytes) -> None:
        self._raws[message_id] = raw
        self._raws.move_to_end(message_id)
        while len(self._raws) > RAW_CACHE:
            self._raws.popitem(last=False)

    async def _fetch_one(self, message: Message, attributes: list[FetchAttribute], raw: bytes | None,
                         sets_seen: bool) -> list[tuple[str, Value]]:
        """One message's answer; ``raw`` its bytes (b"": none needed; None: it was expunged)."""
        if raw is None:
            raise Gone(f"message {message.id} was expunged")
        root = mime.parse(raw) if raw else None
        if sets_seen and message.summary is not None and message.summary.unread:
            message.summary = await self._mail.set_flags(message.id, unread=False)
            if not any(a.name == "FLAGS" for a in attributes):
                attributes = [*attributes, FetchAttribute("FLAGS")]
        items: list[tuple[str, Value]] = []
        for attribute in attributes:
            items.append((attribute.response_name(), self._item(message, attribute, raw, root)))
        return items

    def _item(self, message: Message, attribute: FetchAttribute, raw: bytes, root: mime.Part | None) -> Value:
        name = attribute.name
        summary = message.summary
        if name == "UID":
            return message.uid
        if name == "FLAGS":
            return self.encoder.flags_value(message.flags)
        if name == "MODSEQ":
            return [message.modseq]
        if name == "RFC822.SIZE":
            return summary.size if summary is not None and summary.size else len(raw)
        if name == "INTERNALDATE":
            assert summary is not None
            return summary.internal_date
        if name in ("EMAILID", "THREADID", "SAVEDATE"):
            return None if name == "SAVEDATE" else [message.id]
        assert root is not None
        if name == "ENVELOPE":
            return mime.envelope(root.headers)
        if name == "BODYSTRUCTURE":
            return mime.body_structure(root)
        if name == "BODY" and attribute.section is None:
            return Raw(self.encoder.body_structure(mime.body_structure(root), extended=False))
        if name == "RFC822":
            return Literal(raw)
        if name == "RFC822.HEADER":
            return Literal(root.header)
        if name == "RFC822.TEXT":
            return Literal(root.body)
        if name == "BODY" and attribute.section is not None:
            try:
                data = mime.section(root, raw, attribute.section)
            except mime.SectionError:
                return None
            return Literal(mime.partial(data, attribute.partial))
        if name in ("BINARY", "BINARY.SIZE") and attribute.section is not None:
            try:
                data = mime.binary(root, raw, attribute.section)
            except mime.SectionError:
                data = b""
            except mime.UnknownEncoding as error:
                raise No(str(error), Code("UNKNOWN-CTE")) from None
            return len(data) if name == "BINARY.SIZE" else Literal(mime.partial(data, attribute.partial), binary=True)
        raise Bad(f"FETCH {name} is not supported")

    async def _store(self, command: c.Command) -> str:
        args = command.arguments
        assert isinstance(args, c.Store)
        selected = self._box
        if selected.read_only:
            raise No("the mailbox is read-only (EXAMINE)", Code("READ-ONLY"))
        if args.unchangedsince is not None:
            self.condstore = True
        messages = self._resolve(args.sequence, command.uid)
        await self._load(selected, messages)
        modified: list[int] = []
        changed: list[Message] = []
        for message in messages:
            if args.unchangedsince is not None and message.modseq > args.unchangedsince:
                modified.append(message.uid if command.uid else selected.number(message.uid))
                continue
            await self._store_one(message, args.mode, set(args.flags))
            changed.append(message)
        announced: set[int] = set()
        if self.condstore and changed:
            # learn the MODSEQs our changes got: the feed's FETCH (UID FLAGS MODSEQ) of each is
            # its answer here too, so it is not sent twice
            announced = await self._updates(expunges=False)
        if not args.silent or self.condstore:
            for message in changed:
                if message.uid not in selected.messages or message.uid in announced:
                    continue
                items: list[tuple[str, Value]] = []
                if command.uid:
                    items.append(("UID", message.uid))
                if not args.silent:
                    items.append(("FLAGS", self.encoder.flags_value(message.flags)))
                if self.condstore:
                    items.append(("MODSEQ", [message.modseq]))
                self.send(self.encoder.fetch(selected.number(message.uid), items))
        if modified:
            self._ok_code = Code("MODIFIED", compact(modified).encode("ascii"))
            return "conditional STORE failed for some messages"
        return f"{'UID ' if command.uid else ''}STORE completed"

    async def _store_one(self, message: Message, mode: str, flags: set[str]) -> None:
        """Flags and keywords are cells of the message in the store: only the ones that change
        are sent (another session's change to the others stands)."""
        current = {f.lower(): f for f in message.flags}
        asked = {f.lower(): f for f in flags}
        if mode == "+":
            target = {**current, **{k: v for k, v in asked.items() if k not in current}}
        elif mode == "-":
            target = {k: v for k, v in current.items() if k not in asked}
        else:
            target = asked
        changes = flag_changes(message.summary, target.values())
        if changes and message.summary is not None:
            message.summary = await self._mail.set_flags(message.id, **changes)

    async def _copy(self, command: c.Command) -> str:
        args = command.arguments
        assert isinstance(args, c.Copy)
        selected = self._box
        moving = command.name == "MOVE"
        if moving and selected.read_only:
            raise No("the mailbox is read-only (EXAMINE)", Code("READ-ONLY"))
        try:
            target = await self._folder(args.mailbox)
        except No:
            raise No(f"no mailbox {args.mailbox}", Code("TRYCREATE")) from None
        messages = self._resolve(args.sequence, command.uid)
        if not messages:
            return f"{command.name} completed (nothing to {command.name.lower()})"
        if moving and target.id == selected.folder.id:
            raise No("the message is in that mailbox already", Code("CANNOT"))
        before = await self._mail.state()
        await self._load(selected, messages)
        ids: list[str] = []
        for message in messages:
            if moving:
                await self._mail.move(message.id, target.id)
                ids.append(message.id)
            else:
                raw = await self._raw(message)
                summary = message.summary
                ids.append(await self._mail.append(
                    target.id, raw, when=summary.internal_date if summary and summary.received_ms else None,
                    flags=message.flags))
        uidvalidity, uids = await self._new_uids(target.id, ids, before)
        copyuid = None
        if uids is not None:
            source = ",".join(str(m.uid) for m in messages)
            copyuid = Code("COPYUID", f"{uidvalidity} {source} {','.join(map(str, uids))}".encode("ascii"))
        if moving:
            if copyuid is not None:
                self.send(self.encoder.untagged("OK", "moved", copyuid))
            await self._remove_moved(selected, messages)
        else:
            self._ok_code = copyuid
        return f"{'UID ' if command.uid else ''}{command.name} completed"

    async def _remove_moved(self, selected: Selected, messages: list[Message]) -> None:
        events = [selected.expunge(m.uid) for m in sorted(messages, key=lambda m: m.uid, reverse=True)]
        self._events(e for e in events if e is not None)

    async def _search(self, command: c.Command) -> str:
        args = command.arguments
        assert isinstance(args, c.Search)
        selected = self._box
        saving = args.returns is not None and "SAVE" in args.returns
        try:
            found = await self._matching(args.key)
        except (Bad, No):
            if saving:    # RFC 5182: a failed SEARCH (SAVE) leaves the saved result empty
                selected.saved = frozenset()
            raise
        numbers = [m.uid if command.uid else selected.number(m.uid) for m in found]
        modseq = max((m.modseq for m in found), default=None) if _uses_modseq(args.key) else None
        wanted = set(args.returns or ()) - {"SAVE"} or {"ALL"}
        if saving:
            selected.saved = frozenset(m.uid for m in _saved_part(found, wanted))
            if args.returns == ("SAVE",):   # SAVE alone: no ESEARCH response (RFC 5182)
                return f"{'UID ' if command.uid else ''}SEARCH completed"
        if args.returns is None and not self.rev2:
            self.send(self.encoder.search(numbers, modseq=modseq))
        else:     # IMAP4rev2 answers every SEARCH with ESEARCH (RFC 9051 6.4.4)
            self.send(self.encoder.esearch(
                command.tag, uid=command.uid, min=min(numbers) if numbers and "MIN" in wanted else None,
                max=max(numbers) if numbers and "MAX" in wanted else None,
                count=len(numbers) if "COUNT" in wanted else None,
                all=numbers if "ALL" in wanted and numbers else None, modseq=modseq))
        return f"{'UID ' if command.uid else ''}SEARCH completed"

    async def _thread(self, command: c.Command) -> str:
        args = command.arguments
        assert isinstance(args, c.Thread)
        if args.algorithm not in threads.ALGORITHMS:
            raise Bad(f"THREAD {args.algorithm} is not supported: {' or '.join(threads.ALGORITHMS)}")
        found = await self._matching(args.key)
        selected = self._box
        await self._load(selected, found)
        items = [threads.Item(m.uid if command.uid else selected.number(m.uid), m.summary.thread_id,
                              m.summary.subject, m.summary.received_ms)
                 for m in found if m.summary is not None and not m.gone]
        self.send(self.encoder.thread(threads.thread(args.algorithm, items)))
        return f"{'UID ' if command.uid else ''}THREAD completed"

    async def _matching(self, key: SearchKey) -> list[Message]:
        """The selected messages that match a SEARCH key."""
        selected = self._box
        if self.rev2 and _mentions_recent(key):
            raise Bad("NEW, OLD and RECENT are not in IMAP4rev2: nothing is \\Recent")
        if _uses_modseq(key):
            self.condstore = True

        async def load(messages: list[Message]) -> None:
            await self._load(selected, messages)

        async def headers(messages: list[Message], names: set[str]) -> dict[int, bytes | None]:
            return await self._header_sections(selected, messages, names)

        try:
            return await Searcher(self._mail, selected, summaries=load, headers=headers).run(key)
        except BadSequence as error:
            raise Bad(str(error)) from None
        except Unsupported as error:
            raise No(str(error), Code("CANNOT")) from None


def _attributes(name: str, folder: names.Folder | None, every: set[str], *, extended: bool) -> list[str]:
    """A LIST response's attributes: a level above folders that is no folder is ``\\NonExistent``
    in extended LIST and IMAP4rev2 (``\\Noselect`` in RFC 3501's LIST), then the children, then
    the special use."""
    attributes: list[str] = []
    if folder is None:
        attributes.append("\\NonExistent" if extended else "\\Noselect")
    attributes.append("\\HasChildren" if names.has_children(name, every) else "\\HasNoChildren")
    if folder is not None and folder.special_use is not None:
        attributes.append(folder.special_use)
    return attributes


def _saved_part(found: list[Message], wanted: set[str]) -> list[Message]:
    """What SEARCH RETURN (SAVE ...) keeps: with MIN and/or MAX but neither ALL nor COUNT only
    those messages, else every match (RFC 5182)."""
    if not found or wanted & {"ALL", "COUNT"} or not wanted & {"MIN", "MAX"}:
        return found
    return [m for m in (found[0] if "MIN" in wanted else None, found[-1] if "MAX" in wanted else None)
            if m is not None]


def _mentions_recent(key: SearchKey) -> bool:
    return any((isinstance(k, search.Simple) and k.name == "NEW") or (isinstance(k, search.FlagKey)
                                                                      and k.flag == "\\Recent")
               for k in search.leaves(key))


_FROM_SUMMARY = frozenset({"UID", "FLAGS", "MODSEQ", "RFC822.SIZE", "INTERNALDATE", "EMAILID", "THREADID", "SAVEDATE"})


def _from_headers(attribute: FetchAttribute) -> bool:
    """Whether the kept header fields answer ``attribute`` as the whole message would."""
    if attribute.name == "ENVELOPE":
        return True
    return attribute.name == "BODY" and attribute.section is not None and mime.from_kept(attribute.section)


def _header_block(message: Message) -> bytes | None:
    """The message as far as the kept header fields go: those fields and the blank line."""
    summary = message.summary
    if summary is None or summary.headers is None:
        return None
    return summary.headers + b"\r\n"


def _uses_modseq(key: SearchKey) -> bool:
    return "MODSEQ" in str(key)
