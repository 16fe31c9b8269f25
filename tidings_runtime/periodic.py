"""Periodic background work: one runner for every process's recurring tasks.

A task is a coroutine function run every `interval_s` seconds (and at once when woken),
until its group is stopped. A round that raises is logged and counted, and the next
round tries again: one bad round never ends a task. Every round is measured
(`tidings_task_rounds_total{task,outcome}`, `tidings_task_round_seconds{task}`).
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from prometheus_client import Counter, Histogram

log = logging.getLogger(__name__)

ROUNDS = Counter("tidings_task_rounds_total", "Rounds of periodic background tasks", ["task", "outcome"])
ROUND_SECONDS = Histogram("tidings_task_round_seconds", "Duration of one round of a periodic task", ["task"],
                          buckets=(0.001, 0.005, 0.02, 0.1, 0.5, 2, 10, 60, 600))

Work = Callable[[], Awaitable[object]]


class PeriodicTask:
    """One named task: `work` every `interval_s` seconds; `wake()` runs it after `wake_delay_s`."""

    def __init__(self, name: str, interval_s: float, work: Work, *, immediately: bool = False,
                 wake_delay_s: float = 0.0) -> None:
        if interval_s <= 0:
            raise ValueError(f"task {name}: interval must be positive, not {interval_s}")
        self.name = name
        self.interval_s = interval_s
        self._work = work
        self._immediately = immediately
        self._wake_delay_s = wake_delay_s
        self._woken = asyncio.Event()

    def wake(self) -> None:
        """Run the next round soon instead of at the end of the interval."""
        self._woken.set()

    async def run_once(self) -> bool:
        """One round; False if it raised (logged and counted, never propagated)."""
        started = time.perf_counter()
        try:
            await self._work()
        except Exception:  # the next round retries; a failed round must not end the task
            log.exception("periodic task %s failed", self.name)
            ROUNDS.labels(self.name, "error").inc()
            return False
        finally:
            ROUND_SECONDS.labels(self.name).observe(time.perf_counter() - started)
        ROUNDS.labels(self.name, "ok").inc()
        return True

    async def run(self) -> None:
        """Rounds until cancelled."""
        if self._immediately:
            await self.run_once()
        while True:
            try:
                await asyncio.wait_for(self._woken.wait(), self.interval_s)
                await asyncio.sleep(self._wake_delay_s)
            except TimeoutError:
                pass
            self._woken.clear()
            await self.run_once()


class Periodic:
    """A process's periodic tasks, started together and cancelled together."""

    def __init__(self) -> None:
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def start(self, task: PeriodicTask) -> PeriodicTask:
        if task.name in self._tasks:
            raise ValueError(f"periodic task {task.name} already runs")
        self._tasks[task.name] = asyncio.create_task(task.run(), name=task.name)
        return task

    def every(self, name: str, interval_s: float, work: Work, *, immediately: bool = False) -> PeriodicTask:
        """Start `work` every `interval_s` seconds."""
        return self.start(PeriodicTask(name, interval_s, work, immediately=immediately))

    @property
    def names(self) -> list[str]:
        return list(self._tasks)

    async def stop(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
