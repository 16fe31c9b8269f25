"""The text of DATA over real sockets: bare-LF lines, long lines, size, smuggling, a corpus.

The first tests talk to an edge whose router is the ``fake_router`` test double
(see conftest.py); the last ones send to the shared ``grid`` (real router and
storage) and read the stored messages back.
"""
from __future__ import annotations

import re
import smtplib
import socket
import sysconfig
import uuid
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest

from smtp_edge.server import SmtpEdge
from tests.cluster.grid import PASSWORD, Grid
from tidings.v1 import mail_pb2

ALICE = "alice@example.test"
SMUGGLING = {"LF.LF": b"\n.\n", "LF.CRLF": b"\n.\r\n", "CR.CR": b"\r.\r", "CRLF.LF": b"\r\n.\n"}
CORPUS = Path(sysconfig.get_paths()["stdlib"]) / "test" / "test_email" / "data"


class Wire:
    """A client socket that sends bytes exactly as given and reads whole replies."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=20)
        self.file = self.sock.makefile("rb")
        assert self.reply()[0] == 220

    def reply(self) -> tuple[int, bytes]:
        while True:
            line = self.file.readline()
            assert line.endswith(b"\r\n"), f"connection closed: {line!r}"
            if line[3:4] != b"-":
                return int(line[:3]), line[4:-2]

    def command(self, line: bytes) -> tuple[int, bytes]:
        self.sock.sendall(line + b"\r\n")
        return self.reply()

    def begin(self, recipient: str) -> None:
        """EHLO, MAIL, RCPT and DATA, up to the 354."""
        assert self.command(b"EHLO client.example.org")[0] == 250
        assert self.command(b"MAIL FROM:<carol@example.org>")[0] == 250
        assert self.command(b"RCPT TO:<" + recipient.encode() + b">")[0] == 250
        assert self.command(b"DATA")[0] == 354

    def close(self) -> None:
        self.file.close()
        self.sock.close()


@pytest.fixture
def wire(edge: SmtpEdge) -> Iterator[Wire]:
    client = Wire(edge.mx_port)
    yield client
    client.close()


def crlf(raw: bytes) -> bytes:
    return re.sub(rb"\r?\n", b"\r\n", raw)


def stored_text(raw: bytes) -> bytes:
    """The message after the edge's Received: header (and the router's verdict under it)."""
    assert raw.startswith(b"Received: ")
    rest = raw[re.search(rb"\r\n(?![ \t])", raw).end():]  # type: ignore[union-attr]
    return rest[rest.index(b"\r\n") + 2:] if rest.startswith(b"X-Tidings-Spam: ") else rest


# -- against the edge, the router a test double ----------------------------------

def test_email_message_with_bare_lf_is_accepted_and_stored_with_crlf(edge: SmtpEdge,
                                                                     fake_router) -> None:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "carol@example.org", ALICE, "bare LF"
    message.set_content("Hi Alice,\n.hidden dot\n\n-- \nCarol\n")
    raw = message.as_bytes()
    assert b"\r\n" not in raw
    with smtplib.SMTP("127.0.0.1", edge.mx_port, timeout=10) as client:
        assert client.sendmail("carol@example.org", [ALICE], raw) == {}
    [delivered] = fake_router.delivered
    assert stored_text(delivered.raw) == crlf(raw) + b"\r\n"   # smtplib appends CRLF


@pytest.mark.parametrize("ending", [b"\r\n", b"\n"], ids=["CRLF", "LF"])
def test_lines_of_998_characters_are_accepted(wire: Wire, fake_router, ending: bytes) -> None:
    line, dotted = b"x" * 998, b"." + b"y" * 997
    wire.begin(ALICE)
    wire.sock.sendall(b"Subject: long" + ending + ending + line + ending
                      + b"." + dotted + ending + b"end\r\n.\r\n")
    assert wire.reply()[0] == 250
    assert stored_text(fake_router.delivered[0].raw) == (
        b"Subject: long\r\n\r\n" + line + b"\r\n" + dotted + b"\r\nend\r\n")


@pytest.mark.parametrize("length", [999, 5000, 200_000])
@pytest.mark.parametrize("ending", [b"\r\n", b"\n"], ids=["CRLF", "LF"])
def test_longer_line_is_554_560_after_the_whole_data(wire: Wire, fake_router,
                                                     ending: bytes, length: int) -> None:
    wire.begin(ALICE)
    wire.sock.sendall(b"Subject: long\r\n\r\n" + b"z" * length + ending
                      + b"MAIL FROM:<evil@example.org>\r\n.\r\n")
    assert wire.reply() == (554, b"5.6.0 message has a line longer than 998 characters")
    assert wire.command(b"NOOP")[0] == 250             # the session is in step
    assert wire.command(b"MAIL FROM:<carol@example.org>")[0] == 250
    assert wire.command(b"RCPT TO:<alice@example.test>")[0] == 250
    assert wire.command(b"DATA")[0] == 354
    assert wire.command(b"Subject: short\r\n\r\nok\r\n.")[0] == 250
    [delivered] = fake_router.delivered
    assert stored_text(delivered.raw) == b"Subject: short\r\n\r\nok\r\n"


def test_size_limit_counts_bare_lf_lines_as_stored(start_edge, fake_router) -> None:
    """A bare-LF line is stored one byte longer: the 552 limit is on the stored size."""
    edge = start_edge(max_size=10_000)
    text = b"Subject: s\n\n" + (b"z" * 98 + b"\n") * 99          # 9914 bytes stored
    client = Wire(edge.mx_port)
    try:
        client.begin(ALICE)
        over = text + b"z" * 84 + b"\n\r\n.\r\n"                 # 9900 sent, 10002 stored
        client.sock.sendall(over)
        assert len(over) - 3 < 10_000 and client.reply() == (552, b"5.3.4 message too big")
        client.begin(ALICE)
        client.sock.sendall(text + b"z" * 82 + b"\n\r\n.\r\n")    # 10000 stored
        assert client.reply()[0] == 250
    finally:
        client.close()
    [delivered] = fake_router.delivered
    assert len(stored_text(delivered.raw)) == 10_000


def test_commands_sent_right_after_the_end_are_read_as_commands(wire: Wire, fake_router) -> None:
    """The reader stops at the end of data; what follows in the same packet is the next command."""
    wire.begin(ALICE)
    wire.sock.sendall(b"Subject: one\n\nfirst\r\n.\r\n"
                      b"MAIL FROM:<dave@example.org>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n")
    assert [wire.reply()[0] for _ in range(4)] == [250, 250, 250, 354]
    assert wire.command(b"Subject: two\r\n\r\nsecond\r\n.")[0] == 250
    first, second = fake_router.delivered
    assert stored_text(first.raw) == b"Subject: one\r\n\r\nfirst\r\n"
    assert stored_text(second.raw) == b"Subject: two\r\n\r\nsecond\r\n"
    assert b"dave@example.org" not in first.raw


# -- against the shared grid ---------------------------------------------------------

def fresh_user(grid: Grid, prefix: str) -> tuple[str, str]:
    """A new user on the shared grid: (address, user id)."""
    email = f"{prefix}-{uuid.uuid4().hex[:10]}@example.test"
    return email, grid.add_user(email, PASSWORD).user_id


def inbox(grid: Grid, user_id: str) -> list[str]:
    """The ids of every message in the user's inbox."""
    ids: list[str] = []
    cursor = ""
    while True:
        page = grid.mail.ListMessages(mail_pb2.ListMessagesRequest(
            user_id=user_id, folder_id="inbox", limit=100, cursor=cursor), timeout=10)
        ids.extend(summary.id for summary in page.messages)
        cursor = page.next_cursor
        if not cursor:
            return ids


