"""Quorum calls: run a plan's call on its contacts, count the replies against the plan's
block-for, and give up at one deadline (Cassandra's AbstractWriteResponseHandler, and its
speculative retry for reads).

A write calls every contact at once. A read calls only the first ``block_for`` contacts
(the plan's order: read_plan's) and keeps the rest in reserve: the next one is called at
once whenever a reply that is not an answer (failed, timed out) leaves fewer calls in
flight than answers still needed, and, when ``speculate_after`` is given and the first
calls have not all answered by then, one more for each answer still lacking.

Each failed call is judged by the replica layer, which knows the wire, as one of
``Reply``; the counting here knows no gRPC. The rules:

- ``block_for`` answers: the outcome. For a read a NOT_FOUND is an answer (the replica
  holds nothing); for a write it is a failure of that replica to apply it, not an ack.
- A rejected request (INVALID_ARGUMENT) raises ``InvalidArgument`` at once.
- The deadline passes first: ``QuorumTimeout`` (the write may have landed somewhere).
- Too few replicas are left to reach ``block_for``: at once, without waiting for the
  deadline, ``NotFound`` for a write that no replica acked and some answered NOT_FOUND
  (the item is nowhere, as an update of an unknown id), else ``QuorumTimeout`` if a
  replica timed out, else ``QuorumFailure``.

Only replicas called count: a replica hinted instead of called is not one, so hints never
count toward W, and a read's reserve never called is in no list of the outcome. Writes keep
running on the slower replicas after the quorum answered, so a healthy third replica still
gets the write; only reads cancel the stragglers.
"""
from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from router.errors import InvalidArgument, NotFound, QuorumFailure, QuorumTimeout
from router.plan import ReplicaPlan
from router.ring import NodeInfo

T = TypeVar("T")
log = logging.getLogger(__name__)

_background: set[object] = set()  # late writes, referenced until they end


class Reply(enum.Enum):
    """What a failed call says about the replica's share of the quorum."""

    NOT_FOUND = "not found"  # the replica holds no such item
    REJECTED = "rejected"  # the request is invalid: no replica will take it
    TIMED_OUT = "timed out"  # no answer in time: it may still have applied a write
    FAILED = "failed"  # the replica did not do it


Judge = Callable[[BaseException], tuple[Reply, str]]
"""Judges a call's exception: its ``Reply`` and a reason for the error message."""


@dataclass
class Outcome(Generic[T]):
    """What the replicas said: answers by node, nodes that hold nothing, failures, timeouts."""

    answers: list[tuple[NodeInfo, T]] = field(default_factory=list)
    missing: list[NodeInfo] = field(default_factory=list)
    failed: list[tuple[NodeInfo, str]] = field(default_factory=list)
    timed_out: list[NodeInfo] = field(default_factory=list)

    @property
    def responded(self) -> int:
        return len(self.answers) + len(self.missing)


async def quorum(plan: ReplicaPlan, call: Callable[[NodeInfo], Awaitable[T]], timeout: float,
                 judge: Judge, speculate_after: float | None = None) -> Outcome[T]:
    """Run ``call`` on the contacts of ``plan``; return once ``plan.block_for`` answered."""
    if not plan.is_write and len(plan.contacts) == 1 and speculate_after is None:
        return await _single(plan, call, timeout, judge)
    outcome: Outcome[T] = Outcome()
    reserve = list(plan.contacts)     # not called yet, in the plan's order
    tasks: dict[asyncio.Future[T], NodeInfo] = {}

    def bring_in(count: int) -> set[asyncio.Future[T]]:
        """Call the next ``count`` of the reserve (none if ``count`` <= 0)."""
        count = max(0, count)
        started: dict[asyncio.Future[T], NodeInfo] = {
            asyncio.ensure_future(call(node)): node for node in reserve[:count]}
        del reserve[:count]
        tasks.update(started)
        return set(started)

    pending = bring_in(len(reserve) if plan.is_write else plan.block_for)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    speculate_at = None if plan.is_write or speculate_after is None else loop.time() + speculate_after
    try:
        while pending:
            wake = deadline
            if speculate_at is not None and reserve:
                wake = min(wake, speculate_at)
            speculating = wake < deadline
            done, pending = await asyncio.wait(pending, timeout=max(0.0, wake - loop.time()),
                                               return_when=asyncio.FIRST_COMPLETED)
            if not done and speculating:    # the first calls are slow: one more for each answer lacking
                speculate_at = None
                pending |= bring_in(plan.block_for - _acks(outcome, plan))
                continue
            if not done:
                outcome.timed_out.extend(tasks[task] for task in pending)
                raise QuorumTimeout(f"{_acks(outcome, plan)} of {plan.block_for} replicas answered "
                                    f"in {timeout:.1f}s")
            rejected: InvalidArgument | None = None
            for task in done:      # every finished call is looked at, so none leaves an unretrieved error
                try:
                    _record(outcome, tasks[task], task, judge)
                except InvalidArgument as exc:
                    rejected = rejected or exc
            if rejected is not None:
                raise rejected
            if _acks(outcome, plan) >= plan.block_for:
                return outcome
            pending |= bring_in(plan.block_for - _acks(outcome, plan) - len(pending))
            if _acks(outcome, plan) + len(pending) < plan.block_for:
                break
    finally:
        _leave(pending, cancel=not plan.is_write, judge=judge)
    raise _short(outcome, plan)


