"""What the IMAP and the POP3 listener share: their listening sockets, and each connection's
session task tracked from accept to end, so that stopping closes the sockets and then ends
every session still open."""
from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable
from typing import Any

from tidings_runtime import logs

log = logging.getLogger(__name__)

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class Sessions:
    def __init__(self, protocol: str) -> None:
        self.protocol = protocol
        self._servers: list[asyncio.Server] = []
        self._tasks: set[asyncio.Task[Any]] = set()

    async def listen(self, handler: Handler, host: str, port: int, **options: Any) -> int:
        """Accept connections on host:port (0: any) for `handler`; the port bound."""
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        server = await asyncio.start_server(handler, host, port, family=family, **options)
        self._servers.append(server)
        return int(server.sockets[0].getsockname()[1])

    async def run(self, session: Awaitable[None]) -> None:
        """One connection's session, tracked until it ends; an error ends only that session."""
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            with logs.bound(session=logs.new_request_id()):   # on every line the session logs
                await session
        except Exception:
            log.exception("%s session failed", self.protocol)
        finally:
            if task is not None:
                self._tasks.discard(task)

    async def stop(self) -> None:
        for server in self._servers:
            server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)
