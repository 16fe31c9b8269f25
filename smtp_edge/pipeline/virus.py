"""Virus scanning with clamd over its INSTREAM command (clamd(8), "INSTREAM").

A small asyncio client, written here rather than taken from PyPI: ``clamd`` (python-clamd)
is synchronous and unmaintained since 2014; ``aioclamd`` speaks TCP only (no unix socket,
the local cluster's default) and reads the buffer 1 KiB at a time through a worker thread
per chunk; ``pyvalve`` needs async constructors and two file-I/O packages. The protocol is
five lines: ``zINSTREAM\\0``, chunks each behind a 4-byte big-endian length, a zero length,
then one ``\\0``-terminated reply: ``stream: OK``, ``stream: NAME FOUND`` or ``... ERROR``
(``INSTREAM size limit exceeded. ERROR`` past clamd's StreamMaxLength).

clamd parses the message itself (MIME, base64, archives such as zip), so the raw message
is what is sent. Any failure to get a verdict (clamd not listening, a timeout, an
``ERROR`` reply, a stream over StreamMaxLength) is :class:`ScannerUnavailable`: the edge
answers ``451 4.7.0`` and the sender retries (fail closed).
"""
from __future__ import annotations

import asyncio
import logging
import struct
from dataclasses import dataclass

from smtp_edge import replies
from smtp_edge.pipeline.message import InboundMessage

log = logging.getLogger(__name__)

CHUNK = 256 * 1024          # bytes per INSTREAM chunk
MAX_REPLY = 64 * 1024       # a reply is one short line; more is a broken peer


class ScannerUnavailable(Exception):
    """No verdict from the scanner: the message must be refused for now (4xx)."""


def parse_clamd_address(value: str) -> str:
    """``unix:/path`` or ``tcp:HOST:PORT`` (ValueError otherwise), as given."""
    kind, _, rest = value.partition(":")
    if kind == "unix" and rest:
        return value
    if kind == "tcp":
        host, sep, port = rest.rpartition(":")
        if sep and host and port.isdigit() and 0 < int(port) <= 65535:
            return value
    raise ValueError(f"{value!r} is not unix:/path/to/clamd.sock or tcp:HOST:PORT")


@dataclass(frozen=True)
class Verdict:
    signature: str | None       # the signature's name when infected, None when clean

    @property
    def infected(self) -> bool:
        return self.signature is not None


class ClamdClient:
    """One connection per scan (clamd closes INSTREAM sessions after the reply)."""

    def __init__(self, address: str, timeout: float = 30.0) -> None:
        self.address = parse_clamd_address(address)
        self.timeout = timeout

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        kind, _, rest = self.address.partition(":")
        if kind == "unix":
            return await asyncio.open_unix_connection(rest)
        host, _, port = rest.rpartition(":")
        return await asyncio.open_connection(host.strip("[]"), int(port))

    async def _call(self, command: bytes, payload: bytes | None = None) -> str:
        reader, writer = await self._connect()
        try:
            writer.write(b"z" + command + b"\0")
            if payload is not None:
                view = memoryview(payload)
                for start in range(0, len(view), CHUNK):
                    chunk = view[start:start + CHUNK]
                    writer.write(struct.pack(">I", len(chunk)))
                    writer.write(chunk)
                    await writer.drain()
                writer.write(b"\0\0\0\0")
            await writer.drain()
            reply = await reader.readuntil(b"\0")
        except asyncio.LimitOverrunError as error:
            raise ScannerUnavailable("clamd sent an overlong reply") from error
        except asyncio.IncompleteReadError as error:
            # clamd closes the connection mid-stream past StreamMaxLength, its reply unsent
            raise ScannerUnavailable(f"clamd closed the connection: {error.partial[:200]!r}") from error
        finally:
            writer.close()
            try:
                await writer.wait_closed()
            except (ConnectionError, OSError):
                pass
        return reply[:-1].decode("utf-8", errors="replace").strip()

    async def call(self, command: bytes, payload: bytes | None = None) -> str:
        """One command's reply line; ScannerUnavailable on any failure or timeout."""
        try:
            return await asyncio.wait_for(self._call(command, payload), self.timeout)
        except TimeoutError as error:
            raise ScannerUnavailable(f"clamd did not answer within {self.timeout:g}s") from error
        except (ConnectionError, OSError) as error:
            raise ScannerUnavailable(f"clamd at {self.address}: {error.strerror or error}") from error

    async def ping(self) -> bool:
        try:
            return await self.call(b"PING") == "PONG"
        except ScannerUnavailable:
            return False

    async def scan(self, data: bytes) -> Verdict:
        """``data``'s verdict; ScannerUnavailable when clamd gives none."""
        reply = await self.call(b"INSTREAM", data)
        return parse_reply(reply)


def parse_reply(reply: str) -> Verdict:
    """clamd's INSTREAM reply line (``stream: ...``) as a verdict."""
    _, _, result = reply.partition(": ")
    if reply.endswith("ERROR") or not result:
        raise ScannerUnavailable(f"clamd: {reply[:200] or 'empty reply'}")
    if result == "OK":
        return Verdict(None)
    if result.endswith(" FOUND"):
        return Verdict(result.removesuffix(" FOUND").strip() or "unknown")
    raise ScannerUnavailable(f"clamd: unexpected reply {reply[:200]!r}")


class VirusScan:
    """The check: ``554 5.7.1`` naming the signature, ``451 4.7.0`` without a verdict."""

    def __init__(self, client: ClamdClient) -> None:
        self.client = client

    async def __call__(self, message: InboundMessage) -> str | None:
        try:
            verdict = await self.client.scan(message.raw)
        except ScannerUnavailable as error:
            log.warning("virus scan failed, answering 4.7.0: %s", error)
            return replies.SCANNER_UNAVAILABLE
        if verdict.signature is not None:
            log.info("refused a message from %s: virus %s", message.mail_from, verdict.signature)
            return replies.virus_found(verdict.signature)
        return None


_scan: VirusScan | None = None


def configure(address: str | None, timeout: float = 30.0) -> None:
    """Scan with clamd at ``address`` from now on; ``None``: no scanning (TIDINGS_VIRUS_SCAN=off)."""
    global _scan
    _scan = VirusScan(ClamdClient(address, timeout)) if address is not None else None


async def check_virus(message: InboundMessage) -> str | None:
    """The pipeline check (both ports): what :func:`configure` set up decides."""
    return None if _scan is None else await _scan(message)
