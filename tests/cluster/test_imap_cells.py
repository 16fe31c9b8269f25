"""IMAP's flags and keywords (answered, draft, deleted, keywords) replicate as unread and starred
do, on real processes: a node down during the change gets them by hint, by read repair (the
whole keyword set) and by anti-entropy (whose digests see them), and a replica holding the same
version with other cells is brought to one copy. No scheduled anti-entropy: each way is tried
alone."""
from __future__ import annotations

import time
from collections.abc import Iterator
from email.message import EmailMessage

import grpc
import pytest

from tests.cluster.grid import Grid, running
from tests.cluster.test_read_repair import drop_hints, reaching
from tidings.v1 import mail_pb2, storage_pb2, storage_pb2_grpc, types_pb2
from tidings_runtime.ids import new_entry_id

RECIPIENT = "cells@example.test"
STALE = 2
BOUND = 15.0


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Grid]:
    with running(tmp_path_factory.mktemp("cells"), edges=(), router_args=("--anti-entropy-interval", "0")) as grid:
        yield grid


@pytest.fixture(scope="module")
def user_id(grid: Grid) -> str:
    return grid.add_user(RECIPIENT).user_id


def deliver(grid: Grid, subject: str) -> str:
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = "sender@outside.test", RECIPIENT, subject
    m.set_content(f"body of {subject}\n")
    answer = grid.mail.Deliver(mail_pb2.DeliverRequest(entry_id=new_entry_id(), raw=m.as_bytes(),
                                                       recipients=[RECIPIENT]), timeout=30)
    return answer.deliveries[0].id


def cells(summary: types_pb2.MessageSummary) -> tuple[bool, bool, bool, list[str]]:
    return summary.answered, summary.draft, summary.deleted, sorted(summary.keywords)


def on_node(grid: Grid, index: int, user_id: str, message_id: str) -> tuple[bool, bool, bool, list[str]] | None:
    with grpc.insecure_channel(grid.layout.storage_address(index)) as channel:
        answer = storage_pb2_grpc.StorageNodeStub(channel).GetSummaries(
            storage_pb2.NodeMessageRefs(user_id=user_id, ids=[message_id]), timeout=5)
    return cells(answer.messages[0]) if answer.messages else None


def wait_on_all(grid: Grid, user_id: str, message_id: str, want: tuple[bool, bool, bool, list[str]]) -> None:
    deadline = time.monotonic() + BOUND
    while True:
        held = {i: on_node(grid, i, user_id, message_id) for i in (1, 2, 3)}
        if all(h == want for h in held.values()):
            return
        assert time.monotonic() < deadline, f"replicas hold {held}, not {want}"
        time.sleep(0.2)


def update(grid: Grid, user_id: str, message_id: str, **cells: object) -> types_pb2.MessageSummary:
    return grid.mail.UpdateMessage(mail_pb2.UpdateRequest(user_id=user_id, id=message_id, **cells),  # type: ignore[arg-type]
                                   timeout=30)


def test_the_router_sets_and_clears_them(grid: Grid, user_id: str) -> None:
    message_id = deliver(grid, "set")
    summary = update(grid, user_id, message_id, answered=True, add_keywords=["$Forwarded", "$label1"])
    assert cells(summary) == (True, False, False, ["$Forwarded", "$label1"])
    summary = update(grid, user_id, message_id, draft=True, remove_keywords=["$LABEL1"])
    assert cells(summary) == (True, True, False, ["$Forwarded"])
    detail = grid.mail.GetMessage(mail_pb2.MessageRef(user_id=user_id, id=message_id), timeout=10)
    assert cells(detail.summary) == (True, True, False, ["$Forwarded"])
    with pytest.raises(grpc.RpcError) as refused:
        update(grid, user_id, message_id, add_keywords=["not an atom"])
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as refused:
        update(grid, user_id, message_id, add_keywords=[f"k{i}" for i in range(33)])
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    wait_on_all(grid, user_id, message_id, (True, True, False, ["$Forwarded"]))


