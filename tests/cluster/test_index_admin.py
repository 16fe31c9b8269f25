"""`tidings index rebuild|check` against the shared cluster: the index matches the stored
messages on every replica, and a rebuild leaves search answering the same."""
from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

from tests.cluster.grid import Grid
from tidings.v1 import mail_pb2
from tidings_runtime.ids import new_entry_id


def tidings(grid: Grid, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tidings_cli", "--router", grid.router_address, *args],
                          capture_output=True, text=True, timeout=120)


def test_check_and_rebuild_one_user_and_all(grid: Grid, new_user: Callable[[str], str]) -> None:
    email = new_user("indexed")
    raw = (f"From: a@outside.test\r\nTo: {email}\r\nSubject: kumquat season\r\n\r\nripe kumquats\r\n").encode()
    grid.mail.Deliver(mail_pb2.DeliverRequest(entry_id=new_entry_id(), raw=raw, recipients=[email]), timeout=30)
    user_id = grid.mail.CheckRecipient(mail_pb2.CheckRecipientRequest(address=email)).account.user_id
    before = grid.mail.Search(mail_pb2.SearchRequest(user_id=user_id, query="kumquats"), timeout=30)

    checked = tidings(grid, "index", "check", email)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.count("checked 1 messages of 1 users") == 3

    rebuilt = tidings(grid, "index", "rebuild", "--all")
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    after = grid.mail.Search(mail_pb2.SearchRequest(user_id=user_id, query="kumquats"), timeout=30)
    assert [m.id for m in after.messages] == [m.id for m in before.messages] and after.total == 1
    assert tidings(grid, "index", "check", "--all").returncode == 0


def test_index_command_needs_exactly_one_target(grid: Grid) -> None:
    assert tidings(grid, "index", "check").returncode == 2
