"""A small mail network on loopback for outbound and sender-authentication tests: a dnslib DNS
server answering from a `Zone` (MX, A, TXT: SPF, DKIM keys, DMARC), one that never answers
(`silent_dns`), and aiosmtpd sinks standing in for far-end MX hosts on 127.0.0.N, all on
one port (the worker's `--outbound-port` is one port for every host).

`FarEnd` runs in the caller's event loop (tests that drive the worker in-process);
`ThreadedFarEnd` runs the same sinks in a thread of their own, for tests whose worker is a
real process and whose test body is synchronous.
"""
from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections import Counter
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from email.parser import BytesHeaderParser
from pathlib import Path
from typing import Any, TypeVar

import dkim
import dns.exception
import dns.resolver
from aiosmtpd.smtp import SMTP, Envelope, Session
from dnslib import MX, QTYPE, RCODE, RR, TXT, A, DNSRecord
from dnslib.server import BaseResolver, DNSHandler, DNSLogger, DNSServer

from tidings_runtime.tls import server_context

T = TypeVar("T")


# --- DNS ------------------------------------------------------------------------------------------

class Zone(BaseResolver):
    """Answers from `records` ((name, type) -> rdata list); SERVFAIL for `broken` names;
    NXDOMAIN for names it has no record of. `port` is set once it serves (`serving`)."""

    def __init__(self) -> None:
        self.records: dict[tuple[str, str], list[Any]] = {}
        self.broken: set[str] = set()
        self.port = 0
        self._lock = threading.Lock()

    def add(self, name: str, rtype: str, rdata: Any) -> None:
        with self._lock:
            self.records.setdefault((name.rstrip(".") + ".", rtype), []).append(rdata)

    def mx(self, domain: str, *hosts: tuple[int, str, str]) -> None:
        """`domain`'s MX records: (preference, host name, address)."""
        for preference, name, address in hosts:
            self.add(domain, "MX", MX(name, preference))
            self.add(name, "A", A(address))

    def txt(self, name: str, value: str) -> None:
        """A TXT record, cut into character-strings of at most 255 octets (RFC 1035 3.3)."""
        data = value.encode()
        self.add(name, "TXT", TXT([data[i:i + 255] for i in range(0, len(data), 255)]))

    def spf(self, domain: str, policy: str) -> None:
        """`domain`'s SPF record (RFC 7208), e.g. "v=spf1 ip4:127.0.0.0/8 -all"."""
        self.txt(domain, policy)

    def dmarc(self, domain: str, policy: str) -> None:
        """`domain`'s DMARC record at `_dmarc.domain` (RFC 7489), e.g. "v=DMARC1; p=reject"."""
        self.txt(f"_dmarc.{domain}", policy)

    def resolve(self, request: DNSRecord, handler: DNSHandler) -> DNSRecord:
        answer = request.reply()
        name, rtype = str(request.q.qname), QTYPE[request.q.qtype]
        with self._lock:
            known = any(known == name for known, _ in self.records)
            rdatas = list(self.records.get((name, rtype), []))
        if name.rstrip(".") in self.broken:
            answer.header.rcode = RCODE.SERVFAIL
        elif not known:
            answer.header.rcode = RCODE.NXDOMAIN
        for rdata in rdatas:
            answer.add_answer(RR(name, getattr(QTYPE, rtype), rdata=rdata, ttl=60))
        return answer

    @property
    def address(self) -> str:
        """The server as the worker's `--dns` takes it."""
        return f"127.0.0.1:{self.port}"

    def dkim_dnsfunc(self, name: bytes, timeout: int = 5) -> bytes | None:
        """dkimpy's `dnsfunc`: the TXT record at `name`, asked of this server over the wire."""
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = ["127.0.0.1"]
        resolver.port = self.port
        resolver.lifetime = timeout
        try:
            answer = resolver.resolve(name.decode().rstrip("."), "TXT")
        except dns.exception.DNSException:
            return None
        return b"".join(b"".join(rdata.strings) for rdata in answer)


@contextlib.contextmanager
def serving(zone: Zone) -> Iterator[Zone]:
    """`zone` answering on 127.0.0.1, a free UDP port (`zone.port`), until the block ends."""
    server = DNSServer(zone, address="127.0.0.1", port=0, logger=DNSLogger("-request,-reply", prefix=False))
    server.start_thread()
    zone.port = server.server.server_address[1]
    try:
        yield zone
    finally:
        server.stop()


