"""The change feed's compaction on real processes: storage nodes that keep only a few change
rows per user answer a state below their low-water mark with FAILED_PRECONDITION
`cannot_calculate_changes` (JMAP's cannotCalculateChanges), while a recent state, and a
listing's state, still give every change after it."""
from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest

from tests.cluster.grid import Grid, running
from tidings.v1 import mail_pb2
from tidings_client.ids import new_entry_id

KEEP = 8
EMAIL = "compact@example.test"


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Grid]:
    keep = ("--order-keep-changes", str(KEEP))
    with running(tmp_path_factory.mktemp("compaction"), edges=(),
                 args={f"storage-{i}": keep for i in (1, 2, 3)}) as grid:
        yield grid


def deliver(grid: Grid, subject: str) -> str:
    raw = f"From: a@example.test\r\nTo: {EMAIL}\r\nSubject: {subject}\r\n\r\nhello\r\n".encode()
    answer = grid.mail.Deliver(mail_pb2.DeliverRequest(entry_id=new_entry_id(), raw=raw, recipients=[EMAIL]), timeout=30)
    return answer.deliveries[0].id


def test_an_old_state_must_resync_and_a_listing_state_still_serves(grid: Grid) -> None:
    user_id = grid.add_user(EMAIL).user_id
    ids = [deliver(grid, f"m{i}") for i in range(3 * KEEP)]
    with pytest.raises(grpc.RpcError) as old:
        grid.mail.Changes(mail_pb2.ChangesRequest(user_id=user_id, since=0), timeout=10)
    assert old.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "cannot_calculate_changes" in (old.value.details() or "")
    page = grid.mail.ListMessages(mail_pb2.ListMessagesRequest(user_id=user_id, folder_id="inbox", limit=100), timeout=10)
    assert page.state == 3 * KEEP and len(page.messages) == 3 * KEEP
    later = [deliver(grid, f"n{i}") for i in range(3)]
    since = grid.mail.Changes(mail_pb2.ChangesRequest(user_id=user_id, since=page.state), timeout=10)
    assert [c.id for c in since.changes] == later and since.new_state == page.state + 3 and not since.has_more
    assert ids[-1] not in {c.id for c in since.changes}