def test_a_down_replica_gets_them_by_hint(grid: Grid, user_id: str) -> None:
    message_id = deliver(grid, "hinted")
    wait_on_all(grid, user_id, message_id, (False, False, False, []))
    grid.kill_storage(STALE)
    update(grid, user_id, message_id, deleted=True, add_keywords=["$Junk"])
    grid.start_storage(STALE)
    wait_on_all(grid, user_id, message_id, (False, False, True, ["$Junk"]))


def test_a_down_replica_gets_them_by_read_repair(grid: Grid, user_id: str) -> None:
    message_id = deliver(grid, "read-repaired")
    update(grid, user_id, message_id, add_keywords=["a"])
    wait_on_all(grid, user_id, message_id, (False, False, False, ["a"]))
    grid.kill_storage(STALE)
    update(grid, user_id, message_id, answered=True, add_keywords=["b"], remove_keywords=["a"])
    drop_hints(grid)
    grid.start_storage(STALE)
    time.sleep(1.5)
    assert on_node(grid, STALE, user_id, message_id) == (False, False, False, ["a"])   # stale before any read
    deadline = time.monotonic() + BOUND
    with reaching(grid, STALE):     # reads call R=2 of 3: with a fresh one down, they call the stale one
        while on_node(grid, STALE, user_id, message_id) != (True, False, False, ["b"]):
            assert time.monotonic() < deadline, "the stale replica was not repaired by reads"
            grid.mail.GetMessage(mail_pb2.MessageRef(user_id=user_id, id=message_id), timeout=10)
            time.sleep(0.2)


def test_anti_entropy_sees_them_and_ties_converge(grid: Grid, user_id: str) -> None:
    message_id = deliver(grid, "anti-entropy")
    wait_on_all(grid, user_id, message_id, (False, False, False, []))
    grid.kill_storage(STALE)
    update(grid, user_id, message_id, draft=True, add_keywords=["$label2"])
    drop_hints(grid)
    grid.start_storage(STALE)
    time.sleep(1.5)
    check = grid.admin.Repair(mail_pb2.RepairRequest(check_only=True), timeout=60)
    assert check.ranges_differing >= 1 and not check.converged
    report = grid.admin.Repair(mail_pb2.RepairRequest(), timeout=60)
    assert report.items_repaired >= 1, report
    assert grid.admin.Repair(mail_pb2.RepairRequest(check_only=True), timeout=60).converged
    wait_on_all(grid, user_id, message_id, (False, True, False, ["$label2"]))

    # The same version with other keywords on one replica (as a replica that missed an update,
    # then took a later one of other cells, would hold): the digests differ, one copy wins.
    with grpc.insecure_channel(grid.layout.storage_address(STALE)) as channel:
        node = storage_pb2_grpc.StorageNodeStub(channel)
        held = node.GetMessage(storage_pb2.NodeMessageRef(user_id=user_id, id=message_id), timeout=5)
        node.UpdateMessage(storage_pb2.UpdateMessageRequest(
            user_id=user_id, id=message_id, version=held.summary.version + 1,
            keywords=storage_pb2.KeywordSet(names=["$tie"])), timeout=5)
    for index in (1, 3):
        with grpc.insecure_channel(grid.layout.storage_address(index)) as channel:
            storage_pb2_grpc.StorageNodeStub(channel).UpdateMessage(storage_pb2.UpdateMessageRequest(
                user_id=user_id, id=message_id, version=held.summary.version + 1,
                keywords=storage_pb2.KeywordSet(names=["$other"])), timeout=5)
    assert not grid.admin.Repair(mail_pb2.RepairRequest(check_only=True), timeout=60).converged
    assert grid.admin.Repair(mail_pb2.RepairRequest(), timeout=60).items_repaired >= 1
    assert grid.admin.Repair(mail_pb2.RepairRequest(check_only=True), timeout=60).converged
    finals = [on_node(grid, i, user_id, message_id) for i in (1, 2, 3)]
    assert finals[0] == finals[1] == finals[2] and finals[0] is not None
    assert finals[0][3] in (["$tie"], ["$other"])
