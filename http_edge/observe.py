"""The HTTP edge's one observing middleware: each request gets its request id (access_log.py)
and is timed once; its route template, status and duration then make both its access line
and its metrics (metrics.py)."""
from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tidings_runtime import logs

from . import access_log, metrics


class ObserveMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = access_log.request_id(scope)
        status = 500
        start = time.perf_counter()

        async def send_observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), (access_log.HEADER.encode(), rid.encode())]
            await send(message)

        metrics.IN_FLIGHT.inc()
        with logs.bound(request_id=rid, user=None):
            try:
                await self.app(scope, receive, send_observed)
            finally:
                metrics.IN_FLIGHT.dec()
                seconds = time.perf_counter() - start
                method, route = scope["method"], metrics.route_label(scope)
                metrics.record(method, route, status, seconds)
                access_log.write(scope, method, route, status, seconds)