@pytest.mark.parametrize("sequence", SMUGGLING.values(), ids=SMUGGLING.keys())
def test_smuggling_sequence_neither_ends_nor_splits_the_message(grid: Grid,
                                                                sequence: bytes) -> None:
    bob, user_id = fresh_user(grid, "smuggle")
    smuggled = (b"MAIL FROM:<evil@example.org>\r\nRCPT TO:<" + bob.encode() + b">\r\nDATA\r\n"
                b"From: evil@example.org\r\nSubject: smuggled\r\n\r\nevil\r\n")
    text = (b"From: carol@example.org\r\nTo: " + bob.encode() + b"\r\nSubject: one message\r\n"
            b"\r\nbefore" + sequence + smuggled)
    client = Wire(grid.smtp_port)
    try:
        client.begin(bob)
        client.sock.sendall(text + b"\r\n.\r\nQUIT\r\n")
        code, reply = client.reply()
        assert (code, reply[:9]) == (250, b"2.0.0 OK ")
        assert client.reply()[0] == 221                    # QUIT: no smuggled MAIL was read
    finally:
        client.close()
    [message_id] = inbox(grid, user_id)
    stored = grid.mail.GetRawMessage(mail_pb2.MessageRef(user_id=user_id, id=message_id),
                                     timeout=10).raw
    # the lines as sent with CRLF (a lone dot that did not end the data is kept), then
    # the empty line before the end of data
    assert stored_text(stored) == crlf(text) + b"\r\n"
    assert smuggled in stored


def test_cpython_email_corpus_comes_back_intact(grid: Grid) -> None:
    """Each ``msg_*.txt`` as its bytes on disk (bare LF) through smtplib, read back from /raw."""
    if not CORPUS.is_dir():
        pytest.skip(f"CPython's email test corpus is not installed ({CORPUS})")
    email, user_id = fresh_user(grid, "corpus")
    expected: dict[bytes, str] = {}
    refused: dict[str, tuple[int, bytes]] = {}
    with smtplib.SMTP("127.0.0.1", grid.smtp_port, timeout=30) as client:
        for path in sorted(CORPUS.glob("msg_*.txt")):
            raw = path.read_bytes()
            try:
                client.sendmail("carol@example.org", [email], raw)
            except smtplib.SMTPDataError as error:
                refused[path.name] = (error.smtp_code, error.smtp_error)
            else:   # smtplib ends the text with CRLF if it does not end so already
                expected[crlf(raw if raw.endswith(b"\r\n") else raw + b"\r\n")] = path.name
    # only a repeated single-instance header field is refused (the inbound pipeline's rule)
    for name, (code, reply) in refused.items():
        assert code == 554 and re.fullmatch(
            rb"5\.6\.0 more than one [A-Za-z-]+ header field", reply), (name, code, reply)
    assert len(expected) >= 40, refused
    with httpx.Client(base_url=grid.http_url, timeout=30) as http:
        token = http.post("/v1/auth/token", json={"email": email, "password": PASSWORD})
        auth = {"Authorization": f"Bearer {token.json()['token']}"}
        back = []
        for message_id in inbox(grid, user_id):
            response = http.get(f"/v1/messages/{message_id}/raw", headers=auth)
            assert response.status_code == 200, response.text
            back.append(stored_text(response.content))
    assert sorted(expected[text] for text in back) == sorted(expected.values())
