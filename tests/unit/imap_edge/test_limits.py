"""The session's bounds over a real socket against the fake router: at most N sessions of one
user signed in at once (NO [LIMIT], counted per user not per connection, freed at logout and at
a dropped connection), a silent client logged out, and an IDLE without DONE ended."""
from __future__ import annotations

import asyncio

from imap_edge.connections import UserConnections
from tests.fake_mail import FakeMail
from tests.unit.imap_edge.test_session import PASSWORD, connect, with_fake


async def _until(condition: object, seconds: float = 5) -> None:
    for _ in range(int(seconds / 0.01)):
        if callable(condition) and condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met")


def test_the_count_is_per_user_and_never_passes_the_bound() -> None:
    connections = UserConnections(2)
    assert connections.acquire("u1") and connections.acquire("u1")
    assert not connections.acquire("u1") and connections.count("u1") == 2
    assert connections.acquire("u2")
    connections.release("u1")
    assert connections.acquire("u1") and not connections.acquire("u1")


@with_fake
async def test_a_login_past_the_bound_is_no_limit_until_a_session_ends(fake: FakeMail) -> None:
    fake.add_user("bob@example.test", PASSWORD)
    connections = UserConnections(2)
    first, second, third = [await connect(fake, connections=connections) for _ in range(3)]
    for peer in (first, second):
        assert (await peer.ask(b"a LOGIN ann@example.test pw\r\n")).startswith(b"a OK ")
    refused = await third.ask(b"b AUTHENTICATE PLAIN AGFubkBleGFtcGxlLnRlc3QAcHc=\r\n")
    assert refused.startswith(b"b NO [LIMIT] too many connections for this user (at most 2)"), refused
    assert (await third.ask(b"c SELECT INBOX\r\n")).startswith(b"c BAD SELECT is not allowed in the not authenticated")
    bob = await connect(fake, connections=connections)
    assert (await bob.ask(b"a LOGIN bob@example.test pw\r\n")).startswith(b"a OK ")   # another user is not counted
    assert b"* BYE" in await first.ask(b"z LOGOUT\r\n")
    await _until(lambda: connections.total == 2)
    assert (await third.ask(b"d LOGIN ann@example.test pw\r\n")).startswith(b"d OK ")
    second.writer.close()  # a dropped connection frees its place too
    await _until(lambda: connections.total == 2)
    assert (await (await connect(fake, connections=connections)).ask(b"e LOGIN ann@example.test pw\r\n")
            ).startswith(b"e OK ")


@with_fake
async def test_an_idle_without_done_ends_after_the_idle_timeout(fake: FakeMail) -> None:
    peer = await connect(fake, timeout=30, idle_timeout=0.3)
    assert (await peer.ask(b"a LOGIN ann@example.test pw\r\n")).startswith(b"a OK ")
    assert b"s OK [READ-WRITE]" in await peer.ask(b"s SELECT INBOX\r\n")
    assert await peer.ask(b"i IDLE\r\n", b"i") == b"+ idling\r\n"
    rest = await asyncio.wait_for(peer.reader.read(), 5)
    assert rest.startswith(b"* BYE autologout"), rest


@with_fake
async def test_the_idle_timeout_is_its_own_not_the_command_timeout(fake: FakeMail) -> None:
    peer = await connect(fake, timeout=0.3, idle_timeout=30)
    assert (await peer.ask(b"a LOGIN ann@example.test pw\r\n")).startswith(b"a OK ")
    assert await peer.ask(b"i IDLE\r\n", b"i") == b"+ idling\r\n"
    await asyncio.sleep(0.6)  # longer than the command timeout: still idling
    assert (await peer.ask(b"DONE\r\n", b"i")).startswith(b"i OK IDLE terminated")
