"""Quorum counting with real asyncio and scripted replicas: acks before the deadline,
timeouts against failures, NOT_FOUND on writes and reads, hints and pending owners.

Each scripted replica answers, or fails with a gRPC status, after a delay; the replies
are judged by the replica layer's own ``judge_rpc``."""
from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping

import grpc
import pytest

from router.errors import InvalidArgument, NotFound, QuorumFailure, QuorumTimeout, Unavailable
from router.plan import Consistency, ReadPlan, ReplicaPlan, WritePlan, read_plan, write_plan
from router.quorum import Outcome, Reply, quorum
from router.replicas import judge_rpc
from router.ring import NodeInfo, Ring

A, B, C, D = (NodeInfo(i, f"127.0.0.1:{7100 + int(i)}", f"zone-{i}") for i in "1234")
OK = "ok"
HANG = 30.0  # longer than any deadline here


class Script:
    """Per replica: (OK or a status code, delay in seconds). Records who was called."""

    def __init__(self, replies: Mapping[NodeInfo, tuple[str | grpc.StatusCode, float]]) -> None:
        self.replies = replies
        self.called: list[str] = []
        self.finished: list[str] = []

    async def __call__(self, node: NodeInfo) -> str:
        self.called.append(node.node_id)
        reply, delay = self.replies[node]
        await asyncio.sleep(delay)
        self.finished.append(node.node_id)
        if reply == OK:
            return f"answer from {node.node_id}"
        assert isinstance(reply, grpc.StatusCode)
        raise grpc.aio.AioRpcError(reply, grpc.aio.Metadata(), grpc.aio.Metadata(), details="scripted")


def run(plan: ReplicaPlan, script: Callable[[NodeInfo], Awaitable[str]], timeout: float = 5.0
        ) -> tuple[Outcome[str], float]:
    async def go() -> tuple[Outcome[str], float]:
        start = time.monotonic()
        outcome = await quorum(plan, script, timeout, judge_rpc)
        return outcome, time.monotonic() - start

    return asyncio.run(go())


def elapsed_raising(plan: ReplicaPlan, script: Script, error: type[BaseException],
                    timeout: float = 5.0) -> float:
    start = time.monotonic()
    with pytest.raises(error):
        run(plan, script, timeout)
    return time.monotonic() - start


def test_w_acks_before_the_deadline_succeed_without_the_straggler() -> None:
    script = Script({A: (OK, 0), B: (OK, 0.01), C: (OK, HANG)})
    outcome, took = run(WritePlan((A, B, C), 2), script)
    assert sorted(n.node_id for n, _ in outcome.answers) == ["1", "2"] and took < 1


def test_a_write_keeps_running_on_the_straggler_a_read_cancels_it() -> None:
    async def go(plan: ReplicaPlan) -> list[str]:
        script = Script({A: (OK, 0), B: (OK, 0), C: (OK, 0.05)})
        await quorum(plan, script, 5.0, judge_rpc)
        await asyncio.sleep(0.1)
        return script.finished

    assert "3" in asyncio.run(go(WritePlan((A, B, C), 2)))
    assert "3" not in asyncio.run(go(ReadPlan((A, B, C), 2)))


def test_fewer_acks_than_w_by_the_deadline_is_a_timeout() -> None:
    script = Script({A: (OK, 0), B: (OK, HANG), C: (OK, HANG)})
    took = elapsed_raising(WritePlan((A, B, C), 2), script, QuorumTimeout, timeout=0.2)
    assert 0.15 < took < 1.5


def test_definite_failures_making_w_impossible_fail_early() -> None:
    script = Script({A: (grpc.StatusCode.UNAVAILABLE, 0), B: (grpc.StatusCode.INTERNAL, 0.01), C: (OK, HANG)})
    took = elapsed_raising(WritePlan((A, B, C), 2), script, QuorumFailure, timeout=5.0)
    assert took < 1  # not the 5 s deadline


def test_a_replica_timing_out_makes_an_early_short_quorum_a_timeout_not_a_failure() -> None:
    script = Script({A: (grpc.StatusCode.DEADLINE_EXCEEDED, 0), B: (grpc.StatusCode.UNAVAILABLE, 0),
                     C: (OK, HANG)})
    with pytest.raises(QuorumTimeout) as raised:
        run(WritePlan((A, B, C), 2), script)
    assert not isinstance(raised.value, QuorumFailure)


def test_timeouts_and_failures_are_both_unavailable_to_the_client() -> None:
    assert issubclass(QuorumTimeout, Unavailable) and issubclass(QuorumFailure, Unavailable)
    assert not issubclass(QuorumFailure, QuorumTimeout)


def test_a_write_answered_not_found_is_a_failure_of_that_replica_not_an_ack() -> None:
    script = Script({A: (OK, 0), B: (grpc.StatusCode.NOT_FOUND, 0), C: (grpc.StatusCode.UNAVAILABLE, 0)})
    with pytest.raises(QuorumFailure):
        run(WritePlan((A, B, C), 2), script)


