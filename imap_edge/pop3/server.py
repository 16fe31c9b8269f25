"""The POP3 listener of the edge (port 2110): one Session task per connection, sign-in and
the Inbox through the router (tidings_client), the same loopback rule for plaintext as IMAP, and
STLS (RFC 2595) with the IMAP edge's certificate."""
from __future__ import annotations

import asyncio
import logging
import ssl

from imap_edge.listeners import Sessions
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
        self._sessions = Sessions("POP3")

    async def start(self) -> None:
        self.port = await self._sessions.listen(self._connected, self.host, self.port)

    async def _connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        plaintext = self.plaintext_anywhere or is_loopback(writer.get_extra_info("peername"))
        session = Session(reader, writer, RouterAccounts(self.client), self.client, plaintext_ok=plaintext,
                          timeout=self.timeout, tls_context=self.tls)
        await self._sessions.run(session.run())

    async def stop(self) -> None:
        await self._sessions.stop()
        await self.client.close()
