"""Hinted handoff, router side: a mutation becomes a hint for its target, and the
holder is a live node past the preference list first, a live replica otherwise."""
from __future__ import annotations

import asyncio

import pytest

from router.hints import HintWriter, holders
from router.liveness import FailureDetector
from router.mutations import Mutation
from router.ring import NodeInfo, Ring
from tidings.v1 import storage_pb2

NODES = [NodeInfo(str(i), f"127.0.0.1:{7100 + i}", f"zone-{i}") for i in (1, 2, 3, 4, 5)]


def test_a_mutation_carries_its_request_into_the_hint() -> None:
    request = storage_pb2.UpdateMessageRequest(user_id="u", id="m", version=7, unread=False)
    mutation = Mutation(request)
    hint = mutation.hint_for(NODES[1])
    assert (mutation.method, mutation.version) == ("UpdateMessage", 7)
    assert hint.target_node_id == "2" and hint.target_address == NODES[1].address
    assert hint.WhichOneof("mutation") == "update" and hint.update == request


def test_only_replicated_writes_are_mutations() -> None:
    with pytest.raises(TypeError):
        Mutation(storage_pb2.NodeMessageRef(user_id="u", id="m"))  # type: ignore[arg-type]


def test_the_holder_is_past_the_preference_list_first() -> None:
    ring = Ring(NODES)
    plan = ring.preference_list("someone", 3)
    target = plan[0]
    found = holders(ring, "someone", 3, target, lambda n: True)
    assert target not in found
    assert found[0] not in plan
    assert set(found[-2:]) == set(plan[1:])


def test_on_a_ring_of_n_a_live_replica_holds_the_hint() -> None:
    ring = Ring(NODES[:3])
    plan = ring.preference_list("someone", 3)
    down = plan[1]
    found = holders(ring, "someone", 3, down, lambda n: n != plan[2])
    assert found == [plan[0]]


class RecordingPool:
    """Stands in for NodePool: every node's PutHint is recorded as (holder, hint)."""

    def __init__(self) -> None:
        self.held: list[tuple[str, storage_pb2.Hint]] = []

    def stub(self, node: NodeInfo) -> RecordingPool._Stub:
        return RecordingPool._Stub(self, node)

    class _Stub:
        def __init__(self, pool: RecordingPool, node: NodeInfo) -> None:
            self.pool, self.node = pool, node

        async def PutHint(self, hint: storage_pb2.Hint, timeout: float) -> storage_pb2.HintAck:
            self.pool.held.append((self.node.node_id, hint))
            return storage_pb2.HintAck()


@pytest.mark.parametrize("acknowledged", [True, False])
def test_an_update_a_replica_lacked_is_hinted_only_if_acknowledged(acknowledged: bool) -> None:
    ring = Ring(NODES[:3])
    pool = RecordingPool()
    writer = HintWriter(lambda: ring, pool, FailureDetector(lambda node: None), n=3, timeout=1)  # type: ignore[arg-type]
    mutation = Mutation(storage_pb2.UpdateMessageRequest(user_id="u", id="m", version=3, starred=True))

    async def run() -> None:
        outcome: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        writer.hold_if(outcome, "someone", NODES[0], mutation)
        await asyncio.sleep(0)
        assert pool.held == []  # nothing before the write's outcome is known
        outcome.set_result(acknowledged)
        await writer.drain()

    asyncio.run(run())
    assert [hint.target_node_id for _, hint in pool.held] == (["1"] if acknowledged else [])
