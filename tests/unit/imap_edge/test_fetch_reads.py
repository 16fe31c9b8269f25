"""What a FETCH asks of the router (tests/fake_mail.py counts the calls): bodies in batched
Mail.GetMessages reads, not one read a message, and answered byte for byte; a message expunged
meanwhile is left out with NO [EXPUNGEISSUED]."""
from __future__ import annotations

import re

from tests.fake_mail import FakeMail
from tests.unit.imap_edge.test_session import connect, login, with_fake


def raw(i: int) -> bytes:
    return (b"From: Sender %d <s%d@example.org>\r\nTo: ann@example.test\r\nSubject: message %d\r\n"
            b"Message-ID: <%d@example.org>\r\nDate: Mon, 1 Dec 2026 10:00:00 +0000\r\n\r\nbody %d\r\n" % (i, i, i, i, i))


def deliver(fake: FakeMail, count: int) -> list[str]:
    user = fake.users[next(iter(fake.users))]
    return [fake._keep(user, raw(i), "inbox", True).summary.id for i in range(count)]


def literals(answer: bytes) -> list[bytes]:
    """The literals of an answer, in order."""
    found, at = [], 0
    while (match := re.compile(rb"\{(\d+)\}\r\n").search(answer, at)) is not None:
        start = match.end()
        found.append(answer[start:start + int(match.group(1))])
        at = start + int(match.group(1))
    return found


@with_fake
async def test_bodies_are_read_in_one_batched_call_not_one_a_message(fake: FakeMail) -> None:
    deliver(fake, 30)
    peer = await connect(fake)
    await login(peer)
    await peer.ask(b"s1 EXAMINE INBOX\r\n")
    fake.calls.clear()
    answer = await peer.ask(b"zz1 FETCH 1:30 (BODY.PEEK[])\r\n")
    assert answer.endswith(b"zz1 OK FETCH completed\r\n"), answer[-200:]
    bodies = literals(answer)
    assert len(bodies) == 30 and set(bodies) == {raw(i) for i in range(30)}
    assert len(fake.calls.get("GetMessages", [])) == 1 and "GetRawMessage" not in fake.calls
    [request] = fake.calls["GetMessages"]
    assert request.raw and len(request.ids) == 30


@with_fake
async def test_a_message_expunged_meanwhile_is_left_out(fake: FakeMail) -> None:
    ids = deliver(fake, 3)
    peer = await connect(fake)
    await login(peer)
    await peer.ask(b"s1 EXAMINE INBOX\r\n")
    user = fake.users[next(iter(fake.users))]
    del user.messages[ids[1]]                      # gone from the store, not yet from the session
    answer = await peer.ask(b"zz2 FETCH 1:3 (BODY.PEEK[])\r\n")
    assert answer.count(b" FETCH (") == 2 and b"zz2 NO [EXPUNGEISSUED]" in answer, answer


MUTT = (b"(UID FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[HEADER.FIELDS (DATE FROM SENDER SUBJECT TO CC MESSAGE-ID "
        b"REFERENCES CONTENT-TYPE CONTENT-DESCRIPTION IN-REPLY-TO REPLY-TO LINES LIST-POST X-LABEL)])")


@with_fake
async def test_envelope_and_mutts_header_fields_come_from_the_listing_not_the_bodies(fake: FakeMail) -> None:
    deliver(fake, 30)
    peer = await connect(fake)
    await login(peer)
    await peer.ask(b"s1 EXAMINE INBOX\r\n")
    fake.calls.clear()
    from_headers = await peer.ask(b"zz3 FETCH 1:30 (ENVELOPE " + MUTT[1:] + b"\r\n")
    assert from_headers.endswith(b"zz3 OK FETCH completed\r\n")
    assert not any(r.raw for r in fake.calls.get("GetMessages", [])) and "GetRawMessage" not in fake.calls
    assert all(r.headers for r in fake.calls["ListMessages"])
    fake.calls.clear()
    from_bodies = await peer.ask(b"zz4 FETCH 1:30 (ENVELOPE " + MUTT[1:-1] + b" BODYSTRUCTURE)\r\n")   # bodies read
    assert [r.raw for r in fake.calls["GetMessages"]] == [True]
    assert literals(from_headers) == literals(from_bodies) and len(literals(from_headers)) == 30
    envelopes = re.findall(rb"ENVELOPE \(.*?\) UID ", from_headers)
    assert len(envelopes) == 30 and envelopes == re.findall(rb"ENVELOPE \(.*?\) UID ", from_bodies)


@with_fake
async def test_a_message_without_kept_fields_is_read_from_its_body(fake: FakeMail) -> None:
    ids = deliver(fake, 3)
    user = fake.users[next(iter(fake.users))]
    odd = b"From: Cy <cy@example.org>\r\nSubject : spaced\r\n\r\nbody\r\n"     # not kept: Python reads it apart
    user.messages[ids[1]].raw = odd
    peer = await connect(fake)
    await login(peer)
    await peer.ask(b"s1 EXAMINE INBOX\r\n")
    fake.calls.clear()
    answer = await peer.ask(b"zz5 FETCH 1:3 (ENVELOPE BODY.PEEK[HEADER.FIELDS (SUBJECT)])\r\n")
    [read] = [r for r in fake.calls["GetMessages"] if r.raw]
    assert list(read.ids) == [ids[1]]                          # that one alone, from its body
    assert b"Subject : spaced\r\n\r\n" in literals(answer)
    assert answer.count(b" FETCH (") == 3 and answer.endswith(b"zz5 OK FETCH completed\r\n")
