"""Replica plans, decided before any I/O (Cassandra's ReplicaPlans): which replicas a read
or a write contacts, how many must answer (block-for), and which get a hint instead of a
call, from the ring, the pending ring, liveness and the consistency level.

- A write goes to the partition's N replicas and, while membership changes, to the owners
  it gains under the pending ring; W grows by their number, so W replicas hold it under
  either ring, whichever serves when the change completes.
- Liveness is advice. While the replicas seen up can meet block-for, a replica seen down
  is not contacted: a write hints it at once, a read skips it. When fewer are seen up the
  detector is not trusted and every replica is contacted (it marks a node up only on a
  heartbeat, so it lags a restart), and the quorum call tells failure from success.
- A read plan's contacts are in the order to call them (quorum.py calls the first R and
  keeps the rest for a failure or a speculative retry): those seen up first, then by the
  caller's ``Rank`` of (partition, node) if one is given, else in ring order. The replica
  layer's rank is a keyed hash with a per-router key, so one partition's reads go to the
  same R nodes (their caches warm), partitions spread over nodes, and routers differ.
- A plan whose replicas cannot meet its block-for does not exist: building one raises
  ``Unavailable``, so nothing is sent.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from router.errors import Unavailable
from router.ring import NodeInfo, Ring

IsUp = Callable[[NodeInfo], bool]
Rank = Callable[[str, NodeInfo], bytes]
"""Orders a partition's replicas for reads: lowest first."""


@dataclass(frozen=True)
class Consistency:
    """Replication factor N, write and read block-for W and R, and the call deadline (s)."""

    n: int = 3
    w: int = 2
    r: int = 2
    timeout: float = 5.0


@dataclass(frozen=True)
class ReplicaPlan:
    """The replicas to call and how many of them must answer."""

    contacts: tuple[NodeInfo, ...]
    block_for: int
    # A write answered NOT_FOUND is not applied there; a read answered NOT_FOUND is answered.
    is_write: ClassVar[bool] = False

    def __post_init__(self) -> None:
        if len(self.contacts) < self.block_for:
            kind = "write" if self.is_write else "read"
            raise Unavailable(f"{len(self.contacts)} replicas known for a {kind}, {self.block_for} needed")


@dataclass(frozen=True)
class ReadPlan(ReplicaPlan):
    """R of the partition's replicas, the live ones while R of them are up; the contacts in
    the order to call them."""


@dataclass(frozen=True)
class WritePlan(ReplicaPlan):
    """The replicas to call, those to hint without calling (seen down), and the owners
    added by the pending ring (among contacts or hinted, each raising block-for by one)."""

    hinted: tuple[NodeInfo, ...] = ()
    pending: tuple[NodeInfo, ...] = ()
    is_write: ClassVar[bool] = True

    @property
    def targets(self) -> tuple[NodeInfo, ...]:
        """Every replica that must get the write, by a call or by a hint."""
        return self.contacts + self.hinted


def read_plan(ring: Ring, partition_key: str, consistency: Consistency, is_up: IsUp,
              rank: Rank | None = None) -> ReadPlan:
    replicas = tuple(ring.preference_list(partition_key, consistency.n))
    contacts, _ = _trusted(replicas, consistency.r, is_up)
    if rank is not None:
        contacts = tuple(sorted(contacts, key=lambda node: rank(partition_key, node)))
    contacts = tuple(sorted(contacts, key=lambda node: not is_up(node)))   # stable: the up ones first
    return ReadPlan(contacts, consistency.r)


def write_plan(ring: Ring, pending: Ring | None, partition_key: str, consistency: Consistency,
               is_up: IsUp) -> WritePlan:
    natural = tuple(ring.preference_list(partition_key, consistency.n))
    extra = () if pending is None else tuple(
        node for node in pending.preference_list(partition_key, consistency.n) if node not in natural)
    block_for = consistency.w + len(extra)
    contacts, hinted = _trusted(natural + extra, block_for, is_up)
    return WritePlan(contacts, block_for, hinted=hinted, pending=extra)


def _trusted(replicas: tuple[NodeInfo, ...], block_for: int, is_up: IsUp
             ) -> tuple[tuple[NodeInfo, ...], tuple[NodeInfo, ...]]:
    """(contacted, left out): the live replicas and the down ones while the live can meet
    block-for, else all of them and none."""
    up = tuple(node for node in replicas if is_up(node))
    if len(up) < block_for:
        return replicas, ()
    return up, tuple(node for node in replicas if node not in up)
