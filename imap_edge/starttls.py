"""Upgrading a plaintext connection to TLS in place (IMAP STARTTLS, RFC 9051 6.2.1; POP3 STLS,
RFC 2595), shared by both sessions.

Bytes a client sent after the command and before the handshake must never be read as if they
came over TLS (the command injection of CVE-2011-0411): the session refuses the upgrade when any
are waiting, in the protocol layer's buffer or in the stream's, and closes the connection.
"""
from __future__ import annotations

import asyncio
import ssl

HANDSHAKE_TIMEOUT = 30.0


def pending(reader: asyncio.StreamReader) -> int:
    """Bytes received on the connection and not yet read from ``reader``."""
    buffer = getattr(reader, "_buffer", b"")  # asyncio has no public accessor for it
    return len(buffer)


async def upgrade(writer: asyncio.StreamWriter, context: ssl.SSLContext) -> None:
    """The server side of the handshake on ``writer``'s connection; the reader goes on over TLS.
    Raises ``OSError`` (``ssl.SSLError`` among them) or ``TimeoutError`` if it fails."""
    await writer.start_tls(context, ssl_handshake_timeout=HANDSHAKE_TIMEOUT)


def is_tls(writer: asyncio.StreamWriter) -> bool:
    return writer.get_extra_info("sslcontext") is not None
