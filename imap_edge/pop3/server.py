"""The POP3 listener of the edge (port 2110): one Session task per connection, sign-in and
the Inbox through the router (tidings_client), the same loopback rule for plaintext as IMAP, and
STLS (RFC 2595) with the IMAP edge's certificate."""
from __future__ import annotations

import asyncio
import logging
import socket
import ssl

from imap_edge.pop3.session import Session
from imap_edge.server import is_loopback
from tidings_client import MailClient, Unauthenticated

log = logging.getLogger(__name__)


class RouterAccounts:
    """Signing in through the router's Authenticate."""

    def __init__(self, client: MailClient) -> None:
        self.client = client

    async def login(self, email: str, password: str) -> str | None:
        try:
            account = await self.client.authenticate(email, password)
        except Unauthenticated:
            return None
        return str(account.user_id)


class Pop3Server:
    def __init__(self, router: str, host: str, port: int, *, rpc_timeout: float = 10.0,
                 plaintext_anywhere: bool = False, timeout: float = 600.0,
                 tls: ssl.SSLContext | None = None) -> None:
        self.client = MailClient(router, timeout=rpc_timeout)
        self.host, self.port = host, port
        self.plaintext_anywhere = plaintext_anywhere
        self.timeout = timeout
        self.tls = tls
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        self._server = await asyncio.start_server(self._connected, self.host, self.port, family=family)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        plaintext = self.plaintext_anywhere or is_loopback(writer.get_extra_info("peername"))
        session = Session(reader, writer, RouterAccounts(self.client), self.client, plaintext_ok=plaintext,
                          timeout=self.timeout, tls_context=self.tls)
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            await session.run()
        except Exception:
            log.exception("POP3 session failed")
        finally:
            if task is not None:
                self._tasks.discard(task)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)
        await self.client.close()
