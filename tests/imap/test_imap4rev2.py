"""IMAP4rev2 (RFC 9051) beside IMAP4rev1 on the real cluster (storage nodes, router, the IMAP edge
on port 0), over raw sockets and imaplib: a session that never sends ENABLE IMAP4rev2 is answered
as before (RECENT, * SEARCH, \\Noselect, no LIST on SELECT, modified UTF-7 names); after it, the
rev2 behaviours: no RECENT, SELECT's LIST (with OLDNAME for another spelling) and OK [CLOSED],
ESEARCH for every SEARCH, SEARCH RETURN (SAVE) and $, NEW/OLD/RECENT and STATUS RECENT refused,
STATUS SIZE and DELETED, \\NonExistent and \\Subscribed, UTF-8 mailbox names, BINARY decoded
(literal8 for NUL, UNKNOWN-CTE), a LITERAL+ literal over 4096 octets and SASL-IR."""
from __future__ import annotations

import base64
import imaplib
import itertools
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from imapclient import IMAPClient  # type: ignore[import-untyped]

from tests.cluster.grid import PASSWORD, Grid, running
from tests.imap.test_imap_cluster import deliver
from tests.imap.wire import Wire
from tidings.v1 import mail_pb2
from tidings_client import new_entry_id

pytestmark = pytest.mark.timeout(120)
_users = itertools.count(1)


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Grid]:
    with running(Path(tmp_path_factory.mktemp("imap-rev2-grid")), edges=("imap",), virus_scan=False) as g:
        yield g


@pytest.fixture
def user(grid: Grid) -> Callable[[], tuple[str, str]]:
    def make() -> tuple[str, str]:
        email = f"rev2-{next(_users)}@example.test"
        return email, grid.add_user(email).user_id
    return make


def rev2(grid: Grid, email: str) -> Wire:
    wire = Wire(grid, email)
    assert wire.ok("ENABLE IMAP4rev2") == [b"* ENABLED IMAP4rev2\r\n"]
    return wire


def test_capability_lists_both_and_a_rev1_session_is_unchanged(grid: Grid, user: Callable[[], tuple[str, str]]) -> None:
    email, user_id = user()
    grid.mail.CreateFolder(mail_pb2.CreateFolderRequest(user_id=user_id, name="Work/Reports"), timeout=30)
    grid.mail.CreateFolder(mail_pb2.CreateFolderRequest(user_id=user_id, name="Résumé"), timeout=30)
    deliver(grid, email, "first")
    deliver(grid, email, "second")
    imap = imaplib.IMAP4(grid.host, grid.imap_port, timeout=30)
    try:
        assert {"IMAP4REV1", "IMAP4REV2", "LITERAL+", "SASL-IR", "ESEARCH"} <= set(imap.capabilities)
        imap.login(email, PASSWORD)
        status, _ = imap.select("INBOX")
        assert status == "OK" and imap.untagged_responses.get("RECENT") == [b"0"]
        assert "LIST" not in imap.untagged_responses
        assert imap.search(None, "ALL") == ("OK", [b"1 2"])          # * SEARCH, not ESEARCH
        assert imap.search(None, "NEW") == ("OK", [b""])             # NEW is still a key
        assert imap.status("INBOX", "(RECENT MESSAGES)") == ("OK", [b'INBOX (RECENT 0 MESSAGES 2)'])
        listed = imap.list()[1]
        assert b'(\\Noselect \\HasChildren) "/" "Work"' in listed
        assert b'(\\HasNoChildren) "/" "R&AOk-sum&AOk-"' in listed   # modified UTF-7
        status, _ = imap.select("INBOX")
        assert "CLOSED" not in imap.untagged_responses
    finally:
        imap.logout()


def test_enable_rev2_select_answers_and_closed(grid: Grid, user: Callable[[], tuple[str, str]]) -> None:
    email, _ = user()
    deliver(grid, email, "only")
    wire = rev2(grid, email)
    selected = wire.ok("SELECT INBOX")
    assert not any(b"RECENT" in line for line in selected)
    assert b'* LIST (\\HasNoChildren) "/" INBOX\r\n' in selected
    assert b"* 1 EXISTS\r\n" in selected
    again = wire.ok("EXAMINE spam")      # our own name of Junk, another spelling: OLDNAME
    assert again[0] == b"* OK [CLOSED] previous mailbox closed\r\n"
    assert b'* LIST (\\HasNoChildren \\Junk) "/" "Junk" ("OLDNAME" ("spam"))\r\n' in again
    assert wire.ok("ENABLE IMAP4rev2") == [b"* ENABLED\r\n"]   # not while a mailbox is selected
    wire.close()
    other = Wire(grid, email)       # another session stays rev1
    assert any(b"RECENT" in line for line in other.ok("SELECT INBOX"))
    other.close()