def test_a_write_no_replica_acked_and_some_answered_not_found_is_not_found() -> None:
    script = Script({A: (grpc.StatusCode.NOT_FOUND, 0), B: (grpc.StatusCode.NOT_FOUND, 0),
                     C: (grpc.StatusCode.UNAVAILABLE, 0)})
    with pytest.raises(NotFound):
        run(WritePlan((A, B, C), 2), script)


def test_a_read_answered_not_found_is_answered() -> None:
    script = Script({A: (OK, 0), B: (grpc.StatusCode.NOT_FOUND, 0), C: (OK, HANG)})
    outcome, _ = run(ReadPlan((A, B, C), 2), script)
    assert [n for n, _ in outcome.answers] == [A] and outcome.missing == [B]


def test_a_rejected_request_raises_at_once() -> None:
    script = Script({A: (grpc.StatusCode.INVALID_ARGUMENT, 0), B: (OK, HANG), C: (OK, HANG)})
    assert elapsed_raising(WritePlan((A, B, C), 2), script, InvalidArgument) < 1


def test_hints_never_count_toward_w() -> None:
    ring = Ring([A, B, C])
    key = "someone"
    first, second, third = ring.preference_list(key, 3)
    plan = write_plan(ring, None, key, Consistency(), lambda node: node != third)
    assert plan.hinted == (third,)
    script = Script({first: (OK, 0), second: (grpc.StatusCode.UNAVAILABLE, 0), third: (OK, 0)})
    with pytest.raises(QuorumFailure):
        run(plan, script)
    assert third.node_id not in script.called  # hinted, so never called and never counted


def test_r_of_n_with_one_replica_down_reads_the_other_two() -> None:
    ring = Ring([A, B, C])
    key = "someone"
    down = ring.preference_list(key, 3)[0]
    plan = read_plan(ring, key, Consistency(), lambda node: node != down)
    script = Script({A: (OK, 0), B: (OK, 0), C: (OK, 0)} | {down: (OK, HANG)})
    outcome, took = run(plan, script)
    assert len(outcome.answers) == 2 and down.node_id not in script.called and took < 1


def test_a_pending_owner_raises_w_so_two_acks_are_not_enough() -> None:
    ring = Ring([A, B, C])
    grown = ring.with_node(D)
    key = next(f"user{i}" for i in range(1000) if D in grown.preference_list(f"user{i}", 3))
    plan = write_plan(ring, grown, key, Consistency(), lambda node: True)
    assert plan.pending == (D,) and plan.block_for == 3
    natural = ring.preference_list(key, 3)
    failing = Script({natural[0]: (OK, 0), natural[1]: (OK, 0), natural[2]: (grpc.StatusCode.UNAVAILABLE, 0),
                      D: (OK, HANG)})
    with pytest.raises(QuorumTimeout):
        run(plan, failing, timeout=0.2)
    acked = Script({natural[0]: (OK, 0), natural[1]: (OK, 0), natural[2]: (grpc.StatusCode.UNAVAILABLE, 0),
                    D: (OK, 0.01)})
    outcome, _ = run(plan, acked)
    assert {n for n, _ in outcome.answers} == {natural[0], natural[1], D}


@pytest.mark.parametrize(("code", "reply"), [
    (grpc.StatusCode.NOT_FOUND, Reply.NOT_FOUND),
    (grpc.StatusCode.INVALID_ARGUMENT, Reply.REJECTED),
    (grpc.StatusCode.DEADLINE_EXCEEDED, Reply.TIMED_OUT),
    (grpc.StatusCode.UNAVAILABLE, Reply.FAILED),
    (grpc.StatusCode.INTERNAL, Reply.FAILED),
])
def test_storage_status_codes_are_judged_once(code: grpc.StatusCode, reply: Reply) -> None:
    error = grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details="why")
    assert judge_rpc(error)[0] is reply
    assert judge_rpc(RuntimeError("bug")) == (Reply.FAILED, "RuntimeError('bug')")


# Reads call R of the contacts; the rest only on a failure or after the speculative delay.

def speculating(plan: ReplicaPlan, script: Script, after: float, timeout: float = 5.0
                ) -> tuple[Outcome[str], float]:
    async def go() -> tuple[Outcome[str], float]:
        start = time.monotonic()
        outcome = await quorum(plan, script, timeout, judge_rpc, speculate_after=after)
        return outcome, time.monotonic() - start

    return asyncio.run(go())


def test_a_read_calls_exactly_r_replicas_when_they_answer() -> None:
    script = Script({A: (OK, 0), B: (OK, 0.01), C: (OK, 0)})
    outcome, _ = speculating(ReadPlan((A, B, C), 2), script, after=1.0)
    assert script.called == ["1", "2"] and {n for n, _ in outcome.answers} == {A, B}


@pytest.mark.parametrize("code", [grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED,
                                  grpc.StatusCode.INTERNAL])
