"""Hinted handoff, the router's half: a write a replica could not take is handed, as a
hint, to another live node, which holds it durably and replays it, in version order,
when the replica answers again (storage_node holds and replays).

The holder is the next live node on the ring walk past the preference list (Dynamo's
sloppy quorum); on a ring no larger than N there is none, so a live replica of the
partition holds it. Hints never count toward W: a write is acknowledged only when W
real replicas have it, and a lost hint is made good by anti-entropy.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import grpc
from prometheus_client import Counter

from router.liveness import FailureDetector
from router.mutations import Mutation
from router.nodes import NodePool
from router.ring import NodeInfo, Ring

log = logging.getLogger(__name__)

HINTS_WRITTEN = Counter("tidings_hints_written_total", "Hints handed to a holder, by target node", ["target"])
HINTS_UNWRITTEN = Counter("tidings_hints_unwritten_total",
                          "Hints no live node would hold (anti-entropy repairs these)", ["target"])


def holders(ring: Ring, partition_key: str, n: int, target: NodeInfo, is_up: Callable[[NodeInfo], bool]
            ) -> list[NodeInfo]:
    """Live nodes to try for a hint of `target`: past the preference list first, then replicas."""
    walk = [node for node in ring.preference_list(partition_key, len(ring)) if node != target and is_up(node)]
    replicas = set(ring.preference_list(partition_key, n))
    return [node for node in walk if node not in replicas] + [node for node in walk if node in replicas]


class HintWriter:
    def __init__(self, ring_of: Callable[[], Ring], pool: NodePool, detector: FailureDetector,
                 n: int, timeout: float) -> None:
        self._ring_of = ring_of
        self._pool = pool
        self._detector = detector
        self._n = n
        self._timeout = timeout
        self._tasks: set[asyncio.Task[None]] = set()

    def hold(self, partition_key: str, target: NodeInfo, mutation: Mutation) -> None:
        """Hand the mutation to a holder in the background (the write's answer does not wait)."""
        self._track(asyncio.create_task(self._store(partition_key, target, mutation)))

    def hold_if(self, acknowledged: asyncio.Future[bool], partition_key: str, target: NodeInfo,
                mutation: Mutation) -> None:
        """Hold the mutation only once its write turns out acknowledged (not for a write
        that failed everywhere, such as an update of an id nobody has)."""
        async def when_known() -> None:
            if await asyncio.shield(acknowledged):
                await self._store(partition_key, target, mutation)

        self._track(asyncio.create_task(when_known()))

    def _track(self, task: asyncio.Task[None]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def _store(self, partition_key: str, target: NodeInfo, mutation: Mutation) -> None:
        hint = mutation.hint_for(target)
        for holder in holders(self._ring_of(), partition_key, self._n, target, self._detector.is_up):
            try:
                await self._pool.stub(holder).PutHint(hint, timeout=self._timeout)
            except grpc.aio.AioRpcError as exc:
                self._detector.failed(holder, exc.code())
                continue
            HINTS_WRITTEN.labels(target.node_id).inc()
            return
        HINTS_UNWRITTEN.labels(target.node_id).inc()
        log.warning("no live node would hold a %s hint for node %s", mutation.method, target.node_id)
