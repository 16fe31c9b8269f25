"""One debug line an IMAP command (`imap_edge.command`, msg `command`): its tag, name (`UID
FETCH`), status (OK, NO, BAD; `aborted` when the connection ended first) and duration_ms, with
the session's id. The command runs under the request id `<session>.<n>`, its session's n-th
command, which the router channel sends on as `x-request-id` (tidings_runtime/logs.py). Never
the command's arguments, a mailbox name, a search string nor a literal: those are the user's."""
from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from imap_edge.protocol import commands as c
from tidings_runtime import logs

log = logging.getLogger("imap_edge.command")
ABORTED = "aborted"


async def logged(command: c.Command, number: int, dispatch: Callable[[c.Command], Awaitable[str]]) -> None:
    """Run `dispatch(command)` (which answers it and returns the status it answered) under the
    command's request id, then write its line."""
    session = logs.session_id.get()
    status = ABORTED
    start = time.perf_counter()
    with logs.bound(request_id=f"{session}.{number}" if session else logs.new_request_id()):
        try:
            status = await dispatch(command)
        finally:
            if log.isEnabledFor(logging.DEBUG):
                log.debug("command", extra={"tag": command.tag, "command": ("UID " if command.uid else "") + command.name,
                                            "status": status,
                                            "duration_ms": round((time.perf_counter() - start) * 1000, 2)})
