"""The IMAP listeners: ``asyncio.start_server`` on the edge's port (plaintext, STARTTLS offered)
and on the TLS port (implicit TLS, RFC 8314), one ``Session`` task per connection, the router
channel shared by all. The certificate is the settings' (``--tls-cert``/``--tls-key``) or the
development one made in ``--data-dir`` (``tidings_runtime.tls``). Stopping closes the listener, then the sessions
(each told ``* BYE``), then the channel."""
from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import ssl

from imap_edge.backend import Backend
from imap_edge.connections import UserConnections
from imap_edge.listeners import Sessions
from imap_edge.metrics import OPEN, SESSIONS
from imap_edge.protocol import Limits
from imap_edge.session import Session
from imap_edge.settings import Settings
from imap_edge.starttls import is_tls
from tidings_runtime.tls import server_context

log = logging.getLogger(__name__)


def is_loopback(peer: object) -> bool:
    """The peer of a socket (``getpeername``) is on this machine."""
    if not isinstance(peer, tuple) or not peer:
        return True  # a Unix socket
    try:
        return ipaddress.ip_address(str(peer[0])).is_loopback
    except ValueError:
        return False


def tls_context(settings: Settings) -> ssl.SSLContext:
    """The edge's TLS context (IMAP and POP3 share it)."""
    return server_context(settings.data_dir, settings.hostname, cert=settings.tls_cert, key=settings.tls_key)


class ImapServer:
    def __init__(self, settings: Settings, backend: Backend | None = None,
                 tls: ssl.SSLContext | None = None) -> None:
        self.settings = settings
        self.tls = tls
        self.backend = backend or Backend(settings.router, rpc_timeout=settings.rpc_timeout)
        self.limits = Limits(max_line=settings.max_line, max_literal=settings.max_literal,
                             max_command=max(settings.max_literal + settings.max_line, Limits().max_command))
        self._sessions = Sessions("IMAP")
        self.connections = UserConnections(settings.max_user_connections)
        self.port = 0
        self.tls_port: int | None = None

    async def start(self) -> None:
        host = self.settings.host
        self.port = await self._sessions.listen(self._connected, host, self.settings.port, limit=1 << 20)
        if self.tls is not None and self.settings.tls_port is not None:
            self.tls_port = await self._sessions.listen(self._connected, host, self.settings.tls_port, limit=1 << 20,
                                                        ssl=self.tls, ssl_handshake_timeout=30)

    async def _connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        SESSIONS.inc()
        OPEN.inc()
        sock = writer.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        plaintext = self.settings.plaintext_anywhere or is_loopback(writer.get_extra_info("peername"))
        session = Session(reader, writer, self.backend, limits=self.limits, timeout=self.settings.timeout,
                          idle_timeout=self.settings.idle_timeout, plaintext_ok=plaintext, tls_context=self.tls,
                          tls=is_tls(writer), connections=self.connections)
        try:
            await self._sessions.run(session.run())
        finally:
            OPEN.dec()

    async def stop(self) -> None:
        await self._sessions.stop()
        await self.backend.close()