def test_a_failed_replica_brings_in_the_next_at_once(code: grpc.StatusCode) -> None:
    script = Script({A: (code, 0), B: (OK, 0.01), C: (OK, 0)})
    outcome, took = speculating(ReadPlan((A, B, C), 2), script, after=HANG)
    assert script.called == ["1", "2", "3"] and {n for n, _ in outcome.answers} == {B, C}
    assert took < 1   # not the speculative delay, nor the deadline


def test_a_read_answered_not_found_brings_in_no_one() -> None:
    script = Script({A: (grpc.StatusCode.NOT_FOUND, 0), B: (OK, 0), C: (OK, 0)})
    outcome, _ = speculating(ReadPlan((A, B, C), 2), script, after=1.0)
    assert script.called == ["1", "2"] and outcome.missing == [A] and [n for n, _ in outcome.answers] == [B]


def test_a_slow_replica_brings_in_the_next_after_the_delay() -> None:
    script = Script({A: (OK, 0), B: (OK, HANG), C: (OK, 0)})
    outcome, took = speculating(ReadPlan((A, B, C), 2), script, after=0.1)
    assert script.called == ["1", "2", "3"] and {n for n, _ in outcome.answers} == {A, C}
    assert 0.09 < took < 2
    assert "2" not in script.finished   # the straggler is cancelled


def test_without_a_delay_a_slow_replica_is_waited_for_until_the_deadline() -> None:
    script = Script({A: (OK, 0), B: (OK, HANG), C: (OK, 0)})
    took = elapsed_raising(ReadPlan((A, B, C), 2), script, QuorumTimeout, timeout=0.2)
    assert script.called == ["1", "2"] and took < 1.5


def test_two_slow_replicas_bring_in_the_third_and_time_out_at_the_deadline() -> None:
    script = Script({A: (OK, HANG), B: (OK, HANG), C: (OK, 0)})

    async def go() -> None:
        await quorum(ReadPlan((A, B, C), 2), script, 0.3, judge_rpc, speculate_after=0.05)

    with pytest.raises(QuorumTimeout):
        asyncio.run(go())
    assert script.called == ["1", "2", "3"]


@pytest.mark.parametrize(("replies", "error"), [
    ({A: (grpc.StatusCode.UNAVAILABLE, 0), B: (grpc.StatusCode.INTERNAL, 0), C: (OK, HANG)}, QuorumFailure),
    ({A: (grpc.StatusCode.UNAVAILABLE, 0), B: (OK, HANG), C: (grpc.StatusCode.UNAVAILABLE, 0.01)}, QuorumFailure),
    ({A: (grpc.StatusCode.DEADLINE_EXCEEDED, 0), B: (grpc.StatusCode.UNAVAILABLE, 0), C: (OK, HANG)}, QuorumTimeout),
    ({A: (grpc.StatusCode.INVALID_ARGUMENT, 0), B: (OK, HANG), C: (OK, HANG)}, InvalidArgument),
])
def test_too_few_answers_for_a_read_are_the_same_errors_at_once(
        replies: dict[NodeInfo, tuple[str | grpc.StatusCode, float]], error: type[Exception]) -> None:
    script = Script(replies)

    async def go() -> None:
        await quorum(ReadPlan((A, B, C), 2), script, 5.0, judge_rpc, speculate_after=HANG)

    start = time.monotonic()
    with pytest.raises(error) as raised:
        asyncio.run(go())
    assert time.monotonic() - start < 1
    assert error is not QuorumFailure or not isinstance(raised.value, QuorumTimeout)


def test_a_write_calls_every_contact_at_once_whatever_the_delay() -> None:
    script = Script({A: (OK, 0), B: (OK, 0), C: (OK, 0.05)})

    async def go() -> list[str]:
        await quorum(WritePlan((A, B, C), 2), script, 5.0, judge_rpc, speculate_after=HANG)
        await asyncio.sleep(0.1)
        return script.finished

    assert sorted(asyncio.run(go())) == ["1", "2", "3"] and sorted(script.called) == ["1", "2", "3"]


@pytest.mark.parametrize("reply", [OK, grpc.StatusCode.NOT_FOUND, grpc.StatusCode.UNAVAILABLE,
                                   grpc.StatusCode.INTERNAL, grpc.StatusCode.DEADLINE_EXCEEDED,
                                   grpc.StatusCode.INVALID_ARGUMENT, "hang"])
def test_a_one_contact_read_has_the_outcome_and_errors_of_the_loop(reply: str | grpc.StatusCode) -> None:
    """A plan of one contact (read_one's) is read in the caller's task: the same answers, the
    same missing replica and the same errors as the general loop (which a one-contact plan
    with a speculative delay still takes)."""
    replies = {A: (OK, HANG) if reply == "hang" else (reply, 0)}

    async def both_ways() -> list[tuple[str, object]]:
        seen: list[tuple[str, object]] = []
        for after in (None, HANG):
            script = Script(replies)
            try:
                outcome = await quorum(ReadPlan((A,), 1), script, 0.05, judge_rpc, speculate_after=after)
            except Exception as exc:
                seen.append((type(exc).__name__, script.called))
            else:
                seen.append((repr(outcome), script.called))
        return seen

    fast, loop = asyncio.run(both_ways())
    assert fast == loop
