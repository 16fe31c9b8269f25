"""The router's mailbox order against real storage nodes (gRPC servers in this process)
while a ring change is pending: a round needs W of the user's new owners as well as W of
its old ones; a router that does not know the change is refused by a fenced node, learns
the pending ring from the refusal and orders with joint quorums; a new owner's pull of a
range brings the order with it."""
from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import pytest

from router.errors import QuorumFailure
from router.mailbox_order import MailboxOrder
from router.nodes import NodePool
from router.replicas import Consistency, Replicas
from router.ring import NodeInfo, Ring
from tests.unit.storage_node.test_replication_rpcs import WHOLE, Running, free_port, run
from tidings.v1 import storage_pb2

Intent = storage_pb2.OrderIntent


def rings(ports: dict[str, int]) -> tuple[Ring, Ring]:
    nodes = [NodeInfo(i, f"127.0.0.1:{ports[i]}", f"zone-{i}") for i in ("1", "2", "3")]
    old = Ring(nodes)
    return old, old.with_node(NodeInfo("4", f"127.0.0.1:{ports['4']}", "zone-4"))


def moving_user(old: Ring, new: Ring) -> tuple[str, set[str], set[str]]:
    """A user whose owners change: its id, old owners, new owners."""
    for i in range(500):
        user = f"{i:016x}"
        before = {x.node_id for x in old.preference_list(user)}
        after = {x.node_id for x in new.preference_list(user)}
        if before != after:
            return user, before, after
    raise AssertionError("no user moves")


@asynccontextmanager
async def nodes(root: Path, ports: dict[str, int], up: set[str]) -> AsyncIterator[dict[str, Running]]:
    async with AsyncExitStack() as stack:
        yield {i: await stack.enter_async_context(Running(root, f"n{i}", ports[i])) for i in sorted(up)}


def created(message_id: str) -> list[storage_pb2.OrderIntent]:
    return [Intent(kind=Intent.CREATED, message_id=message_id, folder_id="inbox", thread_id="t")]


def test_a_pending_change_needs_the_new_owners_too(tmp_path: Path) -> None:
    ports = {i: free_port() for i in "1234"}
    old, new = rings(ports)
    user, before, after = moving_user(old, new)
    (staying_down, *_) = sorted(before & after)
    up = before - {staying_down}                     # W of the old owners, one of the new ones

    async def body() -> None:
        async with nodes(tmp_path, ports, up):
            replicas = Replicas(old, NodePool(), Consistency(timeout=2.0))
            order = MailboxOrder(replicas)
            assert await order.append(user, created("a")) == 1          # old owners alone: enough
            replicas.pending = new
            with pytest.raises(QuorumFailure):
                await order.append(user, created("b"))

    run(body)


def test_an_unaware_router_learns_the_pending_ring_from_a_fence(tmp_path: Path) -> None:
    ports = {i: free_port() for i in "1234"}
    old, new = rings(ports)
    user, _, after = moving_user(old, new)
    fence = storage_pb2.OrderFence(ring=storage_pb2.RingMap(version=1, json=old.to_json()),
                                   pending=storage_pb2.RingMap(version=2, json=new.to_json()))

    async def body() -> None:
        async with nodes(tmp_path, ports, set("1234")) as running:
            for node in running.values():
                assert await node.stub.SetOrderFence(fence) == fence
            stale = await running["1"].stub.OrderAccept(storage_pb2.OrderAcceptRequest(
                user_id=user, slot=1, ballot=1, value=storage_pb2.OrderValue(intents=created("x"))))
            assert stale.stale_config and not stale.accepted and stale.fence == fence
            order = MailboxOrder(Replicas(old, NodePool(), Consistency(timeout=2.0)))
            assert await order.append(user, created("a")) == 1
            assert order.rings.config().pending == new
            assert {x.node_id for x in order.acceptors(user)} == {x.node_id for x in old.preference_list(user)} | after

    run(body)


def test_a_pulled_range_brings_the_mailbox_order(tmp_path: Path) -> None:
    ports = {i: free_port() for i in "12"}

    async def body() -> None:
        async with nodes(tmp_path, ports, {"1", "2"}) as running:
            source, receiver = running["1"], running["2"]
            slots = [storage_pb2.OrderAcceptedSlot(slot=s, value=storage_pb2.OrderValue(
                intents=created(f"m{s}"), time_ms=1_700_000_000_000)) for s in (1, 2, 3)]
            for user in ("00112233aabbccdd", "ffeeddccbbaa9988"):
                await source.stub.OrderCommit(storage_pb2.OrderCommitRequest(user_id=user, slots=slots))
            answer = await receiver.stub.PullRanges(storage_pb2.PullRangesRequest(
                source_address=source.address, ranges=[WHOLE], order_only=True))
            assert answer.order_users == 2 and answer.items == 0
            for user in ("00112233aabbccdd", "ffeeddccbbaa9988"):
                request = storage_pb2.OrderChangesRequest(user_id=user, since=0)
                theirs, mine = await source.stub.OrderChanges(request), await receiver.stub.OrderChanges(request)
                assert mine == theirs and mine.modseq == 3

    run(body)