def test_rev2_search_is_esearch_and_recent_keys_are_refused(grid: Grid, user: Callable[[], tuple[str, str]]) -> None:
    email, _ = user()
    for n in range(3):
        deliver(grid, email, f"message {n}")
    wire = rev2(grid, email)
    wire.ok("SELECT INBOX")
    uids = [int(u) for u in re.findall(rb"UID (\d+)", b"".join(wire.ok("FETCH 1:* (UID)")))]
    assert wire.search("SEARCH ALL") == b"* ESEARCH (TAG) ALL 1:3\r\n"
    assert wire.search("UID SEARCH 2:3") == f"* ESEARCH (TAG) UID ALL {uids[1]}:{uids[2]}\r\n".encode()
    assert wire.search("SEARCH FLAGGED") == b"* ESEARCH (TAG)\r\n"        # no match: no ALL
    assert wire.search("SEARCH RETURN (COUNT) ALL") == b"* ESEARCH (TAG) COUNT 3\r\n"
    for key in ("NEW", "OLD", "RECENT", "NOT (SEEN RECENT)"):
        assert b"BAD NEW, OLD and RECENT are not in IMAP4rev2" in wire.run(f"SEARCH {key}")[-1]
    assert b"BAD STATUS RECENT is not in IMAP4rev2" in wire.run("STATUS INBOX (MESSAGES RECENT)")[-1]
    wire.close()


def test_search_save_and_the_dollar_set(grid: Grid, user: Callable[[], tuple[str, str]]) -> None:
    email, _ = user()
    for n in range(4):
        deliver(grid, email, f"saved {n}")
    wire = rev2(grid, email)
    wire.ok("SELECT INBOX")
    wire.ok("STORE 2,4 +FLAGS.SILENT (\\Flagged)")
    assert wire.search("SEARCH RETURN (SAVE) FLAGGED") is None               # SAVE alone: no ESEARCH
    fetched = wire.ok("FETCH $ (FLAGS)")
    assert [line.split(b" ")[1] for line in fetched] == [b"2", b"4"]
    assert wire.search("SEARCH $ SEEN") == b"* ESEARCH (TAG)\r\n"
    assert wire.search("SEARCH RETURN (SAVE MIN) FLAGGED") == b"* ESEARCH (TAG) MIN 2\r\n"
    assert [line.split(b" ")[1] for line in wire.ok("FETCH $ (UID)")] == [b"2"]
    assert b"BAD" in wire.run("SEARCH RETURN (SAVE) NEW")[-1]               # failed: $ is empty now
    assert wire.ok("FETCH $ (UID)") == []
    wire.close()


def test_status_size_and_deleted(grid: Grid, user: Callable[[], tuple[str, str]]) -> None:
    email, _ = user()
    for n in range(3):
        deliver(grid, email, f"sized {n}", "x" * (100 * n))
    wire = rev2(grid, email)
    wire.ok("SELECT INBOX")
    sizes = [int(s) for s in re.findall(rb"RFC822.SIZE (\d+)", b"".join(wire.ok("FETCH 1:* (RFC822.SIZE)")))]
    wire.ok("STORE 1,3 +FLAGS.SILENT (\\Deleted)")
    assert wire.ok("STATUS INBOX (MESSAGES SIZE DELETED)") == [
        f"* STATUS INBOX (MESSAGES 3 SIZE {sum(sizes)} DELETED 2)\r\n".encode()]
    wire.ok("EXPUNGE")
    assert wire.ok("STATUS INBOX (DELETED SIZE)") == [f"* STATUS INBOX (DELETED 0 SIZE {sizes[1]})\r\n".encode()]
    wire.close()


def test_rev2_list_nonexistent_subscribed_status_and_utf8_names(grid: Grid,
                                                              user: Callable[[], tuple[str, str]]) -> None:
    email, user_id = user()
    grid.mail.CreateFolder(mail_pb2.CreateFolderRequest(user_id=user_id, name="Work/Reports"), timeout=30)
    wire = rev2(grid, email)
    listed = wire.ok('LIST "" "*"')
    assert b'* LIST (\\NonExistent \\HasChildren) "/" "Work"\r\n' in listed
    assert b'* LIST (\\HasNoChildren) "/" "Work/Reports"\r\n' in listed
    wire.ok('CREATE "Café"'.encode())
    subscribed = wire.ok(b'LIST (SUBSCRIBED) "" "Caf*" RETURN (STATUS (MESSAGES SIZE))')
    assert subscribed == ['* LIST (\\HasNoChildren \\Subscribed) "/" "Café"\r\n'.encode(),
                          '* STATUS "Café" (MESSAGES 0 SIZE 0)\r\n'.encode()]
    assert b"* 0 EXISTS\r\n" in wire.ok('SELECT "Café"'.encode())
    wire.close()
    imap = imaplib.IMAP4(grid.host, grid.imap_port, timeout=30)   # a rev1 session sees modified UTF-7
    imap.login(email, PASSWORD)
    assert b'(\\HasNoChildren) "/" "Caf&AOk-"' in imap.list()[1]
    imap.logout()


