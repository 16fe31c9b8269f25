"""`tidings index rebuild` with a blob gone from the store, on a grid of its own: the rebuild
goes on past the message whose body it cannot read (messages after it in time order are
indexed), indexes that one by its record (found by subject, not by its body), names it and
exits 1 with the count; `index check` then reports only the missing blob; with the blob back,
a rebuild indexes its body again and exits 0."""
from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import Iterator
from email.message import EmailMessage

import pytest

from storage_node.engine import INLINE_BODY_LIMIT
from tests.cluster.grid import Grid, running
from tidings.v1 import mail_pb2
from tidings_runtime.ids import new_entry_id

EMAIL = "rebuilt@example.test"


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Grid]:
    with running(tmp_path_factory.mktemp("rebuild-blob"), edges=()) as grid:
        yield grid


def tidings(grid: Grid, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tidings_cli", "--router", grid.router_address, *args],
                          capture_output=True, text=True, timeout=300)


def mail(subject: str, body: str) -> bytes:
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = "sender@outside.test", EMAIL, subject
    m.set_content(body)
    return m.as_bytes()


def found(grid: Grid, user_id: str, query: str) -> list[str]:
    answer = grid.mail.Search(mail_pb2.SearchRequest(user_id=user_id, query=query, limit=50), timeout=30)
    return sorted(m.subject for m in answer.messages)


def test_a_missing_blob_is_skipped_and_reported_and_the_rebuild_finishes(grid: Grid) -> None:
    user_id = grid.add_user(EMAIL).user_id
    big = mail("zeppelin manifest", "airship cargo\n" + "x" * (INLINE_BODY_LIMIT + 1000))
    for raw in (mail("before", "quince jam"), big, mail("after one", "quince tart"), mail("after two", "quince pie")):
        grid.mail.Deliver(mail_pb2.DeliverRequest(entry_id=new_entry_id(), raw=raw, recipients=[EMAIL]), timeout=30)
    assert found(grid, user_id, "airship") == ["zeppelin manifest"]
    blob = grid.layout.base_dir / "blobs"
    ref = hashlib.sha256(big).hexdigest()
    path = blob / ref[:2] / ref[2:4] / ref
    held = path.read_bytes()
    path.unlink()

    rebuilt = tidings(grid, "index", "rebuild", EMAIL)
    assert rebuilt.returncode == 1, rebuilt.stdout + rebuilt.stderr
    assert rebuilt.stdout.count("rebuilt 4 messages of 1 users") == 3                 # every replica finished
    assert rebuilt.stdout.count("blob missing, indexed without its body") == 3
    assert "3 messages indexed without their body (blob missing)" in rebuilt.stderr
    assert found(grid, user_id, "quince") == ["after one", "after two", "before"]       # past the missing one
    assert found(grid, user_id, "zeppelin") == ["zeppelin manifest"]                  # its record indexed
    assert found(grid, user_id, "airship") == []                                      # its body not
    checked = tidings(grid, "index", "check", EMAIL)
    problems = [line for line in checked.stdout.splitlines() if line.startswith("  ")]
    assert checked.returncode == 1 and len(problems) == 3
    assert all(line.endswith("blob missing, body not checked") for line in problems), problems

    path.write_bytes(held)
    again = tidings(grid, "index", "rebuild", EMAIL)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "blob missing" not in again.stdout + again.stderr
    assert found(grid, user_id, "airship") == ["zeppelin manifest"]
    assert tidings(grid, "index", "check", EMAIL).returncode == 0
