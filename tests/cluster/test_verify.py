"""`tidings verify` and `tidings fsck --repair` on a real cluster: clean after deliveries (one
with a large body, a blob in the shared directory); a folder counter corrupted on node 3's disk
(written while the node is stopped: verify then exits 2, node 3 down) is found (exit 1) by a
verify run the moment node 3 is back, before the router's channel to it reconnects, and
recomputed by fsck (exit 0, then verify clean); a blob deleted from the blob directory is found
on every node and, not repairable from replicas, left by fsck (exit 1), which rebuilds the index
with that message indexed without its body (not found by its body, the others are) and does
not rebuild again while only the blob is wrong; with the blob put back verify finds the index
short of its body and fsck indexes it (exit 0)."""
from __future__ import annotations

import contextlib
import hashlib
import io
import subprocess
import sys
from collections.abc import Iterator
from email.message import EmailMessage

import pytest

from storage_node import codec, keys
from storage_node.engine import INLINE_BODY_LIMIT
from storage_node.model import FolderCounts
from storage_node.server import open_engine
from storage_node.settings import Settings
from tests.cluster.grid import Grid, running
from tidings.v1 import mail_pb2
from tidings_cli.verify import run_checks
from tidings_runtime.ids import new_entry_id


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Grid]:
    with running(tmp_path_factory.mktemp("verify"), edges=()) as grid:
        yield grid


def tidings(grid: Grid, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tidings_cli", "--router", grid.router_address, *args],
                          capture_output=True, text=True, timeout=600)


def mail(to: str, subject: str, size: int = 0) -> bytes:
    m = EmailMessage()
    m["From"] = "sender@outside.test"
    m["To"] = to
    m["Subject"] = subject
    m.set_content("hello\n" + "x" * size)
    return m.as_bytes()


def deliver(grid: Grid, raw: bytes, email: str) -> None:
    grid.mail.Deliver(mail_pb2.DeliverRequest(entry_id=new_entry_id(), raw=raw, recipients=[email]), timeout=30)


def subjects(grid: Grid, user_id: str, query: str) -> list[str]:
    answer = grid.mail.Search(mail_pb2.SearchRequest(user_id=user_id, query=query, limit=50), timeout=30)
    return sorted(m.subject for m in answer.messages)


def test_verify_finds_injected_problems_and_fsck_repairs_what_replicas_can(grid: Grid) -> None:
    email = "dora@example.test"
    user_id = grid.add_user(email).user_id
    for n in range(5):
        deliver(grid, mail(email, f"small {n}"), email)
    big = mail(email, "large", INLINE_BODY_LIMIT + 1000)
    deliver(grid, big, email)
    clean = tidings(grid, "verify")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "node 3: 6 messages of 1 users, 1 blob refs checked" in clean.stdout

    # a counter corrupted on node 3's disk
    base = grid.layout.base_dir
    grid.kill_storage(3)
    engine = open_engine(base / "node3", base / "blobs", Settings())
    inbox = keys.folder(user_id, keys.SYSTEM_FOLDERS["inbox"])
    assert codec.decode_counts(engine.get(keys.CF_FOLDERS, inbox)) == FolderCounts(6, 6)
    txn = engine.new_txn()
    txn.put(keys.CF_FOLDERS, inbox, codec.encode_counts(FolderCounts(40, 2)))
    engine.commit(txn)
    engine.close()
    down = tidings(grid, "verify")
    assert down.returncode == 2 and "NOT CHECKED node 3" in down.stderr
    assert "NOT CHECKED replicas: nodes 3 did not answer" in down.stderr
    assert "NOT CHECKED index: node 3: UNAVAILABLE" in down.stderr
    grid.start_storage(3)
    # at once, in this process (a CLI's start would give the router's channel time to reconnect):
    # the router cannot reach node 3 yet, node 3 answers its health check
    with contextlib.redirect_stdout(io.StringIO()):
        at_once = run_checks(grid.router_address, repair=False)
    assert at_once.unchecked == [] and at_once.exit_code == 1
    counters = (f"node 3: user {user_id} folder inbox: counters say 40 messages, 2 unread; "
                "the records hold 6, 6 unread")
    assert at_once.problems == [counters]
    found = tidings(grid, "verify")
    assert found.returncode == 1, found.stdout + found.stderr
    assert f"PROBLEM {counters}" in found.stdout
    fixed = tidings(grid, "fsck", "--repair")
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert "FIXED node 3: user" in fixed.stdout
    after = tidings(grid, "verify")
    assert after.returncode == 0, after.stdout + after.stderr

    # a blob gone from the shared directory: every node refers to it, no replica can bring it back
    ref = hashlib.sha256(big).hexdigest()
    blob = base / "blobs" / ref[:2] / ref[2:4] / ref
    held = blob.read_bytes()
    blob.unlink()
    gone = tidings(grid, "verify")
    assert gone.returncode == 1
    missing = [line for line in gone.stdout.splitlines() if line.endswith(f"blob {ref} is missing from the store")]
    assert [line.split(":")[0] for line in missing] == [f"PROBLEM node {n}" for n in (1, 2, 3)]
    assert all(f"user {user_id} message " in line for line in missing)
    left = tidings(grid, "fsck", "--repair")
    assert left.returncode == 1 and f"blob {ref} is missing" in left.stdout
    without_body = [line for line in left.stdout.splitlines()
                    if line.endswith("blob missing, indexed without its body")]
    assert [line.split(":")[:2] for line in without_body] == [["PROBLEM index", f" node {n}"] for n in (1, 2, 3)]
    assert all(f"user {user_id}: message " in line for line in without_body)
    assert "body not checked" not in left.stdout and "FIXED index: node" in left.stdout
    assert "3 messages indexed without their body (blob missing)" in left.stdout
    everyone = ["large", *(f"small {n}" for n in range(5))]
    assert subjects(grid, user_id, "large") == ["large"]          # by its record
    assert subjects(grid, user_id, "hello") == everyone[1:]       # not by its body; the others by theirs
    again = tidings(grid, "fsck", "--repair")                  # only the blob wrong: no rebuild again
    assert again.returncode == 1 and "FIXED" not in again.stdout
    assert again.stdout.count("index: node 1: 6 messages of 1 users checked") == 1

    blob.write_bytes(held)
    short = tidings(grid, "verify")                            # the index lacks the body now there
    assert short.returncode == 1 and "PROBLEM index: node 1: user" in short.stdout
    assert "blob" not in short.stdout.replace("blob refs checked", "")
    whole = tidings(grid, "fsck", "--repair")
    assert whole.returncode == 0, whole.stdout + whole.stderr
    assert subjects(grid, user_id, "hello") == everyone
    assert tidings(grid, "verify").returncode == 0
