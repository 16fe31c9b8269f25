"""POP3 sessions driven by Python's poplib over a real socket, on an in-memory router: login
(USER/PASS, AUTH PLAIN), STAT, LIST, UIDL, RETR with dot-stuffing, TOP, DELE then QUIT moves to
Trash (RSET and a dropped connection move nothing), refusals with -ERR that change nothing."""
from __future__ import annotations

import asyncio
import base64
import poplib
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from imap_edge.pop3.session import Session
from tests.fake_mail import LoopThread
from tidings.v1 import mail_pb2, types_pb2

USER_ID = "00000000000000a1"
MESSAGES = {
    "m1": b"From: a@example.test\r\nSubject: one\r\n\r\nfirst line\r\n.dot line\r\nthird\r\n",
    "m2": b"From: b@example.test\r\nSubject: two\r\n\r\nhello\r\n",
}


class FakeRouter:
    def __init__(self) -> None:
        self.inbox = dict(MESSAGES)
        self.trash: list[str] = []
        self.fail_deletes = False

    async def mailbox(self, user_id: str, folder_id: str, *, after_uid: int = 0, limit: int = 0,
                      timeout: float | None = None) -> mail_pb2.MailboxView:
        entries = [types_pb2.MailboxEntry(uid=i, id=m, modseq=i) for i, m in enumerate(self.inbox, 1) if i > after_uid]
        return mail_pb2.MailboxView(uidvalidity=77, uid_next=len(self.inbox) + 1, entries=entries[:1],
                                    has_more=len(entries) > 1)

    async def list_messages(self, user_id: str, folder_id: str, *, unread_only: bool = False, limit: int = 50,
                            cursor: str = "", timeout: float | None = None) -> mail_pb2.MessagePage:
        return mail_pb2.MessagePage(messages=[types_pb2.MessageSummary(id=m, size=len(raw))
                                              for m, raw in self.inbox.items()])

    async def get_raw_message(self, user_id: str, id: str, *, timeout: float | None = None) -> bytes:
        return self.inbox[id]

    async def delete_message(self, user_id: str, id: str, *, timeout: float | None = None) -> bool:
        if self.fail_deletes:
            raise ConnectionError("router down")
        self.trash.append(id)
        del self.inbox[id]
        return False


class Accounts:
    async def login(self, email: str, password: str) -> str | None:
        return USER_ID if (email, password) == ("ann@example.test", "right password") else None


@pytest.fixture
def served() -> Iterator[tuple[FakeRouter, int]]:
    loop = LoopThread()
    router = FakeRouter()

    async def start() -> asyncio.Server:
        async def connected(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await Session(reader, writer, Accounts(), router, plaintext_ok=True).run()
        return await asyncio.start_server(connected, "127.0.0.1", 0)

    server = loop.run(start())
    yield router, server.sockets[0].getsockname()[1]
    loop.run(_close(server))
    loop.close()


async def _close(server: asyncio.Server) -> None:
    server.close()


def signed_in(port: int) -> poplib.POP3:
    client = poplib.POP3("127.0.0.1", port, timeout=10)
    client.user("ann@example.test")
    client.pass_("right password")
    return client


def test_a_session_lists_reads_and_deletes_to_trash_at_quit(served: Any) -> None:
    router, port = served
    client = signed_in(port)
    assert client.stat() == (2, sum(len(r) for r in MESSAGES.values()))
    assert client.list()[1] == [f"1 {len(MESSAGES['m1'])}".encode(), f"2 {len(MESSAGES['m2'])}".encode()]
    assert client.uidl()[1] == [b"1 77.1", b"2 77.2"] and client.uidl(2) == b"+OK 2 77.2"
    _, lines, _ = client.retr(1)
    assert lines == MESSAGES["m1"].split(b"\r\n")[:-1]                  # the dot line comes back whole
    assert client.top(1, 1)[1] == [b"From: a@example.test", b"Subject: one", b"", b"first line"]
    client.dele(1)
    with pytest.raises(poplib.error_proto, match="no message 1"):
        client.retr(1)
    assert client.stat()[0] == 1
    assert client.quit().startswith(b"+OK 1 messages moved to Trash")
    assert router.trash == ["m1"] and list(router.inbox) == ["m2"]


def test_rset_and_a_dropped_connection_delete_nothing(served: Any) -> None:
    router, port = served
    client = signed_in(port)
    client.dele(1)
    client.rset()
    assert client.stat()[0] == 2
    client.dele(2)
    client.sock.close()                 # no QUIT: no UPDATE state
    second = signed_in(port)
    assert second.stat()[0] == 2 and router.trash == []
    second.quit()


def test_auth_plain_and_refusals(served: Any) -> None:
    _, port = served
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        stream = sock.makefile("rwb")

        def say(line: bytes) -> bytes:
            stream.write(line + b"\r\n")
            stream.flush()
            return stream.readline()

        assert stream.readline().startswith(b"+OK")
        assert say(b"STAT") == b"-ERR unknown command 'STAT'\r\n"          # not signed in yet
        assert say(b"PASS x") == b"-ERR USER first\r\n"
        assert say(b"AUTH LOGIN") .startswith(b"-ERR unsupported SASL mechanism")
        assert say(b"AUTH PLAIN !!!") .startswith(b"-ERR malformed PLAIN response")
        wrong = base64.b64encode(b"\x00ann@example.test\x00wrong").decode()
        assert say(f"AUTH PLAIN {wrong}".encode()) == b"-ERR [AUTH] wrong mailbox or password\r\n"
        assert say(b"X" * 300).startswith(b"-ERR command line longer than 255")
        right = base64.b64encode(b"\x00ann@example.test\x00right password").decode()
        assert say(b"AUTH PLAIN") == b"+ \r\n"
        assert say(right.encode()).startswith(b"+OK 2 messages")
        assert say(b"RETR x") == b"-ERR not a message number: 'x'\r\n"
        assert say(b"TOP 1") == b"-ERR TOP needs a message number and a line count\r\n"
        assert say(b"LIST 9") == b"-ERR no message 9\r\n"
        assert say(b"QUIT") == b"+OK bye\r\n"


def test_a_failed_update_keeps_the_messages(served: Any) -> None:
    router, port = served
    router.fail_deletes = True
    client = signed_in(port)
    client.dele(2)
    with pytest.raises(poplib.error_proto, match="still in the Inbox"):
        client.quit()
    assert router.trash == [] and len(router.inbox) == 2


def test_plaintext_login_is_refused_off_loopback_without_tls() -> None:
    async def scenario() -> list[bytes]:
        answers: list[bytes] = []

        async def connected(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await Session(reader, writer, Accounts(), FakeRouter(), plaintext_ok=False).run()

        server = await asyncio.start_server(connected, "127.0.0.1", 0)
        reader, writer = await asyncio.open_connection("127.0.0.1", server.sockets[0].getsockname()[1])
        answers.append(await reader.readline())
        writer.write(b"USER ann@example.test\r\n")
        answers.append(await reader.readline())
        writer.close()
        server.close()
        return answers

    greeting, refused = asyncio.run(scenario())
    assert greeting.startswith(b"+OK") and refused.startswith(b"-ERR [AUTH] plaintext login needs TLS")
