"""Request limits, answered with the JSON error body: the body size (413
`payload_too_large`) and the sending rate of each user (429 `rate_limited` with `Retry-After`).

Body size: a declared Content-Length over the limit is refused before reading; a body
that grows past it while streaming raises `HTTPException(413)` from `receive`,
which FastAPI lets through to the handlers in `errors.py`.
"""
from __future__ import annotations

import math
from typing import Any

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tidings_runtime.rate import TokenBuckets

from .errors import ApiError, error_response


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


class RateLimiter(TokenBuckets):
    """`POST /v1/messages`'s per-user token bucket (tidings_runtime.rate), answering 429."""

    def check(self, key: str, what: str = "sending") -> None:
        """Take a token for `key`, or raise the 429 with `Retry-After` (whole seconds)."""
        wait = self.take(key)
        if wait > 0:
            seconds = max(1, math.ceil(wait))
            raise ApiError(429, "rate_limited", f"{what} rate limit exceeded, retry in {seconds} s",
                           headers={"Retry-After": str(seconds)}, extra={"retry_after": seconds})


def send_limiter(state: Any, settings: Any) -> RateLimiter:
    """The app's limiter of `POST /v1/messages` (`--send-rate`, `--send-burst`), made on first use."""
    limiter = getattr(state, "send_limiter", None)
    if limiter is None:
        limiter = state.send_limiter = RateLimiter(settings.send_rate, settings.send_burst)
    return limiter
