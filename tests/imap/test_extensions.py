"""IMAP extensions against the real cluster (storage nodes, router, the IMAP edge on port 0),
driven by imaplib and imapclient: the bound on one user's sessions at once (the edge's default,
20); THREAD and UID THREAD from the router's threads (a reply threaded by its In-Reply-To);
COMPRESS=DEFLATE on a raw socket."""
from __future__ import annotations

import imaplib
import itertools
import socket
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from imapclient import IMAPClient  # type: ignore[import-untyped]

from tests.cluster.grid import PASSWORD, Grid, running
from tidings.v1 import mail_pb2
from tidings_client import new_entry_id

pytestmark = pytest.mark.timeout(120)
_users = itertools.count(1)


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Grid]:
    with running(Path(tmp_path_factory.mktemp("imap-ext-grid")), edges=("imap",), virus_scan=False) as g:
        yield g


@pytest.fixture
def user(grid: Grid) -> Callable[[], tuple[str, str]]:
    def make() -> tuple[str, str]:
        email = f"ext{next(_users)}@example.test"
        return email, grid.add_user(email).user_id
    return make


def test_a_user_has_at_most_20_sessions_at_once(grid: Grid, user: Callable[[], tuple[str, str]]) -> None:
    email, _ = user()
    other, _ = user()
    sessions = []
    try:
        for _ in range(20):
            imap = imaplib.IMAP4(grid.host, grid.imap_port, timeout=30)
            imap.login(email, PASSWORD)
            sessions.append(imap)
        extra = imaplib.IMAP4(grid.host, grid.imap_port, timeout=30)
        with pytest.raises(imaplib.IMAP4.error, match=r"\[LIMIT\] too many connections"):
            extra.login(email, PASSWORD)
        assert extra.login(other, PASSWORD)[0] == "OK"  # only that user is bounded
        extra.logout()
        sessions.pop().logout()
        again = imaplib.IMAP4(grid.host, grid.imap_port, timeout=30)
        assert again.login(email, PASSWORD)[0] == "OK"
        sessions.append(again)
    finally:
        for imap in sessions:
            imap.logout()


def _deliver(grid: Grid, email: str, headers: str) -> None:
    raw = f"From: carol@example.org\r\nTo: {email}\r\n{headers}\r\n\r\nhello\r\n".encode()
    grid.mail.Deliver(mail_pb2.DeliverRequest(entry_id=new_entry_id(), raw=raw, recipients=[email]), timeout=30)


def test_thread_references_from_our_threads(grid: Grid, user: Callable[[], tuple[str, str]]) -> None:
    email, _ = user()
    _deliver(grid, email, "Message-ID: <plan@example.org>\r\nSubject: The plan")
    _deliver(grid, email, "Message-ID: <lunch@example.org>\r\nSubject: Lunch")
    _deliver(grid, email, "Message-ID: <re1@example.org>\r\nIn-Reply-To: <plan@example.org>\r\n"
                          "References: <plan@example.org>\r\nSubject: Re: The plan")
    _deliver(grid, email, "Message-ID: <other@example.org>\r\nSubject: Re: Lunch")
    imap = IMAPClient(grid.host, port=grid.imap_port, ssl=False, timeout=30)
    imap.login(email, PASSWORD)
    assert imap.has_capability("THREAD=REFERENCES") and imap.has_capability("THREAD=ORDEREDSUBJECT")
    imap.select_folder("INBOX")
    uids = imap.search("ALL")
    assert len(uids) == 4
    assert imap.thread("REFERENCES") == ((uids[0], uids[2]), (uids[1],), (uids[3],))
    assert imap.thread("ORDEREDSUBJECT") == ((uids[0], uids[2]), (uids[1], uids[3]))
    status, data = imap._imap.thread("REFERENCES", "UTF-8", "NOT", "SUBJECT", "lunch")   # without UID
    assert status == "OK" and data == [b"(1 3)"]
    imap.logout()


