"""Background tasks of a node: a coroutine run every N seconds until cancelled, failures logged."""
from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable

log = logging.getLogger(__name__)


async def every(interval_s: float, work: Callable[[], Awaitable[object]], name: str) -> None:
    while True:
        await asyncio.sleep(interval_s)
        try:
            await work()
        except Exception:  # one failed round must not end the task; the next round retries
            log.exception("%s failed", name)


class Background:
    """Named periodic tasks started together and cancelled together."""

    def __init__(self) -> None:
        self._tasks: list[asyncio.Task[None]] = []

    def start(self, interval_s: float, work: Callable[[], Awaitable[object]], name: str) -> None:
        self._tasks.append(asyncio.create_task(every(interval_s, work, name), name=name))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
