"""The digest read (router/message_reads.py): bodies from one replica, versions from the
others; the newest of R copies is the answer whichever replica holds it, and a stale or
missing replica is repaired as after a full read."""
from __future__ import annotations

import asyncio
from typing import Any

import grpc

from router.errors import NotFound
from router.message_reads import MessageReader, Read
from router.read_repair import ReadRepair
from router.replicas import Consistency, Replicas
from router.ring import NodeInfo, Ring
from tests.unit.router.fakes import StubPool
from tidings.v1 import storage_pb2, types_pb2

NODES = [NodeInfo(str(i), f"127.0.0.1:{7300 + i}", f"zone-{i}") for i in (1, 2, 3)]
USER = "ab" * 8
A, B = "a" * 32, "b" * 32
RAW = {A: b"Subject: a\r\n\r\nbody a\r\n", B: b"Subject: b\r\n\r\nbody b\r\n"}


def copy(message_id: str, version: int, *, unread: bool = True, tombstone: bool = False) -> storage_pb2.StoredMessage:
    return storage_pb2.StoredMessage(
        summary=types_pb2.MessageSummary(id=message_id, thread_id="t", folder_id="inbox", unread=unread,
                                         received_ms=1000, version=version),
        raw=b"" if tombstone else RAW[message_id], tombstone=tombstone)


class Node:
    """One replica: its copies, the GetMessages it was asked (raw or digest), the repairs it got."""

    def __init__(self, node_id: str, held: dict[str, storage_pb2.StoredMessage], *, up: bool = True,
                 room: int = 100, stall: float = 0.0) -> None:
        self.node_id = node_id
        self.held = held
        self.up = up
        self.stall = stall    # seconds a read with bodies takes
        self.room = room      # bodies an answer holds before the rest go to `more`
        self.reads: list[tuple[bool, list[str]]] = []
        self.updates: list[storage_pb2.UpdateMessageRequest] = []
        self.stores: list[storage_pb2.StoreMessageRequest] = []

    async def GetMessages(self, request: storage_pb2.NodeMessagesRequest, timeout: float | None = None
                          ) -> storage_pb2.StoredMessages:
        self.reads.append((request.raw, list(request.ids)))
        if request.raw and self.stall:
            await asyncio.sleep(self.stall)
        if not self.up:
            raise grpc.aio.AioRpcError(grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata())
        answer = storage_pb2.StoredMessages()
        for message_id in request.ids:
            held = self.held.get(message_id)
            if held is None:
                continue
            if not request.raw:
                answer.messages.add(summary=types_pb2.MessageSummary(id=message_id, version=held.summary.version),
                                    tombstone=held.tombstone)
            elif len(answer.messages) >= self.room:
                answer.more.append(message_id)
            else:
                answer.messages.add().CopyFrom(held)
        return answer

    async def UpdateMessage(self, request: storage_pb2.UpdateMessageRequest, timeout: float | None = None
                            ) -> types_pb2.MessageSummary:
        self.updates.append(request)
        return types_pb2.MessageSummary()

    async def StoreMessage(self, request: storage_pb2.StoreMessageRequest, timeout: float | None = None
                           ) -> storage_pb2.StoreMessageResponse:
        self.stores.append(request)
        return storage_pb2.StoreMessageResponse()



def setup(held: dict[str, dict[str, storage_pb2.StoredMessage]], **first: Any
          ) -> tuple[MessageReader, ReadRepair, list[Node]]:
    """A reader over three nodes; ``held`` by rank ("first", "second", "third"), so each test says
    what the replica read in full holds; ``first`` options (up, room) for that one."""
    pool = StubPool({})
    replicas = Replicas(Ring(NODES), pool, Consistency())
    repair = ReadRepair(pool.stub)
    reader = MessageReader(replicas, repair)
    ranked = replicas.read_plan(USER).contacts    # the plan's order: the first is read in full
    nodes = []
    for rank, info in zip(("first", "second", "third"), ranked):
        node = Node(info.node_id, held.get(rank, {}), **(first if rank == "first" else {}))
        pool.nodes[info.node_id] = node
        nodes.append(node)
    return reader, repair, nodes


def read(reader: MessageReader, repair: ReadRepair, ids: list[str]) -> Read:
    async def run() -> Read:
        found = await reader.read(USER, ids)
        await repair.drain()
        return found
    return asyncio.run(run())


def raw_reads(node: Node) -> list[list[str]]:
    return [ids for raw, ids in node.reads if raw]


