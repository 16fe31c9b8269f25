"""The IMAP session over a real socket against the fake router (tests/fake_mail.py): the state
machine's refusals, AUTHENTICATE PLAIN's exchange, a synchronizing literal, plaintext refused off
loopback, router failures answered NO [UNAVAILABLE], the idle timeout, and the MIME sections
FETCH serves."""
from __future__ import annotations

import asyncio
import base64
import functools
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import grpc
import pytest

from imap_edge import message as mime
from imap_edge.backend import Backend
from imap_edge.protocol.fetch import Section
from imap_edge.server import is_loopback
from imap_edge.session import Session
from tests.fake_mail import FakeMail

PASSWORD = "pw"


@dataclass
class Peer:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    greeting: bytes

    async def ask(self, line: bytes, tag: bytes | None = None) -> bytes:
        self.writer.write(line)
        await self.writer.drain()
        tag = tag or line.split(b" ", 1)[0]
        out = b""
        while True:
            got = await asyncio.wait_for(self.reader.readline(), 5)
            out += got
            if not got or got.startswith(tag + b" ") or got.startswith(b"+ "):
                return out


def with_fake(test: Callable[[FakeMail], Awaitable[None]]) -> Callable[[], None]:
    """Run an async test on its own loop, with a fake router that has one user, ann."""
    @functools.wraps(test)
    def run() -> None:
        async def main() -> None:
            async with FakeMail() as mail:
                mail.add_user("ann@example.test", PASSWORD)
                await test(mail)
        asyncio.run(main())
    run.__signature__ = inspect.Signature()  # type: ignore[attr-defined]
    return run


async def connect(fake: FakeMail, **options: object) -> Peer:
    backend = Backend(fake.address)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await Session(reader, writer, backend, **options).run()  # type: ignore[arg-type]

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    return Peer(reader, writer, await reader.readline())


async def login(peer: Peer) -> None:
    assert b"a OK [CAPABILITY " in await peer.ask(b"a LOGIN ann@example.test pw\r\n")


@with_fake
async def test_greeting_and_commands_in_the_wrong_state(fake: FakeMail) -> None:
    peer = await connect(fake)
    assert peer.greeting.startswith(b"* OK [CAPABILITY IMAP4rev1 ") and b"AUTH=PLAIN" in peer.greeting
    for command in (b"SELECT INBOX", b"LIST \"\" *", b"FETCH 1 FLAGS", b"EXPUNGE", b"IDLE", b"ENABLE CONDSTORE"):
        answer = await peer.ask(b"t1 " + command + b"\r\n")
        assert answer.startswith(b"t1 BAD ") and b"not allowed in the not authenticated state" in answer, answer
    assert (await peer.ask(b"t2 STARTTLS\r\n")).startswith(b"t2 NO [CANNOT]")
    assert (await peer.ask(b"t3 LOGIN ann@example.test wrong\r\n")).startswith(b"t3 NO [AUTHENTICATIONFAILED]")
    await login(peer)
    assert (await peer.ask(b"t4 LOGIN ann@example.test pw\r\n")).startswith(b"t4 BAD LOGIN is not allowed in the "
                                                                            b"authenticated state")
    assert (await peer.ask(b"t5 STORE 1 +FLAGS \\Seen\r\n")).startswith(b"t5 BAD STORE is not allowed")
    assert (await peer.ask(b"t6 THREAD REFERENCES UTF-8 ALL\r\n")).startswith(b"t6 BAD THREAD is not allowed")
    assert b"* BYE" in await peer.ask(b"t7 LOGOUT\r\n")
    assert await peer.reader.read() == b""


@with_fake
async def test_authenticate_plain_with_a_continuation_and_a_cancel(fake: FakeMail) -> None:
    peer = await connect(fake)
    assert await peer.ask(b"p1 AUTHENTICATE PLAIN\r\n", b"p1") == b"+ \r\n"
    assert (await peer.ask(b"*\r\n", b"p1")).startswith(b"p1 BAD AUTHENTICATE cancelled")
    assert await peer.ask(b"p2 AUTHENTICATE PLAIN\r\n", b"p2") == b"+ \r\n"
    credentials = base64.b64encode(b"\0ann@example.test\0pw")
    assert (await peer.ask(credentials + b"\r\n", b"p2")).startswith(b"p2 OK [CAPABILITY ")
    other = await connect(fake)
    wrong = base64.b64encode(b"bob@example.test\0ann@example.test\0pw")
    assert (await other.ask(b"p3 AUTHENTICATE PLAIN " + wrong + b"\r\n")).startswith(b"p3 NO [AUTHORIZATIONFAILED]")


@with_fake
async def test_plaintext_login_is_refused_off_loopback(fake: FakeMail) -> None:
    peer = await connect(fake, plaintext_ok=False)
    assert b"LOGINDISABLED" in peer.greeting
    assert (await peer.ask(b"a LOGIN ann@example.test pw\r\n")).startswith(b"a NO [PRIVACYREQUIRED]")
    assert is_loopback(("127.0.0.1", 1)) and is_loopback(("::1", 1, 0, 0)) and not is_loopback(("10.0.0.1", 1))


