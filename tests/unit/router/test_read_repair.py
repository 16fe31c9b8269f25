"""Read repair: the decision (answers per node in, repair actions out) and the sender
(background, bounded, failures counted and never raised)."""
from __future__ import annotations

import asyncio

import grpc
import pytest
from prometheus_client import REGISTRY

from router import read_repair
from router.read_repair import EXPUNGE, STORE, UPDATE, ReadRepair, Repair, for_listing, for_message
from router.ring import NodeInfo
from tidings.v1 import storage_pb2, types_pb2

N1, N2, N3 = (NodeInfo(str(i), f"127.0.0.1:{7100 + i}") for i in (1, 2, 3))
MID = "a" * 32
USER = "u" * 32


def summary(version: int, *, unread: bool = True, folder: str = "inbox", starred: bool = False,
            message_id: str = MID) -> types_pb2.MessageSummary:
    return types_pb2.MessageSummary(id=message_id, thread_id="t1", folder_id=folder, unread=unread,
                                    starred=starred, received_ms=1000, version=version)


def stored(version: int, *, tombstone: bool = False, **kw: object) -> storage_pb2.StoredMessage:
    return storage_pb2.StoredMessage(summary=summary(version, **kw), raw=b"" if tombstone else b"raw",  # type: ignore[arg-type]
                                     tombstone=tombstone)


def kinds(repairs: list[Repair]) -> list[tuple[str, str]]:
    return sorted((r.kind, r.node.node_id) for r in repairs)


# -- single message (GetMessage) ------------------------------------------------------
def test_agreeing_replicas_need_nothing() -> None:
    assert for_message(MID, [(N1, stored(5)), (N2, stored(5))], []) == []


def test_missing_replica_gets_the_newest_copy_stored() -> None:
    repairs = for_message(MID, [(N1, stored(7, unread=False))], [N2])
    assert kinds(repairs) == [(STORE, "2")]
    (r,) = repairs
    assert r.raw == b"raw" and r.version == 7 and r.state is not None
    assert not r.state.unread and r.state.thread_id == "t1" and r.state.received_ms == 1000


def test_older_replica_gets_the_newest_flags() -> None:
    repairs = for_message(MID, [(N1, stored(3)), (N2, stored(9, unread=False, starred=True, folder="trash"))], [])
    assert kinds(repairs) == [(UPDATE, "1")]
    state = repairs[0].state
    assert state is not None and state.version == 9 and state.folder_id == "trash"
    assert not state.unread and state.starred


def test_newer_tombstone_expunges_live_copies() -> None:
    repairs = for_message(MID, [(N1, stored(3)), (N2, stored(9, tombstone=True)), (N3, stored(9, tombstone=True))],
                          [])
    assert kinds(repairs) == [(EXPUNGE, "1")]
    assert repairs[0].version == 9


def test_a_tombstone_beats_a_live_copy_with_a_newer_version() -> None:
    # A flag change that reached only one replica after the expunge elsewhere: deleted wins.
    repairs = for_message(MID, [(N1, stored(12)), (N2, stored(9, tombstone=True))], [])
    assert kinds(repairs) == [(EXPUNGE, "1")]


def test_tombstone_is_never_stored_on_a_missing_replica() -> None:
    assert for_message(MID, [(N1, stored(9, tombstone=True))], [N2]) == []


def test_nothing_held_anywhere_needs_nothing() -> None:
    assert for_message(MID, [], [N1, N2]) == []


# -- listings -------------------------------------------------------------------------
def page(*summaries: types_pb2.MessageSummary, tombstones: tuple[str, ...] = ()) -> storage_pb2.NodeSummaries:
    return storage_pb2.NodeSummaries(messages=list(summaries), tombstones=list(tombstones))


def test_listing_older_version_on_one_replica_is_updated() -> None:
    repairs = for_listing([(N1, page(summary(4))), (N2, page(summary(8, unread=False)))])
    assert kinds(repairs) == [(UPDATE, "1")]
    assert repairs[0].state is not None and not repairs[0].state.unread and repairs[0].version == 8


def test_listing_id_absent_from_a_page_is_not_proof_of_loss() -> None:
    assert for_listing([(N1, page(summary(4))), (N2, page())]) == []


def test_checked_replica_lacking_the_id_gets_it_stored_from_a_holder() -> None:
    repairs = for_listing([(N1, page(summary(4))), (N2, page())],
                          [(N1, page(summary(4))), (N2, page())], [MID])
    assert kinds(repairs) == [(STORE, "2")]
    r = repairs[0]
    assert r.source == N1 and r.raw is None


