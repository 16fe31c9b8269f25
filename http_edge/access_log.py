"""One access line a request, and its request id: taken from `X-Request-ID` when well formed,
else made, returned in the answer's header and sent on to the router (tidings_runtime/logs.py;
observe.py's middleware calls both).

The line has the method, the route template (never the raw path nor its query: a search's
`q=` is the user's words), status, duration_ms, the user id once a token was verified, and
the request id; never a header's value nor a body."""
from __future__ import annotations

import logging

from starlette.types import Scope

from tidings_runtime import logs

log = logging.getLogger("http_edge.access")
HEADER = "x-request-id"
_HEADER_NAME = HEADER.encode()


def note_user(scope: Scope, user_id: str) -> None:
    """The verified user a request acts for, for its access line and the router calls after."""
    scope.setdefault("state", {})["log_user"] = user_id
    logs.user.set(user_id)


def request_id(scope: Scope) -> str:
    """The client's `X-Request-ID` when well formed (the first, as Starlette's `Headers.get`
    takes it, read off the raw list: no `Headers` and no KeyError when it is absent), else a
    new one."""
    for name, value in scope["headers"]:
        if name == _HEADER_NAME:
            return logs.well_formed(value.decode("latin-1")) or logs.new_request_id()
    return logs.new_request_id()


def write(scope: Scope, method: str, route: str, status: int, seconds: float) -> None:
    """The request's access line (in the request id's logs.bound context)."""
    fields: dict[str, object] = {"method": method, "route": route, "status": status,
                                 "duration_ms": round(seconds * 1000, 2)}
    user = scope.get("state", {}).get("log_user")
    if user is not None:
        fields["user"] = user
    log.info("request", extra=fields)
