"""Request limits, answered with the JSON error body: the body size (413
`payload_too_large`) and the sending rate of each user (429 `rate_limited` with `Retry-After`).

Body size: a declared Content-Length over the limit is refused before reading; a body
that grows past it while streaming raises `HTTPException(413)` from `receive`,
which FastAPI lets through to the handlers in `errors.py`.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import ApiError, error_response

MAX_TRACKED = 100_000     # users with a bucket; beyond, full buckets are forgotten


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_body_size: int) -> None:
        self.app = app
        self.max_body_size = max_body_size

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_size:
            response = error_response(
                413, "payload_too_large", f"request body larger than {self.max_body_size} bytes"
            )
            await response(scope, receive, send)
            return
        total = 0

        async def receive_limited() -> Message:
            nonlocal total
            message = await receive()
            if message["type"] == "http.request":
                total += len(message.get("body", b""))
                if total > self.max_body_size:
                    raise HTTPException(413)
            return message

        await self.app(scope, receive_limited, send)


class RateLimiter:
    """A token bucket per key (a user id) in this process: `burst` at once, then `per_minute`
    a minute. Limits are per edge process: N edges let a user send N times as much.
    `per_minute` 0 is off."""

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

    def check(self, key: str, what: str = "sending") -> None:
        """Take a token for `key`, or raise the 429 with `Retry-After` (whole seconds)."""
        wait = self.take(key)
        if wait > 0:
            seconds = max(1, math.ceil(wait))
            raise ApiError(429, "rate_limited", f"{what} rate limit exceeded, retry in {seconds} s",
                           headers={"Retry-After": str(seconds)}, extra={"retry_after": seconds})

    def _forget_full(self, now: float) -> None:
        full = [k for k, (tokens, at) in self._buckets.items() if tokens + (now - at) * self.rate >= self.burst]
        for k in full:
            del self._buckets[k]


def send_limiter(state: Any, settings: Any) -> RateLimiter:
    """The app's limiter of `POST /v1/messages` (`--send-rate`, `--send-burst`), made on first use."""
    limiter = getattr(state, "send_limiter", None)
    if limiter is None:
        limiter = state.send_limiter = RateLimiter(settings.send_rate, settings.send_burst)
    return limiter
