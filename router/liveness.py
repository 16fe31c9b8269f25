"""Failure detection: which storage nodes are up, from failed calls (passive) and a
heartbeat of health checks (active), so writes hint a down replica at once instead of
waiting on it, and a returning node is used again within a heartbeat.

Deliberately simple, not phi-accrual: a refused connection or a missed deadline marks a
node down; one SERVING answer marks it up. Being wrong costs latency, never data: a
write to a node thought down becomes a hint, and a node thought up just fails its call.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client import Counter, Gauge

from router.ring import NodeInfo

log = logging.getLogger(__name__)

NODE_UP = Gauge("tidings_node_up", "1 when the router sees the storage node as up", ["node"])
NODE_TRANSITIONS = Counter("tidings_node_transitions_total", "Up/down changes seen by the router",
                           ["node", "to"])

# Call failures that say the node (not the request) is the problem.
NODE_FAILURES = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})


class FailureDetector:
    def __init__(self, channel_of: Callable[[NodeInfo], grpc.aio.Channel], interval: float = 0.5,
                 probe_timeout: float = 0.5) -> None:
        self._channel_of = channel_of
        self.interval = interval
        self.probe_timeout = probe_timeout
        self._down: set[str] = set()  # ids of the nodes seen down
        self._listeners: list[Callable[[NodeInfo], None]] = []

    def is_up(self, node: NodeInfo) -> bool:
        return node.node_id not in self._down

    def on_up(self, listener: Callable[[NodeInfo], None]) -> None:
        """Call listener(node) whenever a node comes back."""
        self._listeners.append(listener)

    def failed(self, node: NodeInfo, code: grpc.StatusCode | None) -> None:
        if code in NODE_FAILURES and node.node_id not in self._down:
            self._down.add(node.node_id)
            NODE_UP.labels(node.node_id).set(0)
            NODE_TRANSITIONS.labels(node.node_id, "down").inc()
            log.warning("storage node %s (%s) is down: %s", node.node_id, node.address, code)

    def answered(self, node: NodeInfo) -> None:
        if node.node_id in self._down:
            self._down.discard(node.node_id)
            NODE_TRANSITIONS.labels(node.node_id, "up").inc()
            log.info("storage node %s (%s) is up again", node.node_id, node.address)
            for listener in self._listeners:
                listener(node)
        NODE_UP.labels(node.node_id).set(1)

    async def probe(self, node: NodeInfo) -> bool:
        stub = health_pb2_grpc.HealthStub(self._channel_of(node))
        try:
            answer = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=self.probe_timeout)
        except grpc.aio.AioRpcError as exc:
            self.failed(node, exc.code())
            return False
        if answer.status != health_pb2.HealthCheckResponse.SERVING:
            self.failed(node, grpc.StatusCode.UNAVAILABLE)
            return False
        self.answered(node)
        return True

    async def probe_all(self, nodes: Iterable[NodeInfo]) -> None:
        """One heartbeat: probe every node named (the router's periodic task, every `interval`)."""
        await asyncio.gather(*(self.probe(n) for n in nodes))
