"""Hybrid logical clock (Kulkarni et al., 2014) for mutation timestamps: the router stamps
every mutation; storage nodes read a version's physical time (tombstone and hint ages).

A timestamp is one unsigned 64-bit integer: the high 48 bits are physical milliseconds
since the Unix epoch (enough until the year 10889), the low 16 bits a logical counter.
Integers compare in the order the clock promises, so replicas resolve last-writer-wins
by plain comparison. The clock never goes back, even when the wall clock does; it stays
within the largest physical time seen (local or received) plus counter overflow, which
borrows the next millisecond after 65,536 events in one.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable

LOGICAL_BITS = 16
LOGICAL_MASK = (1 << LOGICAL_BITS) - 1
MAX_TIMESTAMP = (1 << 64) - 1


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


def hlc_ms(ts: int) -> int:
    """The physical part of a timestamp, in milliseconds since the epoch."""
    return ts >> LOGICAL_BITS


def hlc_logical(ts: int) -> int:
    """The logical counter of a timestamp."""
    return ts & LOGICAL_MASK


def first_version_at(ms: int) -> int:
    """The smallest timestamp of that millisecond (negative ms clamp to 0): a version bound."""
    return max(ms, 0) << LOGICAL_BITS


def hlc_pack(ms: int, logical: int = 0) -> int:
    """A timestamp from its parts (``hlc_pack(ms)`` is the first timestamp of that millisecond)."""
    if not 0 <= logical <= LOGICAL_MASK:
        raise ValueError(f"logical counter {logical} outside 0..{LOGICAL_MASK}")
    ts = (ms << LOGICAL_BITS) | logical
    if not 0 <= ts <= MAX_TIMESTAMP:
        raise ValueError(f"physical time {ms} ms does not fit in 48 bits")
    return ts


class ClockSkewError(ValueError):
    """A received timestamp is further ahead of the local wall clock than allowed."""


class HybridLogicalClock:
    """HLC (Kulkarni et al.): 64-bit timestamps, 48 high bits physical ms, 16 low bits logical counter; monotonic, thread-safe."""

    def __init__(self, clock_ms: Callable[[], int] = _wall_ms, max_skew_ms: int | None = None) -> None:
        """``max_skew_ms``, when set, makes ``update`` refuse a timestamp that far ahead of
        the local wall clock (one bad peer clock would otherwise drag every clock forward)."""
        self._clock_ms = clock_ms
        self._max_skew_ms = max_skew_ms
        self._last = 0
        self._lock = threading.Lock()

    @property
    def last(self) -> int:
        """The latest timestamp handed out (0 before the first)."""
        return self._last

    def now(self) -> int:
        """A timestamp for a send or local event, greater than every one before it."""
        with self._lock:
            physical = hlc_pack(self._clock_ms())
            self._last = physical if physical > self._last else self._next(self._last)
            return self._last

    def update(self, received: int) -> int:
        """Merge a timestamp from a message; return one greater than it and than every
        timestamp this clock gave before."""
        if not 0 <= received <= MAX_TIMESTAMP:
            raise ValueError(f"timestamp {received} is not a 64-bit unsigned integer")
        with self._lock:
            wall = self._clock_ms()
            if self._max_skew_ms is not None and hlc_ms(received) > wall + self._max_skew_ms:
                raise ClockSkewError(
                    f"received timestamp is {hlc_ms(received) - wall} ms ahead of the local "
                    f"clock (at most {self._max_skew_ms} allowed)")
            physical = hlc_pack(wall)
            latest = max(self._last, received)
            self._last = physical if physical > latest else self._next(latest)
            return self._last

    @staticmethod
    def _next(ts: int) -> int:
        # The counter carries into the millisecond on overflow: still strictly greater.
        if ts >= MAX_TIMESTAMP:
            raise OverflowError("hybrid logical clock exhausted the 64-bit space")
        return ts + 1
