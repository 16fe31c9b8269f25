"""Replication under fault, on real processes with continuous SMTP and API load: a
SIGKILLed node catches up through hints and anti-entropy (digests equal within 60 s of
its restart), and a fourth node joins and leaves while mail flows, taking about a
quarter of the data and handing it back, with nothing acknowledged lost or doubled."""
from __future__ import annotations

import time
from collections.abc import Iterator

import grpc
import pytest

from tests.cluster.grid import Grid, running
from tests.cluster.load import Load, assert_nothing_lost, node_items, wait_converged
from tidings.v1 import mail_pb2, storage_pb2, storage_pb2_grpc

USERS = 24
CONVERGENCE_BOUND = 60.0


@pytest.fixture(scope="module")
def repl_grid(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Grid]:
    with running(tmp_path_factory.mktemp("replication"), edges=("smtp",)) as grid:
        yield grid


@pytest.fixture(scope="module")
def recipients(repl_grid: Grid) -> dict[str, str]:
    emails = [f"repl{i}@example.test" for i in range(USERS)]
    return {e: repl_grid.add_user(e).user_id for e in emails}


def hints_pending(address: str) -> int:
    with grpc.insecure_channel(address) as channel:
        status = storage_pb2_grpc.StorageNodeStub(channel).HintStatus(storage_pb2.HintStatusRequest(), timeout=10)
    return sum(p.count for p in status.pending)


def test_a_killed_node_converges_within_a_minute_of_its_restart(repl_grid: Grid, recipients: dict[str, str]) -> None:
    with Load(repl_grid, recipients, api=True) as load:
        load.wait_for(30)
        repl_grid.kill_storage(2)
        load.wait_more(60)
        held_for_2 = sum(hints_pending(repl_grid.layout.storage_address(i)) for i in (1, 3))
        repl_grid.start_storage(2)
        restarted = time.monotonic()
        load.wait_more(30)
    assert held_for_2 > 0, "no hints were held for the down node"
    took = wait_converged(repl_grid, CONVERGENCE_BOUND - (time.monotonic() - restarted))
    assert time.monotonic() - restarted <= CONVERGENCE_BOUND, f"converged {took:.1f}s after the load stopped"
    assert_nothing_lost(repl_grid, load)
    assert load.starred, "the API load changed nothing"
    counts = {i: node_items(repl_grid.layout.storage_address(i)) for i in (1, 2, 3)}
    assert len(set(counts.values())) == 1, f"replicas hold different numbers of messages: {counts}"


def test_a_node_added_under_load_takes_a_quarter_and_loses_nothing(repl_grid: Grid,
                                                                   recipients: dict[str, str]) -> None:
    repl_grid.start_storage(4)
    with Load(repl_grid, recipients, api=True) as load:
        load.wait_for(20)
        ring = repl_grid.admin.AddNode(mail_pb2.NodeChange(
            node_id="4", address=repl_grid.layout.storage_address(4), zone="zone-d"), timeout=600)
        load.wait_more(30)
    assert ring.version == 2 and {n.node_id for n in ring.nodes} == {"1", "2", "3", "4"}
    wait_converged(repl_grid, CONVERGENCE_BOUND)
    assert_nothing_lost(repl_grid, load)
    counts = {i: node_items(repl_grid.layout.storage_address(i)) for i in (1, 2, 3, 4)}
    share = counts[4] / sum(counts.values())
    assert 0.15 <= share <= 0.35, f"node 4 holds {share:.2f} of the copies: {counts}"


def test_a_removed_node_hands_its_data_back(repl_grid: Grid, recipients: dict[str, str]) -> None:
    with Load(repl_grid, recipients, api=True) as load:
        load.wait_for(20)
        ring = repl_grid.admin.RemoveNode(mail_pb2.NodeChange(node_id="4"), timeout=600)
        load.wait_more(30)
    assert ring.version == 3 and {n.node_id for n in ring.nodes} == {"1", "2", "3"}
    wait_converged(repl_grid, CONVERGENCE_BOUND)
    assert_nothing_lost(repl_grid, load)
    assert node_items(repl_grid.layout.storage_address(4)) == 0
    counts = {i: node_items(repl_grid.layout.storage_address(i)) for i in (1, 2, 3)}
    assert len(set(counts.values())) == 1, f"replicas differ after the removal: {counts}"