def test_listing_tombstone_expunges_live_copies_from_its_holder() -> None:
    repairs = for_listing([(N1, page(summary(4))), (N2, page())],
                          [(N1, page(summary(4))), (N2, page(tombstones=(MID,)))], [MID])
    assert kinds(repairs) == [(EXPUNGE, "1")]
    assert repairs[0].source == N2 and repairs[0].version == 0


def test_listing_repairs_are_bounded() -> None:
    ids = [f"{i:032x}" for i in range(50)]
    stale = page(*(summary(1, message_id=i) for i in ids))
    fresh = page(*(summary(2, message_id=i) for i in ids))
    assert len(for_listing([(N1, stale), (N2, fresh)])) == read_repair.MAX_REPAIRS_PER_READ


# -- sending ----------------------------------------------------------------------------
class FakeStub:
    def __init__(self, node: NodeInfo, log: list[tuple[str, str, object]], held: dict[str, storage_pb2.StoredMessage],
                 fail: bool) -> None:
        self.node, self.log, self.held, self.fail = node, log, held, fail

    async def _call(self, name: str, request: object) -> object:
        await asyncio.sleep(0)
        if self.fail:
            raise grpc.aio.AioRpcError(grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata(), "down")
        self.log.append((self.node.node_id, name, request))
        return self.held.get(self.node.node_id)

    async def UpdateMessage(self, request: object, timeout: float) -> object:
        return await self._call("UpdateMessage", request)

    async def StoreMessage(self, request: object, timeout: float) -> object:
        return await self._call("StoreMessage", request)

    async def GetMessage(self, request: object, timeout: float) -> object:
        return await self._call("GetMessage", request)


def counter(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_sender_runs_in_background_and_counts() -> None:
    calls: list[tuple[str, str, object]] = []
    held = {"1": stored(6, unread=False)}
    rr = ReadRepair(lambda node: FakeStub(node, calls, held, fail=node.node_id == "3"), concurrency=2)  # type: ignore[arg-type,return-value]
    stores = counter("tidings_read_repairs_total", kind="store")
    updates = counter("tidings_read_repairs_total", kind="update")
    failures = counter("tidings_read_repair_failures_total")

    async def main() -> None:
        rr.submit(USER, [
            Repair(STORE, N2, MID, source=N1),
            Repair(UPDATE, N2, MID, state=summary(6, unread=False), version=6),
            Repair(UPDATE, N3, MID, state=summary(6), version=6),
        ])
        assert calls == []  # submit returns before anything is sent
        await rr.drain()

    asyncio.run(main())
    sent = {(node, name) for node, name, _ in calls}
    assert sent == {("1", "GetMessage"), ("2", "StoreMessage"), ("2", "UpdateMessage")}
    store = next(r for n, name, r in calls if name == "StoreMessage")
    assert isinstance(store, storage_pb2.StoreMessageRequest)
    assert store.raw == b"raw" and not store.unread and store.version == 6 and store.thread_id == "t1"
    assert counter("tidings_read_repairs_total", kind="store") == stores + 1
    assert counter("tidings_read_repairs_total", kind="update") == updates + 1
    assert counter("tidings_read_repair_failures_total") == failures + 1


def test_expunge_reads_the_tombstone_version_from_its_holder() -> None:
    calls: list[tuple[str, str, object]] = []
    held = {"2": stored(11, tombstone=True)}
    rr = ReadRepair(lambda node: FakeStub(node, calls, held, fail=False))  # type: ignore[arg-type,return-value]

    async def main() -> None:
        rr.submit(USER, [Repair(EXPUNGE, N1, MID, source=N2)])
        await rr.drain()

    asyncio.run(main())
    update = next(r for n, name, r in calls if name == "UpdateMessage")
    assert isinstance(update, storage_pb2.UpdateMessageRequest)
    assert update.expunge and update.version == 11


@pytest.mark.parametrize("repairs", [[Repair(STORE, N2, MID)], [Repair("bogus", N2, MID)]])
def test_sender_never_raises(repairs: list[Repair]) -> None:
    rr = ReadRepair(lambda node: FakeStub(node, [], {}, fail=False))  # type: ignore[arg-type,return-value]

    async def main() -> None:
        rr.submit(USER, repairs)
        await rr.drain()

    asyncio.run(main())
