"""One POP3 session on asyncio streams (RFC 1939 states AUTHORIZATION, TRANSACTION, UPDATE).

Commands: CAPA, STLS (RFC 2595), USER/PASS, AUTH PLAIN (RFC 5034, with or without an initial
response), QUIT; then STAT, LIST, RETR, DELE, NOOP, RSET, TOP, UIDL, QUIT. Every bad or refused
command gets `-ERR` with the reason and changes nothing; an unknown user and a wrong password get
the same answer. Login without TLS is for loopback peers only; after STLS it works from anywhere.
Bytes pipelined after STLS are refused (the connection is closed without TLS).
A command line is at most 255 octets (RFC 2449); a silent client is dropped after the
timeout (RFC 1939: at least 10 minutes).
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import ssl
from collections.abc import Awaitable, Callable
from typing import Protocol

from prometheus_client import Counter

from imap_edge import starttls
from imap_edge.pop3.maildrop import Drop, Maildrop, Router

log = logging.getLogger(__name__)

MAX_LINE = 255
CAPABILITIES = ("USER", "UIDL", "TOP", "SASL PLAIN", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING",
                "IMPLEMENTATION Tidings")
COMMANDS = Counter("tidings_pop3_commands_total", "POP3 commands by name and outcome", ["command", "outcome"])


class Accounts(Protocol):
    """Signing in: (user id, email) for a right password, else None."""

    async def login(self, email: str, password: str) -> str | None: ...


class _Refused(Exception):
    """A command refused: its -ERR text."""


class Session:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, accounts: Accounts,
                 router: Router, *, plaintext_ok: bool, timeout: float = 600.0,
                 tls_context: ssl.SSLContext | None = None) -> None:
        self.reader, self.writer = reader, writer
        self.accounts, self.router = accounts, router
        self.plaintext_ok = plaintext_ok
        self.tls_context = tls_context
        self.tls = False
        self.timeout = timeout
        self.user = ""                      # USER given, PASS awaited
        self.drop: Maildrop | None = None   # TRANSACTION once set
        self.done = False

    # -- the loop -----------------------------------------------------------------------
    async def run(self) -> None:
        await self.send("+OK Tidings POP3 ready")
        try:
            while not self.done:
                line = await self._line()
                if line is None:
                    return
                await self.handle(line)
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            self.writer.close()

    async def _line(self) -> bytes | None:
        try:
            line = await asyncio.wait_for(self.reader.readuntil(b"\n"), self.timeout)
        except TimeoutError:
            await self.send("-ERR idle for too long, closing")
            return None
        except asyncio.LimitOverrunError:
            await self.send("-ERR line too long, closing")
            return None
        except asyncio.IncompleteReadError:
            return None
        if len(line) > MAX_LINE:
            return b"\x00too long"
        return line.rstrip(b"\r\n")

    async def handle(self, line: bytes) -> None:
        if line == b"\x00too long":
            await self.send(f"-ERR command line longer than {MAX_LINE} octets")
            return
        try:
            text = line.decode("ascii")
        except UnicodeDecodeError:
            await self.send("-ERR commands are ASCII")
            return
        name, _, rest = text.partition(" ")
        name = name.upper()
        handler = self._handler(name)
        if handler is None:
            COMMANDS.labels("unknown", "err").inc()
            await self.send(f"-ERR unknown command {name[:20]!r}" if name else "-ERR empty command")
            return
        try:
            await handler(rest)
        except _Refused as refused:
            COMMANDS.labels(name, "err").inc()
            await self.send(f"-ERR {refused}")
        except Exception:
            log.exception("POP3 %s failed", name)
            COMMANDS.labels(name, "error").inc()
            await self.send("-ERR [SYS/TEMP] the mail store did not answer; try again")
        else:
            COMMANDS.labels(name, "ok").inc()

    def _handler(self, name: str) -> Callable[[str], Awaitable[None]] | None:
        always = {"CAPA": self.capa, "QUIT": self.quit, "NOOP": self.noop}
        if self.drop is None:
            table = {"USER": self.user_command, "PASS": self.pass_command, "AUTH": self.auth, "STLS": self.stls}
        else:
            table = {"STAT": self.stat, "LIST": self.list, "RETR": self.retr, "DELE": self.dele, "RSET": self.rset,
                     "TOP": self.top, "UIDL": self.uidl}
        return always.get(name) or table.get(name)

    async def send(self, line: str) -> None:
        self.writer.write(line.encode() + b"\r\n")
        await self.writer.drain()

    async def send_lines(self, first: str, body: list[bytes]) -> None:
        """A multi-line answer: each line dot-stuffed, then the lone dot."""
        out = [first.encode() + b"\r\n"]
        out.extend((b"." + line if line.startswith(b".") else line) + b"\r\n" for line in body)
        out.append(b".\r\n")
        self.writer.write(b"".join(out))
        await self.writer.drain()

    # -- AUTHORIZATION ------------------------------------------------------------------
    async def capa(self, rest: str) -> None:
        offered = list(CAPABILITIES)
        if self.drop is None and self.tls_context is not None and not self.tls:
            offered.insert(0, "STLS")
        await self.send_lines("+OK capabilities follow", [c.encode() for c in offered])

    async def stls(self, rest: str) -> None:
        if self.tls:
            raise _Refused("TLS is already active")
        if self.tls_context is None:
            raise _Refused("STLS is not offered here")
        if starttls.pending(self.reader):
            await self.send("-ERR STLS cannot be pipelined: the commands after it are refused, closing")
            self.done = True
            return
        self.user = ""
        await self.send("+OK begin TLS negotiation")
        if starttls.pending(self.reader):  # sent before our answer reached the client
            self.done = True
            return
        try:
            await starttls.upgrade(self.writer, self.tls_context)
        except (OSError, TimeoutError) as error:
            log.info("POP3 STLS handshake failed: %s", error)
            self.done = True
            return
        self.tls = True

    async def noop(self, rest: str) -> None:
        if self.drop is None:
            raise _Refused("NOOP is for a signed-in session")
        await self.send("+OK")

    def _plaintext(self) -> None:
        if not (self.plaintext_ok or self.tls):
            raise _Refused("[AUTH] plaintext login needs TLS: STLS first")

    async def user_command(self, rest: str) -> None:
        self._plaintext()
        if not rest.strip():
            raise _Refused("USER needs a mailbox name")
        self.user = rest.strip()
        await self.send("+OK send PASS")

    async def pass_command(self, rest: str) -> None:
        if not self.user:
            raise _Refused("USER first")
        email, self.user = self.user, ""
        await self._sign_in(email, rest)

    async def auth(self, rest: str) -> None:
        mechanism, _, initial = rest.strip().partition(" ")
        if not mechanism:
            await self.send_lines("+OK mechanisms follow", [b"PLAIN"])
            return
        if mechanism.upper() != "PLAIN":
            raise _Refused(f"unsupported SASL mechanism {mechanism[:20]!r}; PLAIN is")
        self._plaintext()
        if not initial:
            await self.send("+ ")
            line = await self._line()
            if line is None:
                self.done = True
                return
            initial = line.decode("ascii", "replace")
        if initial == "*":
            raise _Refused("authentication cancelled")
        try:
            _, email, password = base64.b64decode(initial, validate=True).decode().split("\x00")
        except (binascii.Error, ValueError, UnicodeDecodeError):
            raise _Refused("malformed PLAIN response (base64 of authzid NUL user NUL password)") from None
        await self._sign_in(email, password)

    async def _sign_in(self, email: str, password: str) -> None:
        user_id = await self.accounts.login(email, password)
        if user_id is None:
            raise _Refused("[AUTH] wrong mailbox or password")
        self.drop = await Maildrop.open(self.router, user_id)
        live = self.drop.live()
        await self.send(f"+OK {len(live)} messages ({sum(d.size for d in live)} octets)")

    # -- TRANSACTION --------------------------------------------------------------------
    def _maildrop(self) -> Maildrop:
        assert self.drop is not None
        return self.drop

    def _message(self, argument: str) -> Drop:
        try:
            number = int(argument)
        except ValueError:
            raise _Refused(f"not a message number: {argument[:20]!r}") from None
        found = self._maildrop().get(number)
        if found is None:
            raise _Refused(f"no message {number}")
        return found

    async def stat(self, rest: str) -> None:
        live = self._maildrop().live()
        await self.send(f"+OK {len(live)} {sum(d.size for d in live)}")

    async def list(self, rest: str) -> None:
        if rest.strip():
            drop = self._message(rest.strip())
            await self.send(f"+OK {drop.number} {drop.size}")
            return
        live = self._maildrop().live()
        await self.send_lines(f"+OK {len(live)} messages", [f"{d.number} {d.size}".encode() for d in live])

    async def uidl(self, rest: str) -> None:
        if rest.strip():
            drop = self._message(rest.strip())
            await self.send(f"+OK {drop.number} {drop.unique_id}")
            return
        await self.send_lines("+OK unique-ids follow", [f"{d.number} {d.unique_id}".encode()
                                                         for d in self._maildrop().live()])

    async def retr(self, rest: str) -> None:
        drop = self._message(rest.strip())
        raw = await self._maildrop().raw(drop)
        await self.send_lines(f"+OK {drop.size} octets", _lines(raw))

    async def top(self, rest: str) -> None:
        parts = rest.split()
        if len(parts) != 2 or not parts[1].isdigit():
            raise _Refused("TOP needs a message number and a line count")
        drop = self._message(parts[0])
        lines = _lines(await self._maildrop().raw(drop))
        blank = lines.index(b"") if b"" in lines else len(lines)
        await self.send_lines("+OK top of message follows", lines[:blank + 1 + int(parts[1])])

    async def dele(self, rest: str) -> None:
        drop = self._message(rest.strip())
        self._maildrop().deleted.add(drop.number)
        await self.send(f"+OK message {drop.number} deleted")

    async def rset(self, rest: str) -> None:
        self._maildrop().deleted.clear()
        await self.stat("")

    async def quit(self, rest: str) -> None:
        self.done = True
        if self.drop is None or not self.drop.deleted:
            await self.send("+OK bye")
            return
        try:
            moved = await self.drop.commit()
        except Exception:
            log.exception("POP3 QUIT could not move the deleted messages")
            await self.send("-ERR [SYS/TEMP] some deleted messages were not removed; they are still in the Inbox")
            return
        await self.send(f"+OK {moved} messages moved to Trash, bye")


def _lines(raw: bytes) -> list[bytes]:
    """The message's lines (stored with CRLF line ends), without them."""
    lines = raw.split(b"\r\n")
    return lines[:-1] if lines and lines[-1] == b"" else lines
