"""IMAP extensions against the real cluster (storage nodes, router, the IMAP edge on port 0),
driven by imaplib: the bound on one user's sessions at once (the edge's default, 20)."""
from __future__ import annotations

import imaplib
import itertools
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.cluster.grid import PASSWORD, Grid, running

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