def test_agreeing_replicas_send_one_body_and_need_no_repair() -> None:
    both = {A: copy(A, 5), B: copy(B, 5)}
    reader, repair, (first, second, third) = setup({"first": both, "second": dict(both), "third": dict(both)})
    found = read(reader, repair, [A, B])
    assert {i: m.raw for i, m in found.found.items()} == RAW and not found.missing and not found.more
    assert raw_reads(first) == [[A, B]]                       # one call for both, the only one with bodies
    assert not raw_reads(second) and not raw_reads(third)
    assert [raw for raw, _ in second.reads + third.reads] == [False] * len(second.reads + third.reads)
    assert len(second.reads) + len(third.reads) == 1          # R calls in all: one body read, one digest
    assert not any(n.updates or n.stores for n in (first, second, third))


def test_versions_disagree_the_newest_is_read_from_its_replica_and_the_first_repaired() -> None:
    reader, repair, (first, second, third) = setup({
        "first": {A: copy(A, 3)}, "second": {A: copy(A, 9, unread=False)}, "third": {A: copy(A, 9, unread=False)}})
    found = read(reader, repair, [A])
    held = found.found[A]
    assert held.summary.version == 9 and not held.summary.unread and held.raw == RAW[A]
    assert raw_reads(second) + raw_reads(third) == [[A]]  # read again in full from a replica with the newest
    [update] = first.updates                              # the stale first replica gets the newest cells
    assert update.version == 9 and update.HasField("unread") and not update.unread


def test_a_message_the_first_replica_lacks_is_read_from_another_and_stored_there() -> None:
    reader, repair, (first, second, third) = setup({"second": {A: copy(A, 4)}, "third": {A: copy(A, 4)}})
    found = read(reader, repair, [A])
    assert found.found[A].raw == RAW[A] and found.found[A].summary.version == 4
    [store] = first.stores
    assert store.raw == RAW[A] and store.version == 4 and store.id == A


def test_a_failed_first_replica_falls_back_to_full_reads_from_the_others() -> None:
    reader, repair, (first, second, third) = setup(
        {"first": {A: copy(A, 5)}, "second": {A: copy(A, 5)}, "third": {A: copy(A, 6, unread=False)}}, up=False)
    found = read(reader, repair, [A])
    assert found.found[A].summary.version == 6 and found.found[A].raw == RAW[A]
    assert raw_reads(second) == [[A]] and raw_reads(third) == [[A]]
    [update] = second.updates
    assert update.version == 6


def test_a_slow_first_replica_is_not_waited_for_the_others_are_read_in_full() -> None:
    reader, repair, (first, second, third) = setup(
        {"first": {A: copy(A, 5)}, "second": {A: copy(A, 5)}, "third": {A: copy(A, 5)}}, stall=60)
    reader.speculation.seconds = 0.05           # the body reads' speculative delay
    found = read(reader, repair, [A])            # without the speculative reads this waits out the stall
    assert found.found[A].raw == RAW[A]
    assert raw_reads(second) == [[A]] and raw_reads(third) == [[A]]


def test_a_tombstone_on_another_replica_wins_and_expunges_the_live_copy() -> None:
    reader, repair, (first, second, third) = setup({
        "first": {A: copy(A, 5)}, "second": {A: copy(A, 7, tombstone=True)}, "third": {A: copy(A, 7, tombstone=True)}})
    found = read(reader, repair, [A])
    assert found.missing == [A] and not found.found
    [expunge] = first.updates
    assert expunge.expunge and expunge.version == 7


def test_held_nowhere_is_missing_and_a_full_answer_leaves_the_rest_for_later() -> None:
    both = {A: copy(A, 5), B: copy(B, 5)}
    reader, repair, (first, *_) = setup({"first": both, "second": dict(both), "third": dict(both)}, room=1)
    found = read(reader, repair, [A, "c" * 32, B])
    assert list(found.found) == [A] and found.missing == ["c" * 32] and found.more == [B]


def test_the_coordinators_single_read_is_not_found_for_an_expunged_message() -> None:
    from router.coordinator import Coordinator

    reader, repair, _ = setup({"first": {A: copy(A, 7, tombstone=True)}, "second": {A: copy(A, 7, tombstone=True)}})
    coordinator = Coordinator.__new__(Coordinator)
    coordinator.reader = reader

    async def run() -> None:
        try:
            await coordinator.stored(USER, A)
        except NotFound:
            return
        raise AssertionError("an expunged message was found")
    asyncio.run(run())
