"""TLS on the IMAP and POP3 sessions over real sockets, with the development certificate of
tidings_runtime.tls: STARTTLS offered and LOGINDISABLED before it, neither after, login off
loopback allowed once TLS is on; commands pipelined after STARTTLS or STLS refused (never read
as if they had come over TLS); POP3 STLS driven by poplib."""
from __future__ import annotations

import asyncio
import poplib
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

from imap_edge.pop3.session import Session as Pop3Session
from tests.fake_mail import FakeMail, LoopThread
from tests.unit.imap_edge.test_pop3 import Accounts, FakeRouter
from tests.unit.imap_edge.test_session import Peer, connect, with_fake
from tidings_runtime.tls import ensure_dev_certificate, server_context

CERTS = Path(__file__).parent  # the module's certificate directory, set by the fixture below


@pytest.fixture(scope="module", autouse=True)
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A development certificate for the module (the tests on ``with_fake`` take no fixtures)."""
    global CERTS
    CERTS = tmp_path_factory.mktemp("imap-tls")
    ensure_dev_certificate(CERTS, "imap.example.test")
    return CERTS


def server_tls() -> ssl.SSLContext:
    return server_context(CERTS, "imap.example.test")


def client_tls() -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(CERTS / "tls" / "cert.pem"))


async def tls_peer(fake: FakeMail) -> Peer:
    return await connect(fake, plaintext_ok=False, tls_context=server_tls())


@with_fake
async def test_starttls_then_capability_changes_and_login_works_off_loopback(fake: FakeMail) -> None:
    peer = await tls_peer(fake)
    assert b"STARTTLS" in peer.greeting and b"LOGINDISABLED" in peer.greeting
    assert (await peer.ask(b"a LOGIN ann@example.test pw\r\n")).startswith(b"a NO [PRIVACYREQUIRED]")
    assert (await peer.ask(b"b STARTTLS\r\n")).startswith(b"b OK Begin TLS negotiation")
    await peer.writer.start_tls(client_tls(), server_hostname="localhost")
    capability = await peer.ask(b"c CAPABILITY\r\n")
    assert b"* CAPABILITY IMAP4rev1 " in capability and b"AUTH=PLAIN" in capability
    assert b"STARTTLS" not in capability and b"LOGINDISABLED" not in capability
    assert (await peer.ask(b"d STARTTLS\r\n")).startswith(b"d BAD TLS is already active")
    answer = await peer.ask(b"e LOGIN ann@example.test pw\r\n")
    assert answer.startswith(b"e OK [CAPABILITY ") and b"STARTTLS" not in answer
    assert b"* LIST" in await peer.ask(b'f LIST "" INBOX\r\n')


@with_fake
async def test_commands_pipelined_after_starttls_are_refused(fake: FakeMail) -> None:
    peer = await tls_peer(fake)
    peer.writer.write(b"a STARTTLS\r\nb LOGIN ann@example.test pw\r\n")
    await peer.writer.drain()
    answer = await asyncio.wait_for(peer.reader.read(), 10)  # the server closes the connection
    assert b"* BYE" in answer and b"a BAD STARTTLS cannot be pipelined" in answer, answer
    assert b"b OK" not in answer and b"b NO" not in answer


@with_fake
async def test_no_starttls_without_a_certificate_and_loopback_login_without_tls(fake: FakeMail) -> None:
    peer = await connect(fake)
    assert b"STARTTLS" not in peer.greeting and b"LOGINDISABLED" not in peer.greeting
    assert (await peer.ask(b"a STARTTLS\r\n")).startswith(b"a NO [CANNOT]")
    assert (await peer.ask(b"b LOGIN ann@example.test pw\r\n")).startswith(b"b OK")


@with_fake
async def test_a_failed_handshake_ends_the_connection(fake: FakeMail) -> None:
    peer = await tls_peer(fake)
    assert (await peer.ask(b"a STARTTLS\r\n")).startswith(b"a OK")
    peer.writer.write(b"this is no TLS client hello\r\n" * 4)
    await peer.writer.drain()
    assert await asyncio.wait_for(peer.reader.read(), 10) == b""


@pytest.fixture
def pop3_tls() -> Iterator[int]:
    loop = LoopThread()

    async def start() -> asyncio.Server:
        async def connected(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await Pop3Session(reader, writer, Accounts(), FakeRouter(), plaintext_ok=False,
                              tls_context=server_tls()).run()
        return await asyncio.start_server(connected, "127.0.0.1", 0)

    server = loop.run(start())
    yield server.sockets[0].getsockname()[1]

    async def close() -> None:
        server.close()
    loop.run(close())
    loop.close()


def test_pop3_stls_then_login_off_loopback(pop3_tls: int) -> None:
    pop = poplib.POP3("127.0.0.1", pop3_tls, timeout=10)
    assert "STLS" in pop.capa()
    with pytest.raises(poplib.error_proto, match="needs TLS"):
        pop.user("ann@example.test")
    assert pop.stls(client_tls()).startswith(b"+OK")
    assert "STLS" not in pop.capa()
    pop.user("ann@example.test")
    assert pop.pass_("right password").startswith(b"+OK 2 messages")
    assert pop.stat()[0] == 2
    with pytest.raises(poplib.error_proto, match="unknown command"):
        pop._shortcmd("STLS")  # no STLS in the TRANSACTION state
    pop.quit()


def test_pop3_commands_pipelined_after_stls_are_refused(pop3_tls: int) -> None:
    async def scenario() -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", pop3_tls)
        await reader.readline()
        writer.write(b"STLS\r\nUSER ann@example.test\r\n")
        await writer.drain()
        return await asyncio.wait_for(reader.read(), 10)

    answer = asyncio.run(scenario())
    assert answer.startswith(b"-ERR STLS cannot be pipelined") and answer.count(b"\r\n") == 1, answer
