"""Read repair on real processes: a storage node misses a delivery and a flag change
while it is down; reads through the router after it returns bring it up to date. Hints
and anti-entropy would repair it too, so this cluster runs without scheduled anti-entropy
and the hints are collected first. A quorum read calls R=2 of the 3 replicas, in the
router's fixed order for the user, so the stale one may be the replica never called: the
reads are made with one of the fresh replicas down (`reaching`), so that they call it."""
from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import EmailMessage

import grpc
import pytest

from tests.cluster.grid import Grid, running
from tidings.v1 import mail_pb2, storage_pb2, storage_pb2_grpc
from tidings_runtime.ids import new_entry_id

RECIPIENT = "repair@example.test"
RECONNECT_BOUND = 1.5  # router/nodes.py caps reconnect backoff at 1 s
REPAIR_BOUND = 10.0
STALE = 2


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Grid]:
    with running(tmp_path_factory.mktemp("rr"), edges=(), router_args=("--anti-entropy-interval", "0")) as grid:
        yield grid


def raw(subject: str) -> bytes:
    m = EmailMessage()
    m["From"] = "sender@outside.test"
    m["To"] = RECIPIENT
    m["Subject"] = subject
    m["Message-ID"] = f"<{subject}@outside.test>"
    m.set_content(f"body of {subject}\n")
    return m.as_bytes()


def deliver(grid: Grid, subject: str) -> str:
    answer = grid.mail.Deliver(mail_pb2.DeliverRequest(entry_id=new_entry_id(), raw=raw(subject),
                                                       recipients=[RECIPIENT]), timeout=30)
    return answer.deliveries[0].id


def node_view(node: storage_pb2_grpc.StorageNodeStub, user_id: str, ids: list[str]) -> dict[str, bool]:
    """Which of `ids` the node holds live, with their unread flag."""
    answer = node.GetSummaries(storage_pb2.NodeMessageRefs(user_id=user_id, ids=ids), timeout=5)
    return {s.id: s.unread for s in answer.messages}


def drop_hints(grid: Grid) -> None:
    """Collect every hint held for the stale node (a grace period of 1 ms), once written."""
    time.sleep(0.5)  # the router hands hints over in the background
    for index in (1, 2, 3):
        if index != STALE:
            with grpc.insecure_channel(grid.layout.storage_address(index)) as channel:
                storage_pb2_grpc.StorageNodeStub(channel).CollectGarbage(storage_pb2.GcRequest(grace_ms=1), timeout=10)


@contextmanager
def reaching(grid: Grid, stale: int) -> Iterator[None]:
    """Reads inside call the ``stale`` node: one of the other two is down meanwhile (a read
    calls R=2, and another one when a call fails), and up again after."""
    fresh = next(index for index in (1, 2, 3) if index != stale)
    grid.kill_storage(fresh)
    try:
        yield
    finally:
        grid.start_storage(fresh)
        time.sleep(RECONNECT_BOUND)


def test_reads_repair_a_replica_that_was_down(grid: Grid) -> None:
    user_id = grid.add_user(RECIPIENT).user_id
    with grpc.insecure_channel(grid.layout.storage_address(STALE)) as channel:
        node = storage_pb2_grpc.StorageNodeStub(channel)
        early = deliver(grid, "early")
        deadline = time.monotonic() + REPAIR_BOUND  # the third replica's write may still be on its way
        while early not in node_view(node, user_id, [early]):
            assert time.monotonic() < deadline, "node 2 never got the first message"
            time.sleep(0.1)

        grid.kill_storage(STALE)
        late = deliver(grid, "late")
        grid.mail.UpdateMessage(mail_pb2.UpdateRequest(user_id=user_id, id=early, unread=False), timeout=30)
        drop_hints(grid)
        grid.start_storage(STALE)
        time.sleep(RECONNECT_BOUND)

        assert node_view(node, user_id, [early, late]) == {early: True}  # stale before any read
        deadline = time.monotonic() + REPAIR_BOUND
        with reaching(grid, STALE):
            detail = read_until_repaired(grid, node, user_id, early, late, deadline)

        held = node.GetMessage(storage_pb2.NodeMessageRef(user_id=user_id, id=late), timeout=5)
        assert not held.tombstone and b"body of late" in held.raw
        assert held.summary.thread_id == detail.summary.thread_id


def read_until_repaired(grid: Grid, node: storage_pb2_grpc.StorageNodeStub, user_id: str, early: str, late: str,
                        deadline: float) -> mail_pb2.MessageDetail:
    """Read the two messages through the router until ``node`` holds them as the others do
    (repairs are sent in the background)."""
    while True:
        detail = grid.mail.GetMessage(mail_pb2.MessageRef(user_id=user_id, id=late), timeout=10)
        assert detail.summary.id == late
        listing = grid.mail.ListMessages(mail_pb2.ListMessagesRequest(user_id=user_id, folder_id="inbox"),
                                         timeout=10)
        assert {s.id: s.unread for s in listing.messages} == {early: False, late: True}
        if node_view(node, user_id, [early, late]) == {early: False, late: True}:
            return detail
        assert time.monotonic() < deadline, f"node 2 not repaired: {node_view(node, user_id, [early, late])}"
        time.sleep(0.2)
