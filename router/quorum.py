"""Quorum calls: send to every replica of the plan at once, count answers against the
consistency level, tell a definitive answer (NOT_FOUND, INVALID_ARGUMENT) from a
failure, and give up at one deadline (Cassandra's AbstractWriteResponseHandler).

Writes keep running on the slower replicas after the quorum answered, so a healthy
third replica still gets the write; only reads cancel the stragglers.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Awaitable, Callable, Generic, TypeVar

import grpc

from router.errors import InvalidArgument, NotFound, QuorumTimeout, Unavailable
from router.ring import NodeInfo

T = TypeVar("T")
log = logging.getLogger(__name__)

DEFINITIVE_NOT_FOUND = {grpc.StatusCode.NOT_FOUND}
DEFINITIVE_INVALID = {grpc.StatusCode.INVALID_ARGUMENT}
_background: set[asyncio.Task[object]] = set()


@dataclass
class Outcome(Generic[T]):
    """What the replicas said: answers by node, nodes that hold nothing, failures."""

    answers: list[tuple[NodeInfo, T]] = field(default_factory=list)
    missing: list[NodeInfo] = field(default_factory=list)
    failed: list[tuple[NodeInfo, str]] = field(default_factory=list)

    @property
    def responded(self) -> int:
        return len(self.answers) + len(self.missing)


async def quorum(replicas: list[NodeInfo], call: Callable[[NodeInfo], Awaitable[T]], block_for: int,
                 timeout: float, *, is_write: bool) -> Outcome[T]:
    """Run `call` on every replica; return once `block_for` have responded.

    A NOT_FOUND answer counts as a response (the replica holds nothing) for reads, and
    as a failure to apply for writes. Raises Unavailable before sending when the plan
    has too few replicas, InvalidArgument at once when a replica rejects the request.
    """
    if len(replicas) < block_for:
        raise Unavailable(f"{len(replicas)} replicas known, {block_for} needed")
    outcome: Outcome[T] = Outcome()
    tasks = {asyncio.ensure_future(call(node)): node for node in replicas}
    pending = set(tasks)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    try:
        while pending:
            done, pending = await asyncio.wait(pending, timeout=max(0.0, deadline - loop.time()),
                                               return_when=asyncio.FIRST_COMPLETED)
            if not done:
                raise QuorumTimeout(f"{_count(outcome, is_write)} of {block_for} replicas answered in {timeout:.1f}s")
            for task in done:
                _record(outcome, tasks[task], task)
            if _count(outcome, is_write) >= block_for:
                return outcome
            if _count(outcome, is_write) + len(pending) < block_for:
                break
    finally:
        _leave(pending, cancel=not is_write)
    if is_write and outcome.missing and not outcome.answers:
        raise NotFound("no replica holds the item")
    reasons = "; ".join(f"node {n.node_id}: {why}" for n, why in outcome.failed) or "not enough answers"
    raise Unavailable(f"{_count(outcome, is_write)} of {block_for} replicas answered ({reasons})")


def _count(outcome: Outcome[T], is_write: bool) -> int:
    return len(outcome.answers) if is_write else outcome.responded


def _record(outcome: Outcome[T], node: NodeInfo, task: asyncio.Future[T]) -> None:
    exc = task.exception()
    if exc is None:
        outcome.answers.append((node, task.result()))
        return
    if isinstance(exc, grpc.aio.AioRpcError):
        if exc.code() in DEFINITIVE_INVALID:
            raise InvalidArgument(exc.details() or "invalid request")
        if exc.code() in DEFINITIVE_NOT_FOUND:
            outcome.missing.append(node)
            return
        outcome.failed.append((node, f"{exc.code().name} {exc.details() or ''}".strip()))
        return
    outcome.failed.append((node, repr(exc)))


def _leave(pending: set[asyncio.Future[T]], cancel: bool) -> None:
    for task in pending:
        if cancel:
            task.cancel()
        else:  # let the write finish on the slow replica; keep a reference until it does
            _background.add(task)  # type: ignore[arg-type]
            task.add_done_callback(_forget)


def _forget(task: asyncio.Future[object]) -> None:
    _background.discard(task)  # type: ignore[arg-type]
    if not task.cancelled() and task.exception() is not None:
        exc = task.exception()
        if isinstance(exc, grpc.aio.AioRpcError):
            log.info("late replica write failed: %s %s", exc.code().name, exc.details())
        else:
            log.info("late replica write failed: %s", exc)