def test_compress_deflate_after_login(grid: Grid, user: Callable[[], tuple[str, str]]) -> None:
    """COMPRESS=DEFLATE (RFC 4978) on a raw socket: after the tagged OK both directions are raw
    deflate; CAPABILITY no longer offers it, a second COMPRESS is NO [COMPRESSIONACTIVE], and a
    message's body comes through whole."""
    email, _ = user()
    _deliver(grid, email, "Subject: squeezed\r\nMessage-ID: <squeezed@example.org>")
    with _logged_in(grid, email) as sock:
        plain = sock.makefile("rb")
        sock.sendall(b"a2 CAPABILITY\r\n")
        assert b"COMPRESS=DEFLATE" in b"".join(_until_tagged(plain.readline, b"a2"))
        sock.sendall(b"a3 COMPRESS DEFLATE\r\n")
        assert _until_tagged(plain.readline, b"a3")[-1].startswith(b"a3 OK")
        deflate, inflate = zlib.compressobj(wbits=-15), zlib.decompressobj(wbits=-15)
        received = bytearray()

        def send(line: bytes) -> None:
            sock.sendall(deflate.compress(line) + deflate.flush(zlib.Z_SYNC_FLUSH))

        def readline() -> bytes:
            while b"\r\n" not in received:
                chunk = sock.recv(65536)
                assert chunk, "the server closed the connection"
                received.extend(inflate.decompress(chunk))
            line, _, rest = bytes(received).partition(b"\r\n")
            received[:] = rest
            return line + b"\r\n"

        send(b"b1 CAPABILITY\r\n")
        lines = _until_tagged(readline, b"b1")
        assert lines[-1].startswith(b"b1 OK") and b"COMPRESS=DEFLATE" not in b"".join(lines)
        send(b"b2 COMPRESS DEFLATE\r\n")
        assert _until_tagged(readline, b"b2")[-1].startswith(b"b2 NO [COMPRESSIONACTIVE]")
        send(b"b3 SELECT INBOX\r\n")
        assert _until_tagged(readline, b"b3")[-1].startswith(b"b3 OK")
        send(b"b4 FETCH 1 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])\r\n")
        fetched = b"".join(_until_tagged(readline, b"b4"))
        assert b"Subject: squeezed" in fetched and b"b4 OK" in fetched
        send(b"b5 LOGOUT\r\n")
        assert b"* BYE" in b"".join(_until_tagged(readline, b"b5"))


def _logged_in(grid: Grid, email: str) -> socket.socket:
    """A raw socket to the IMAP edge, past the greeting and a1 LOGIN as ``email``."""
    sock = socket.create_connection((grid.host, grid.imap_port), timeout=30)
    plain = sock.makefile("rb")
    assert plain.readline().startswith(b"* OK")
    sock.sendall(f'a1 LOGIN "{email}" "{PASSWORD}"\r\n'.encode())
    assert _until_tagged(plain.readline, b"a1")[-1].startswith(b"a1 OK")
    return sock


def _until_tagged(readline: Callable[[], bytes], tag: bytes) -> list[bytes]:
    lines = [readline()]
    while not lines[-1].startswith(tag + b" "):
        lines.append(readline())
    return lines


def test_compress_is_refused_before_login_and_for_another_mechanism(
        grid: Grid, user: Callable[[], tuple[str, str]], monkeypatch: pytest.MonkeyPatch) -> None:
    email, _ = user()
    monkeypatch.setitem(imaplib.Commands, "COMPRESS", ("NONAUTH", "AUTH", "SELECTED"))  # imaplib lacks it
    imap = imaplib.IMAP4(grid.host, grid.imap_port, timeout=30)
    try:
        assert "COMPRESS=DEFLATE" not in imap.capabilities
        with pytest.raises(imaplib.IMAP4.error, match="not allowed in the not authenticated state"):
            imap._simple_command("COMPRESS", "DEFLATE")
        imap.login(email, PASSWORD)
        with pytest.raises(imaplib.IMAP4.error, match="only DEFLATE"):
            imap._simple_command("COMPRESS", "LZMA")
        assert imap.noop()[0] == "OK"     # still plain: nothing changed
    finally:
        imap.logout()


def test_a_pipelined_compress_is_refused_and_the_next_command_answered(grid: Grid,
                                                                       user: Callable[[], tuple[str, str]]) -> None:
    email, _ = user()
    with _logged_in(grid, email) as sock:
        plain = sock.makefile("rb")
        sock.sendall(b"a2 COMPRESS DEFLATE\r\na3 NOOP\r\n")
        assert _until_tagged(plain.readline, b"a2")[-1].startswith(b"a2 BAD COMPRESS cannot be pipelined")
        assert _until_tagged(plain.readline, b"a3")[-1].startswith(b"a3 OK")
