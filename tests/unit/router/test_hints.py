"""Hinted handoff, router side: a mutation becomes a hint for its target, and the
holder is a live node past the preference list first, a live replica otherwise."""
from __future__ import annotations

import pytest

from router.hints import holders
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
