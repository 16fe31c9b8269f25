"""Hybrid logical clock (Kulkarni et al. 2014): 64-bit timestamps, 48 high bits of
physical milliseconds and 16 low bits of logical counter. Monotonic even when the
wall clock steps back; `update` merges a timestamp seen from elsewhere."""
from __future__ import annotations

import threading
import time
from typing import Callable

LOGICAL_BITS = 16
LOGICAL_MASK = (1 << LOGICAL_BITS) - 1


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


def hlc_ms(ts: int) -> int:
    """The physical (millisecond) part of a timestamp."""
    return ts >> LOGICAL_BITS


class HybridLogicalClock:
    def __init__(self, clock_ms: Callable[[], int] = _wall_ms) -> None:
        self._clock_ms = clock_ms
        self._last = 0
        self._lock = threading.Lock()

    def now(self) -> int:
        """A timestamp greater than every one this clock gave or saw."""
        with self._lock:
            self._last = max(self._last + 1, self._clock_ms() << LOGICAL_BITS)
            return self._last

    def update(self, received: int) -> int:
        """Merge a remote timestamp; the result is greater than it and than our last."""
        with self._lock:
            self._last = max(self._last + 1, received + 1, self._clock_ms() << LOGICAL_BITS)
            return self._last
