"""Request body size limit, answered with the JSON error body (413 `payload_too_large`).

A declared Content-Length over the limit is refused before reading; a body
that grows past it while streaming raises `HTTPException(413)` from `receive`,
which FastAPI lets through to the handlers in `errors.py`.
"""
from __future__ import annotations

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import error_response


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
