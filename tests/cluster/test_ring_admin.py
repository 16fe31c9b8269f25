"""`tidings repair` and `tidings node` against the shared cluster: a repair leaves the
replicas equal, the ring is described, and ring changes that cannot be done are refused
with a reason, changing nothing."""
from __future__ import annotations

from collections.abc import Callable

import grpc
import pytest

from tests.cluster.grid import Grid
from tests.cluster.test_index_admin import tidings
from tidings.v1 import mail_pb2
from tidings_runtime.ids import new_entry_id


def test_repair_then_check_reports_converged_replicas(grid: Grid, new_user: Callable[[str], str]) -> None:
    email = new_user("repaired")
    raw = f"From: a@outside.test\r\nTo: {email}\r\nSubject: digest me\r\n\r\nhello\r\n".encode()
    grid.mail.Deliver(mail_pb2.DeliverRequest(entry_id=new_entry_id(), raw=raw, recipients=[email]), timeout=30)
    repaired = tidings(grid, "repair")
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    assert "256 ranges compared" in repaired.stdout
    checked = tidings(grid, "repair", "--check")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "replicas converged" in checked.stdout


def test_node_list_describes_the_ring(grid: Grid) -> None:
    listed = tidings(grid, "node", "list")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.startswith("ring version 1")
    assert listed.stdout.count("owns 33.3%") == 3


def test_ring_changes_that_cannot_be_done_are_refused(grid: Grid) -> None:
    unreachable = tidings(grid, "node", "add", "9", "--address", "127.0.0.1:9", "--zone", "zone-z")
    assert unreachable.returncode == 1 and "UNAVAILABLE" in unreachable.stderr
    too_few = tidings(grid, "node", "remove", "2")
    assert too_few.returncode == 1 and "FAILED_PRECONDITION" in too_few.stderr
    with pytest.raises(grpc.RpcError) as bad:
        grid.admin.AddNode(mail_pb2.NodeChange(node_id="9"), timeout=10)
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as taken:
        grid.admin.AddNode(mail_pb2.NodeChange(node_id="1", address="127.0.0.1:9"), timeout=10)
    assert taken.value.code() == grpc.StatusCode.ALREADY_EXISTS
    ring = grid.admin.DescribeRing(mail_pb2.DescribeRingRequest(), timeout=10)
    assert ring.version == 1 and [n.node_id for n in ring.nodes] == ["1", "2", "3"]