@with_fake
async def test_append_with_a_synchronizing_literal_then_select_and_fetch(fake: FakeMail) -> None:
    peer = await connect(fake)
    await login(peer)
    raw = b"From: a@example.org\r\nSubject: hi\r\n\r\nbody\r\n"
    assert await peer.ask(b"a1 APPEND INBOX (\\Flagged) {%d}\r\n" % len(raw), b"a1") == b"+ Ready for literal data\r\n"
    assert b"a1 OK [APPENDUID 1 1]" in await peer.ask(raw + b"\r\n", b"a1")
    selected = await peer.ask(b"s1 SELECT INBOX\r\n")
    assert b"* 1 EXISTS" in selected and b"[UIDVALIDITY 1]" in selected and b"s1 OK [READ-WRITE]" in selected
    fetched = await peer.ask(b"f1 FETCH 1 (FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])\r\n")
    assert b"FLAGS (\\Flagged)" in fetched and b"Subject: hi\r\n\r\n" in fetched, fetched
    assert (await peer.ask(b"f2 FETCH 2 FLAGS\r\n")).startswith(b"f2 BAD no message 2")
    assert (await peer.ask(b"f3 UID FETCH 2 FLAGS\r\n")).startswith(b"f3 OK")  # a UID not there matches nothing


@with_fake
async def test_a_router_failure_is_no_unavailable_and_the_session_goes_on(fake: FakeMail) -> None:
    peer = await connect(fake)
    await login(peer)
    fake.fail("ListFolders", grpc.StatusCode.UNAVAILABLE, times=8)
    assert (await peer.ask(b"l1 LIST \"\" *\r\n")).startswith(b"l1 NO [UNAVAILABLE]")
    fake.failures.clear()
    assert b"l2 OK" in await peer.ask(b"l2 LIST \"\" *\r\n")


@with_fake
async def test_a_silent_client_is_logged_out(fake: FakeMail) -> None:
    peer = await connect(fake, timeout=0.2)
    assert (await asyncio.wait_for(peer.reader.readline(), 5)).startswith(b"* BYE autologout")
    assert await peer.reader.read() == b""


@with_fake
async def test_idle_announces_a_delivery_from_the_feed(fake: FakeMail) -> None:
    peer = await connect(fake)
    await login(peer)
    await peer.ask(b"s SELECT INBOX\r\n")
    assert await peer.ask(b"i IDLE\r\n", b"i") == b"+ idling\r\n"
    user_id = next(iter(fake.users))
    fake._keep(fake.users[user_id], b"From: b@example.org\r\nSubject: new\r\n\r\nx\r\n", "inbox", True)
    assert await asyncio.wait_for(peer.reader.readline(), 5) == b"* 1 EXISTS\r\n"
    assert (await peer.ask(b"DONE\r\n", b"i")).startswith(b"i OK IDLE terminated")


MULTIPART = (b"From: a@example.org\r\nSubject: parts\r\nMIME-Version: 1.0\r\n"
             b"Content-Type: multipart/mixed; boundary=\"XX\"\r\n\r\npreamble\r\n--XX\r\n"
             b"Content-Type: text/plain; charset=utf-8\r\n\r\nfirst part\r\n--XX\r\n"
             b"Content-Type: message/rfc822\r\n\r\nSubject: inner\r\nFrom: c@example.org\r\n\r\ninner body\r\n"
             b"--XX--\r\nepilogue\r\n")


def test_sections_and_body_structure_of_a_multipart() -> None:
    root = mime.parse(MULTIPART)
    assert mime.section(root, MULTIPART, Section()) == MULTIPART
    assert mime.section(root, MULTIPART, Section((1,))) == b"first part"
    assert mime.section(root, MULTIPART, Section((1,), "MIME")) == b"Content-Type: text/plain; charset=utf-8\r\n\r\n"
    assert mime.section(root, MULTIPART, Section((2, 1))) == b"inner body"
    assert mime.section(root, MULTIPART, Section((2,), "HEADER")).startswith(b"Subject: inner\r\n")
    assert mime.section(root, MULTIPART, Section((), "HEADER.FIELDS", ("subject",))) == b"Subject: parts\r\n\r\n"
    assert b"From:" in mime.section(root, MULTIPART, Section((), "HEADER.FIELDS.NOT", ("Subject",)))
    with pytest.raises(mime.SectionError):
        mime.section(root, MULTIPART, Section((3,)))
    structure = mime.body_structure(root)
    assert structure.subtype == "mixed" and len(structure.parts) == 2  # type: ignore[union-attr]
    inner = structure.parts[1]  # type: ignore[union-attr]
    assert inner.envelope is not None and inner.envelope.subject == "inner"  # type: ignore[union-attr]
    envelope = mime.envelope(root.headers)
    assert envelope.sender == envelope.from_ and envelope.from_[0].host == "example.org"


def test_a_fresh_view_folds_in_when_the_feed_is_too_old() -> None:
    from imap_edge.backend import Entry, View
    from imap_edge.names import Folder
    from imap_edge.selected import Exists, Expunged, Selected
    selected = Selected(Folder("inbox", "INBOX", "inbox"), View(7, 4, 10, (Entry(1, "a", 3), Entry(2, "b", 5),
                                                                           Entry(3, "c", 9))), read_only=False)
    selected.resync(View(7, 6, 20, (Entry(1, "a", 3), Entry(3, "c", 15), Entry(5, "e", 20))))
    assert selected.flush(expunges=False) == [Exists(4)]  # the expunge waits, its number stays
    assert selected.flush(expunges=True) == [Expunged(2, 2)]
    assert selected.uids == [1, 3, 5] and selected.modseq == 20 and selected.messages[3].modseq == 15