async def _single(plan: ReplicaPlan, call: Callable[[NodeInfo], Awaitable[T]], timeout: float,
                  judge: Judge) -> Outcome[T]:
    """A read of one contact (Replicas.read_one's, a spam model's counts): the outcome and the
    errors of the loop above, in the caller's own task (no task, no wait: ~25 us less a call)."""
    outcome: Outcome[T] = Outcome()
    node = plan.contacts[0]
    deadline = asyncio.timeout(timeout)
    try:
        async with deadline:
            answer = await call(node)
    except TimeoutError:
        if not deadline.expired():
            raise
        outcome.timed_out.append(node)
    except Exception as exc:
        _judged(outcome, node, exc, judge)
        if outcome.missing:     # a read's NOT_FOUND is an answer
            return outcome
    else:
        outcome.answers.append((node, answer))
        return outcome
    raise _short(outcome, plan)


def _acks(outcome: Outcome[T], plan: ReplicaPlan) -> int:
    return len(outcome.answers) if plan.is_write else outcome.responded


def _short(outcome: Outcome[T], plan: ReplicaPlan) -> Exception:
    """The error for a quorum that can no longer be reached."""
    if plan.is_write and outcome.missing and not outcome.answers:
        return NotFound("no replica holds the item")
    reasons = [f"node {n.node_id}: {why}" for n, why in outcome.failed]
    reasons += [f"node {n.node_id}: timed out" for n in outcome.timed_out]
    what = (f"{_acks(outcome, plan)} of {plan.block_for} replicas answered "
            f"({'; '.join(reasons) or 'not enough answers'})")
    return QuorumTimeout(what) if outcome.timed_out else QuorumFailure(what)


def _record(outcome: Outcome[T], node: NodeInfo, task: asyncio.Future[T], judge: Judge) -> None:
    exc = task.exception()
    if exc is None:
        outcome.answers.append((node, task.result()))
        return
    _judged(outcome, node, exc, judge)


def _judged(outcome: Outcome[T], node: NodeInfo, exc: BaseException, judge: Judge) -> None:
    """A failed call's share of the outcome, as the replica layer judges its exception."""
    reply, reason = judge(exc)
    if reply is Reply.REJECTED:
        raise InvalidArgument(reason or "invalid request")
    if reply is Reply.NOT_FOUND:
        outcome.missing.append(node)
    elif reply is Reply.TIMED_OUT:
        outcome.timed_out.append(node)
    else:
        outcome.failed.append((node, reason))


def _leave(pending: set[asyncio.Future[T]], cancel: bool, judge: Judge) -> None:
    for task in pending:
        if cancel:
            task.cancel()
        else:  # let the write finish on the slow replica; keep a reference until it does
            _background.add(task)
            task.add_done_callback(lambda done: _forget(done, judge))


def _forget(task: asyncio.Future[T], judge: Judge) -> None:
    _background.discard(task)
    if not task.cancelled():
        exc = task.exception()
        if exc is not None:
            log.info("late replica write failed: %s", judge(exc)[1])
