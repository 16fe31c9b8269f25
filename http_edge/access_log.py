"""One access line a request, and its request id: taken from `X-Request-ID` when well formed,
else made, returned in the answer's header and sent on to the router (tidings_runtime/logs.py).

The line has the method, the route template (never the raw path nor its query: a search's
`q=` is the user's words), status, duration_ms, the user id once a token was verified, and
the request id; never a header's value nor a body."""
from __future__ import annotations

import logging
import time

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tidings_runtime import logs

from .metrics import route_label

log = logging.getLogger("http_edge.access")
HEADER = "x-request-id"


def note_user(scope: Scope, user_id: str) -> None:
    """The verified user a request acts for, for its access line and the router calls after."""
    scope.setdefault("state", {})["log_user"] = user_id
    logs.user.set(user_id)


class AccessLogMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = logs.well_formed(Headers(scope=scope).get(HEADER)) or logs.new_request_id()
        status = 500
        start = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), (b"x-request-id", rid.encode())]
            await send(message)

        with logs.bound(request_id=rid, user=None):
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                fields = {"method": scope["method"], "route": route_label(scope), "status": status,
                          "duration_ms": round((time.perf_counter() - start) * 1000, 2)}
                user = scope.get("state", {}).get("log_user")
                if user is not None:
                    fields["user"] = user
                log.info("request", extra=fields)
