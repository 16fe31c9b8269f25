"""A delivery's store riding its mailbox-order accept (router/mailbox_order.py): real storage
nodes on loopback, one MailboxOrder over them."""
from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest

from router.errors import InvalidArgument
from router.hints import HINTS_WRITTEN
from router.mailbox_order import MailboxOrder
from router.nodes import NodePool
from router.replicas import Consistency, Replicas
from tests.unit.router.test_order_joint import created, nodes, rings
from tests.unit.storage_node.fixtures import mid, raw_mail
from tests.unit.storage_node.test_replication_rpcs import free_port, run
from tidings.v1 import storage_pb2

USER = "00112233aabbccdd"


def store(n: int, user: str = USER, message_id: str | None = None) -> storage_pb2.StoreMessageRequest:
    return storage_pb2.StoreMessageRequest(user_id=user, id=message_id or mid(n), raw=raw_mail(f"riding {n}"),
                                           folder_id="inbox", unread=True, received_ms=1000 + n, version=1)


def test_each_acceptor_stores_the_messages_with_the_accept(tmp_path: Path) -> None:
    ports = {i: free_port() for i in "1234"}
    ring, _ = rings(ports)

    async def body() -> None:
        async with nodes(tmp_path, ports, set("123")) as running:
            order = MailboxOrder(Replicas(ring, NodePool(), Consistency(timeout=2.0)))
            modseqs = await asyncio.gather(*(order.append(USER, created(mid(n)), stores=[store(n)]) for n in (1, 2)))
            assert sorted(modseqs) == [2, 2]                    # both in one slot
            await asyncio.sleep(0.2)                           # the third acceptor's call ends too
            for node in running.values():
                for n in (1, 2):
                    held = await node.stub.GetMessage(storage_pb2.NodeMessageRef(user_id=USER, id=mid(n)))
                    assert held.raw == raw_mail(f"riding {n}")
                folder = await node.stub.OrderFolder(storage_pb2.OrderFolderRequest(user_id=USER, folder_id="inbox"))
                assert sorted(e.id for e in folder.entries) == [mid(1), mid(2)]

    run(body)


def test_a_refused_group_is_ordered_again_one_by_one(tmp_path: Path) -> None:
    ports = {i: free_port() for i in "1234"}
    ring, _ = rings(ports)

    async def body() -> None:
        async with nodes(tmp_path, ports, set("123")) as running:
            order = MailboxOrder(Replicas(ring, NodePool(), Consistency(timeout=2.0)))
            bad = store(2, message_id="not-an-id")
            results = await asyncio.gather(
                order.append(USER, created(mid(1)), stores=[store(1)]),
                order.append(USER, created("not-an-id"), stores=[bad]),
                order.append(USER, created(mid(3)), stores=[store(3)]), return_exceptions=True)
            assert isinstance(results[1], InvalidArgument)
            assert sorted(r for r in results if isinstance(r, int)) == [1, 2]   # the others, a slot each
            folder = await running["1"].stub.OrderFolder(storage_pb2.OrderFolderRequest(user_id=USER,
                                                                                      folder_id="inbox"))
            assert sorted(e.id for e in folder.entries) == [mid(1), mid(3)]
            with pytest.raises(grpc.aio.AioRpcError) as missing:
                await running["1"].stub.GetMessage(storage_pb2.NodeMessageRef(user_id=USER, id="not-an-id"))
            assert missing.value.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT)

    run(body)


def test_an_acceptor_refuses_another_users_store_and_keeps_nothing(tmp_path: Path) -> None:
    ports = {i: free_port() for i in "1234"}

    async def body() -> None:
        async with nodes(tmp_path, ports, {"1"}) as running:
            stub = running["1"].stub
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await stub.OrderAccept(storage_pb2.OrderAcceptRequest(
                    user_id=USER, slot=1, ballot=1, value=storage_pb2.OrderValue(intents=created(mid(1))),
                    stores=[store(1, user="ffeeddccbbaa9988")]))
            assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            promise = await stub.OrderPrepare(storage_pb2.OrderPrepareRequest(user_id=USER, from_slot=1, ballot=2))
            assert promise.promised and not promise.accepted         # the accept left nothing

    run(body)


def test_a_down_acceptor_gets_the_store_as_a_hint(tmp_path: Path) -> None:
    ports = {i: free_port() for i in "1234"}
    ring, _ = rings(ports)
    written = HINTS_WRITTEN.labels("3")

    async def body() -> None:
        async with nodes(tmp_path, ports, {"1", "2"}) as running:
            replicas = Replicas(ring, NodePool(), Consistency(timeout=2.0))
            before = written._value.get()
            assert await MailboxOrder(replicas).append(USER, created(mid(1)), stores=[store(1)]) == 1
            await replicas.hints.drain()
            assert written._value.get() == before + 1
            for node in running.values():
                assert (await node.stub.GetMessage(storage_pb2.NodeMessageRef(user_id=USER, id=mid(1)))).raw

    run(body)


def test_only_small_messages_of_the_user_ride() -> None:
    order = MailboxOrder(Replicas(rings({i: 1 for i in "1234"})[0], NodePool(), Consistency()))
    big = storage_pb2.StoreMessageRequest(user_id=USER, id=mid(1), raw=b"x" * (256 * 1024 + 1))

    async def body() -> None:
        for wrong in (big, store(1, user="ffeeddccbbaa9988")):
            with pytest.raises(ValueError):
                await order.append(USER, created(mid(1)), stores=[wrong])

    run(body)
