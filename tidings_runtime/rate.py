"""A token bucket per key (a user id), in this process: `burst` at once, then `per_minute` a
minute; 0 is off. The edges' send limits are these, so limits are per edge process (N edges
let a user send N times as much)."""
from __future__ import annotations

import time
from collections.abc import Callable

MAX_TRACKED = 100_000    # buckets kept before full ones (nothing owed) are forgotten


class TokenBuckets:
    def __init__(self, per_minute: int, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = per_minute / 60.0
        self.burst = float(max(burst, 1))
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}     # key -> (tokens, at)

    def take(self, key: str) -> float:
        """0 when allowed (a token is taken), else the seconds until one is available."""
        if self.rate <= 0:
            return 0.0
        now = self.clock()
        tokens, at = self._buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.rate)
        if tokens < 1:
            self._buckets[key] = (tokens, now)
            return (1 - tokens) / self.rate
        if len(self._buckets) >= MAX_TRACKED and key not in self._buckets:
            self._forget_full(now)
        self._buckets[key] = (tokens - 1, now)
        return 0.0

    def _forget_full(self, now: float) -> None:
        full = [k for k, (tokens, at) in self._buckets.items() if tokens + (now - at) * self.rate >= self.burst]
        for k in full:
            del self._buckets[k]
