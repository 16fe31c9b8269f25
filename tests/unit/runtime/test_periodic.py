"""The periodic runner: rounds on an interval, survive a failing round, wake early, stop."""
from __future__ import annotations

import asyncio

import pytest

from tidings_runtime.periodic import ROUNDS, Periodic, PeriodicTask


def _rounds(name: str, outcome: str) -> float:
    return ROUNDS.labels(name, outcome)._value.get()


def test_a_failing_round_is_counted_and_the_task_goes_on() -> None:
    calls: list[int] = []

    async def work() -> None:
        calls.append(len(calls))
        if len(calls) == 1:
            raise RuntimeError("first round fails")

    async def scenario() -> None:
        periodic = Periodic()
        periodic.every("flaky", 0.01, work, immediately=True)
        while len(calls) < 3:
            await asyncio.sleep(0.005)
        await periodic.stop()

    asyncio.run(asyncio.wait_for(scenario(), 5))
    assert _rounds("flaky", "error") == 1
    assert _rounds("flaky", "ok") >= 2


def test_wake_runs_a_round_long_before_the_interval() -> None:
    ran = asyncio.Event

    async def scenario() -> float:
        done = ran()

        async def work() -> None:
            done.set()

        periodic = Periodic()
        task = periodic.start(PeriodicTask("woken", 3600, work, wake_delay_s=0.01))
        loop = asyncio.get_running_loop()
        started = loop.time()
        task.wake()
        await asyncio.wait_for(done.wait(), 5)
        elapsed = loop.time() - started
        await periodic.stop()
        return elapsed

    assert asyncio.run(scenario()) < 5


def test_stop_cancels_every_task_and_names_must_be_unique() -> None:
    async def scenario() -> list[str]:
        periodic = Periodic()

        async def idle() -> None:
            await asyncio.sleep(0)

        periodic.every("a", 3600, idle)
        with pytest.raises(ValueError):
            periodic.every("a", 3600, idle)
        names = periodic.names
        await periodic.stop()
        assert periodic.names == []
        return names

    assert asyncio.run(scenario()) == ["a"]


def test_a_non_positive_interval_is_refused() -> None:
    async def idle() -> None:
        return None

    with pytest.raises(ValueError):
        PeriodicTask("never", 0, idle)
