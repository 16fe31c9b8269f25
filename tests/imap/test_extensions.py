"""IMAP extensions against the real cluster (storage nodes, router, the IMAP edge on port 0),
driven by imaplib and imapclient: the bound on one user's sessions at once (the edge's default,
20); THREAD and UID THREAD from the router's threads (a reply threaded by its In-Reply-To)."""
from __future__ import annotations

import imaplib
import itertools
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
