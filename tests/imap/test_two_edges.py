"""Two IMAP clients on one mailbox through two IMAP edges and two routers (real processes): they
see the same UIDs, flags and expunges, and a storage node killed with SIGKILL meanwhile changes
nothing either of them sees (issue 20)."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from imapclient import IMAPClient

from tests.cluster.grid import PASSWORD, Grid, running
from tidings.v1 import mail_pb2
from tidings_client import new_entry_id

pytestmark = pytest.mark.timeout(120)
EMAIL = "shared@example.test"


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Grid]:
    with running(Path(tmp_path_factory.mktemp("two-imap")), edges=("imap",), virus_scan=False) as g:
        yield g


def deliver(grid: Grid, subject: str) -> None:
    raw = f"From: c@example.org\r\nTo: {EMAIL}\r\nSubject: {subject}\r\n\r\nbody\r\n".encode()
    grid.mail.Deliver(mail_pb2.DeliverRequest(entry_id=new_entry_id(), raw=raw, recipients=[EMAIL]), timeout=30)


def view(imap: IMAPClient) -> dict[int, tuple[bytes, ...]]:
    """UID -> flags of INBOX, as this client sees it now (a NOOP first takes the updates)."""
    imap.noop()
    uids = imap.search("ALL")
    return {uid: tuple(sorted(data[b"FLAGS"])) for uid, data in imap.fetch(uids, ["FLAGS"]).items()} if uids else {}


def test_two_edges_two_routers_and_a_killed_node_agree(grid: Grid) -> None:
    grid.add_user(EMAIL)
    second_port = grid.start_imap(grid.start_router())
    for i in range(5):
        deliver(grid, f"shared {i}")
    first = IMAPClient(grid.host, port=grid.imap_port, ssl=False, timeout=30)
    second = IMAPClient(grid.host, port=second_port, ssl=False, timeout=30)
    for imap in (first, second):
        imap.login(EMAIL, PASSWORD)
    selected = [imap.select_folder("INBOX") for imap in (first, second)]
    assert selected[0][b"UIDVALIDITY"] == selected[1][b"UIDVALIDITY"]
    assert view(first) == view(second) and len(view(first)) == 5

    first.add_flags([1, 2], [b"\\Flagged"])
    second.add_flags([3], [b"\\Seen"])
    assert view(first) == view(second)
    grid.kill_storage(2)
    try:
        second.delete_messages([4])
        second.expunge()
        first.add_flags([5], [b"\\Seen"])
        deliver(grid, "while a node is down")
        after = view(first)
        assert after == view(second)
        assert 4 not in after and 6 in after and b"\\Flagged" in after[1] and b"\\Seen" in after[3]
    finally:
        grid.start_storage(2)
    assert view(first) == view(second)
    for imap in (first, second):
        imap.logout()
