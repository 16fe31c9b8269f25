"""When a read stops waiting for its first replicas and calls another (Cassandra's speculative
retry, its default ``99p``): the 99th percentile of this router's recent replica read
latencies, a window of the last ``WINDOW`` calls, clamped to ``FLOOR``-``CEILING``.

Adaptive rather than a setting: what is slow moves with the machine's load, and a fixed
threshold is either too eager on a busy machine (every read calls a third replica) or too
lazy on a quiet one (a stalled node costs its whole threshold). The floor keeps a quiet
router's sub-millisecond p99 from sending an extra call at every scheduling hiccup; the
ceiling bounds what a hung replica costs. The percentile is recomputed every ``REFRESH``
samples (sorting the window at every read would cost more than it saves); until the first
``REFRESH`` are in, the delay is the ceiling. A call cancelled as a straggler is recorded at the time it had taken, a lower
bound, so cancelling the slow ones does not talk the percentile down.
"""
from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

WINDOW = 512          # replica read calls remembered
PERCENTILE = 0.99
FLOOR = 0.005         # s
CEILING = 0.2         # s
REFRESH = 64          # samples between recomputations of the percentile


class SpeculativeDelay:
    """The delay after which a read calls one more replica, from the latencies recorded."""

    def __init__(self, window: int = WINDOW, percentile: float = PERCENTILE,
                 floor: float = FLOOR, ceiling: float = CEILING) -> None:
        self._samples: deque[float] = deque(maxlen=window)
        self._percentile = percentile
        self._floor = floor
        self._ceiling = ceiling
        self._since = 0
        self.seconds = ceiling

    def record(self, seconds: float) -> None:
        """One replica read call's latency (or, for a cancelled call, its time so far)."""
        self._samples.append(seconds)
        self._since += 1
        if self._since >= REFRESH:
            self._since = 0
            self._refresh()

    async def timed(self, call: Callable[[], Awaitable[T]]) -> T:
        """``call()``'s answer, its latency recorded (a failure is not: a refused call is fast)."""
        start = time.monotonic()
        try:
            answer = await call()
        except asyncio.CancelledError:
            self.record(time.monotonic() - start)
            raise
        self.record(time.monotonic() - start)
        return answer

    def _refresh(self) -> None:
        ordered = sorted(self._samples)
        at = ordered[min(len(ordered) - 1, int(self._percentile * len(ordered)))]
        self.seconds = min(self._ceiling, max(self._floor, at))