@contextlib.contextmanager
def silent_dns() -> Iterator[str]:
    """A DNS "server" on 127.0.0.1 that reads every query and never answers (a resolver
    timeout); yields its address as `--dns` takes it."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"127.0.0.1:{sock.getsockname()[1]}"


# --- The far end: aiosmtpd sinks ------------------------------------------------------------------

@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes
    tls: bool
    mail_options: list[str]

    @property
    def message_id(self) -> str:
        """Without its angle brackets, as the HTTP API gives it."""
        return str(BytesHeaderParser().parsebytes(self.content)["Message-ID"] or "").strip().strip("<>")


@dataclass
class Sink:
    """A far-end MX: refuses the RCPTs in `refuse`, answers DATA with `data_reply`.

    `temp_failures`: the first that many DATA commands are answered `451 4.3.0` (a far end
    that is briefly unable to take mail). `hold_s`: each of the first `holds` DATA
    commands is answered only after that many seconds (a slow far end); `holding` is set
    while one is held. A message counts as received only once its 250 is due: a client
    that hangs up while its DATA is held has delivered nothing (aiosmtpd cancels the
    session's handler when the connection is lost)."""

    refuse: dict[str, str] = field(default_factory=dict)
    data_reply: str = "250 2.0.0 Ok: queued"
    temp_failures: int = 0
    hold_s: float = 0.0
    holds: int = 1 << 30
    received: list[Received] = field(default_factory=list)
    data_commands: int = 0
    abandoned: int = 0
    holding: threading.Event = field(default_factory=threading.Event)

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          rcpt_options: list[str]) -> str:
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.data_commands += 1
        if self.data_commands <= self.temp_failures:
            return "451 4.3.0 Temporarily unable to accept mail, try again"
        if self.hold_s and self.data_commands - self.temp_failures <= self.holds:
            self.holding.set()
            try:
                await asyncio.sleep(self.hold_s)
            except asyncio.CancelledError:
                self.abandoned += 1
                raise
            finally:
                self.holding.clear()
        if self.data_reply.startswith("250"):
            content = envelope.content
            assert isinstance(content, bytes)   # decode_data=False
            self.received.append(Received(str(envelope.mail_from), list(envelope.rcpt_tos), content,
                                          session.ssl is not None, list(envelope.mail_options)))
        return self.data_reply

    def message_ids(self) -> Counter[str]:
        """How many times each Message-ID was received."""
        return Counter(r.message_id for r in self.received)


class Greeter(asyncio.Protocol):
    """A far end that only greets with a refusal and hangs up."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.write(b"421 4.3.2 too busy, come back later\r\n")
        transport.close()


class FarEnd:
    """Sinks on 127.0.0.N, all on one port: `port`, or the first one's when 0."""

    def __init__(self, tls_dir: Path, port: int = 0) -> None:
        self.port = port
        self.tls_dir = tls_dir
        self.servers: list[asyncio.Server] = []

    async def sink(self, address: str, sink: Sink | None = None, *, starttls: bool = False) -> Sink:
        sink = sink or Sink()
        loop = asyncio.get_running_loop()
        tls = server_context(self.tls_dir, "mx.far.test") if starttls else None

        def session() -> SMTP:
            return SMTP(sink, hostname="mx.far.test", decode_data=False, enable_SMTPUTF8=True, tls_context=tls,
                        loop=loop)

        await self._listen(session, address)
        return sink

    async def greeter(self, address: str) -> None:
        await self._listen(Greeter, address)

    async def _listen(self, factory: Any, address: str) -> None:
        server = await asyncio.get_running_loop().create_server(factory, address, self.port)
        self.port = self.port or server.sockets[0].getsockname()[1]
        self.servers.append(server)

    async def close(self) -> None:
        for server in self.servers:
            server.close()
            await server.wait_closed()


class ThreadedFarEnd:
    """A `FarEnd` whose event loop runs in a thread of its own; `sink` is synchronous."""

    def __init__(self, tls_dir: Path, port: int) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="far-end", daemon=True)
        self._thread.start()
        self.far = FarEnd(tls_dir, port)

    def _call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(10)

    def sink(self, address: str, sink: Sink | None = None, *, starttls: bool = False) -> Sink:
        return self._call(self.far.sink(address, sink, starttls=starttls))

    def close(self) -> None:
        self._call(self.far.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


def port_free_on(*addresses: str, attempts: int = 50) -> int:
    """A TCP port nothing listens on at any of `addresses` (loopback): the first address's
    free port, checked by binding it on each of the others."""
    for _ in range(attempts):
        with socket.socket() as first:
            first.bind((addresses[0], 0))
            port = first.getsockname()[1]
            held = []
            try:
                for address in addresses[1:]:
                    other = socket.socket()
                    held.append(other)
                    other.bind((address, port))
                return port
            except OSError:
                continue
            finally:
                for other in held:
                    other.close()
    raise RuntimeError(f"no port free on all of {', '.join(addresses)}")


def nothing_listens(address: str, port: int) -> bool:
    """Whether a connection to (address, port) is refused."""
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((address, port)) != 0


def verify_signatures(message: bytes, records: dict[bytes, bytes]) -> list[bool]:
    """Whether each DKIM-Signature of `message` verifies (dkimpy) against the TXT `records`
    (name with its final dot -> record)."""
    def dnsfunc(name: bytes, timeout: int = 5) -> bytes | None:
        return records.get(name if name.endswith(b".") else name + b".")

    def one(index: int) -> bool:
        try:
            return bool(dkim.DKIM(message).verify(idx=index, dnsfunc=dnsfunc))
        except dkim.DKIMException:
            return False

    return [one(i) for i in range(message.count(b"DKIM-Signature:"))]