def _deliver_raw(grid: Grid, email: str, raw: bytes) -> None:
    grid.mail.Deliver(mail_pb2.DeliverRequest(entry_id=new_entry_id(), raw=raw, recipients=[email]), timeout=30)


def test_binary_fetch_decodes_the_transfer_encoding(grid: Grid, user: Callable[[], tuple[str, str]]) -> None:
    email, _ = user()
    payload = bytes(range(256))
    raw = (f"From: carol@example.org\r\nTo: {email}\r\nSubject: parts\r\nMIME-Version: 1.0\r\n"
           'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
           "--b\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
           "caf=C3=A9 =\r\nau lait\r\n"
           "--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
           + base64.encodebytes(payload).decode().replace("\n", "\r\n") +
           "--b\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: x-rot13\r\n\r\nuryyb\r\n"
           "--b--\r\n").encode()
    _deliver_raw(grid, email, raw)
    wire = rev2(grid, email)
    wire.ok("SELECT INBOX")
    text = b"".join(wire.ok("FETCH 1 (BINARY.PEEK[1] BINARY.SIZE[1])"))
    assert "BINARY[1] {13}\r\ncafé au lait".encode() in text and b"BINARY.SIZE[1] 13" in text
    data = b"".join(wire.ok("FETCH 1 (BINARY.SIZE[2] BINARY.PEEK[2])"))
    assert b"BINARY.SIZE[2] 256" in data
    assert b"BINARY[2] ~{256}\r\n" + payload in data                       # NUL in it: literal8
    assert b"BINARY[2]<250> {6}\r\n" + payload[250:] in b"".join(wire.ok("FETCH 1 BINARY.PEEK[2]<250.10>"))
    assert b" NO [UNKNOWN-CTE] " in wire.run("FETCH 1 BINARY.PEEK[3]")[-1]
    far = b"".join(wire.ok("FETCH 1 BINARY.PEEK[2]<5000000000.4294967296>"))     # number64 partials
    assert b"BINARY[2]<5000000000> {0}\r\n" in far
    wire.close()


def test_a_large_nonsynchronizing_literal_and_sasl_ir(grid: Grid, user: Callable[[], tuple[str, str]]) -> None:
    """LITERAL+ (which we offer, a superset of rev2's LITERAL-) takes a {n+} over 4096 octets
    without a continuation; AUTHENTICATE PLAIN takes its initial response on the command line."""
    email, _ = user()
    wire = Wire(grid)
    assert b"SASL-IR" in wire.greeting and b"IMAP4rev2" in wire.greeting
    token = base64.b64encode(f"\0{email}\0{PASSWORD}".encode()).decode()
    assert wire.run(f"AUTHENTICATE PLAIN {token}")[-1].startswith(b"t1 OK")
    assert wire.ok("ENABLE IMAP4rev2") == [b"* ENABLED IMAP4rev2\r\n"]
    body = b"Subject: big\r\n\r\n" + b"y" * 6000 + b"\r\n"
    answer = wire.run(b"APPEND INBOX {%d+}\r\n" % len(body) + body)
    assert len(answer) == 1 and answer[0].startswith(b"t3 OK [APPENDUID ")      # no "+ Ready" before it
    assert b"* 1 EXISTS\r\n" in wire.ok("SELECT INBOX")
    assert b"RFC822.SIZE %d" % len(body) in b"".join(wire.ok("FETCH 1 RFC822.SIZE"))
    wire.close()


def test_imapclient_after_enable(grid: Grid, user: Callable[[], tuple[str, str]]) -> None:
    """imapclient as a rev2 client: ENABLE, STATUS SIZE/DELETED, BINARY (it sends no UTF-8 names:
    their bytes are checked over the raw socket above)."""
    email, _ = user()
    deliver(grid, email, "for imapclient", "plain words")
    imap = IMAPClient(grid.host, port=grid.imap_port, ssl=False, timeout=30)
    try:
        imap.login(email, PASSWORD)
        assert imap.has_capability("IMAP4rev2")
        assert imap.enable("IMAP4rev2") == [b"IMAP4rev2"]
        imap.select_folder("INBOX")
        imap.add_flags([1], [b"\\Deleted"], silent=True)
        size = imap.fetch([1], ["RFC822.SIZE"])[1][b"RFC822.SIZE"]
        assert imap.folder_status("INBOX", ["SIZE", "DELETED"]) == {b"SIZE": size, b"DELETED": 1}
        body = imap.fetch([1], ["BINARY.PEEK[1]"])[1][b"BINARY[1]"]
        assert body.startswith(b"plain words")
    finally:
        imap.logout()
