"""One SMTP transaction per destination domain (aiosmtplib), as a client MTA does it.

Hosts come from the MX lookup (`mx.py`) or the smart host (`TIDINGS_RELAYHOST`). Each
host's addresses are tried in turn: a refused or timed-out connection, or a greeting or
EHLO that is not 2xx, moves on to the next address and host; the first session that
reaches MAIL FROM decides the attempt. In a session: EHLO with our host name (HELO if
refused), opportunistic STARTTLS (certificates are not verified: an unauthenticated
encrypted session beats plain text; a failed handshake is retried once in plain text,
as Postfix's `may` level does), AUTH for the smart host, MAIL with SIZE, BODY=8BITMIME
and SMTPUTF8 where offered, one RCPT per recipient (a refusal fails that recipient
only), DATA for the accepted ones. Timeouts follow RFC 5321 4.5.3.2. A semaphore per
host name bounds the sessions open to one destination.

The outcome is a `Reply` per recipient; nothing here knows the queue.
"""
from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace

import aiosmtplib

from smtp_edge.outbound import reply
from smtp_edge.outbound.metrics import ATTEMPT_SECONDS
from smtp_edge.outbound.mx import DnsError, MxHost, MxResolver
from smtp_edge.outbound.reply import Reply

QUIT_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Timeouts:
    """Seconds to wait for each reply (RFC 5321 4.5.3.2; connect and EHLO as Postfix)."""

    connect: float = 30.0
    greeting: float = 300.0
    ehlo: float = 300.0
    starttls: float = 300.0
    mail: float = 300.0
    rcpt: float = 300.0
    data: float = 600.0     # aiosmtplib waits once for 354 and once for the final reply: the longer, 10 min

    def scaled(self, factor: float) -> Timeouts:
        return replace(self, **{f.name: getattr(self, f.name) * factor for f in fields(self)})


@dataclass(frozen=True)
class Relay:
    """A smart host taking all outgoing mail instead of the MX hosts."""

    host: str
    port: int
    username: str | None = None
    password: str | None = None


@dataclass(frozen=True)
class Envelope:
    mail_from: str            # "" for the null sender
    recipients: tuple[str, ...]
    raw: bytes


Results = dict[str, Reply]


class _HostFailed(Exception):
    """This address gave no session: try the next one. `reply` is what to record if none does."""

    def __init__(self, failure: Reply) -> None:
        super().__init__(failure.text())
        self.reply = failure


class _TlsFailed(Exception):
    """The STARTTLS handshake broke the connection: try again in plain text."""


def open_tls_context() -> ssl.SSLContext:
    """Opportunistic TLS: encrypt, but accept any certificate (RFC 7435)."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


class Deliverer:
    """Delivers one domain's recipients of a message; `deliver` never raises for the far end's sake."""

    def __init__(self, mx: MxResolver, *, hostname: str, port: int = 25, timeouts: Timeouts | None = None,
                 relay: Relay | None = None, host_concurrency: int = 4) -> None:
        self._mx = mx
        self._hostname = hostname
        self._port = port
        self._timeouts = timeouts or Timeouts()
        self._relay = relay
        self._host_concurrency = host_concurrency
        self._limits: weakref.WeakValueDictionary[str, asyncio.Semaphore] = weakref.WeakValueDictionary()
        self._tls = open_tls_context()

    async def deliver(self, domain: str, envelope: Envelope) -> Results:
        started = time.perf_counter()
        try:
            return await self._deliver(domain, envelope)
        finally:
            ATTEMPT_SECONDS.observe(time.perf_counter() - started)

    async def _deliver(self, domain: str, envelope: Envelope) -> Results:
        try:
            hosts, port = await self._destinations(domain)
        except DnsError as exc:
            return _all(envelope, exc.reply)
        failure = reply.dns_temporary(domain, "no host to try")
        for host in hosts:
            try:
                addresses = await self._addresses(host)
            except DnsError as exc:
                failure = exc.reply
                if host.implicit:
                    return _all(envelope, failure)
                continue
            for address in addresses:
                try:
                    async with self._limit(host.name):
                        return await self._session(host.name, address, port, envelope)
                except _HostFailed as exc:
                    failure = exc.reply
        return _all(envelope, failure)

    async def _destinations(self, domain: str) -> tuple[list[MxHost], int]:
        if self._relay is not None:
            return [MxHost(self._relay.host, 0)], self._relay.port
        return await self._mx.hosts(domain), self._port

    async def _addresses(self, host: MxHost) -> list[str]:
        if _is_ip(host.name):
            return [host.name]
        return await self._mx.addresses(host)

    def _limit(self, host: str) -> asyncio.Semaphore:
        limit = self._limits.get(host)
        if limit is None:
            limit = asyncio.Semaphore(self._host_concurrency)
            self._limits[host] = limit
        return limit

    async def _session(self, host: str, address: str, port: int, envelope: Envelope) -> Results:
        try:
            return await _Session(self, host, address, port, use_tls=True).run(envelope)
        except _TlsFailed:
            return await _Session(self, host, address, port, use_tls=False).run(envelope)


class _Session:
    """One connection to one address; the protocol's state lives here."""

    def __init__(self, owner: Deliverer, host: str, address: str, port: int, *, use_tls: bool) -> None:
        self.host, self.address, self.port = host, address, port
        self.where = f"{host}[{address}]:{port}"
        self.timeouts = owner._timeouts
        self.relay = owner._relay
        self.use_tls = use_tls
        self.tls_context = owner._tls
        self.smtp = aiosmtplib.SMTP(local_hostname=owner._hostname, timeout=self.timeouts.ehlo, start_tls=False,
                                    validate_certs=False, tls_context=owner._tls)

    async def run(self, envelope: Envelope) -> Results:
        try:
            await self._open()
            return await self._transaction(envelope)
        finally:
            await self._close()

    async def _open(self) -> None:
        """Connect, read the greeting, EHLO, STARTTLS, AUTH: _HostFailed if that fails."""
        sock = await self._connect_socket()
        try:
            await self.smtp.connect(sock=sock, timeout=self.timeouts.greeting)
        except aiosmtplib.SMTPConnectResponseError as exc:
            raise _HostFailed(self._reply(exc.code, exc.message)) from None
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise _HostFailed(reply.connection_lost(self.where, f"{_describe(exc)} while reading the greeting")) from None
        try:
            await self._hello()
            if self.use_tls and self.smtp.supports_extension("starttls"):
                await self._starttls()
            if self.relay is not None and self.relay.username is not None:
                await self._login()
        except aiosmtplib.SMTPResponseException as exc:
            raise _HostFailed(self._reply(exc.code, exc.message)) from None
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise _HostFailed(reply.connection_lost(self.where, _describe(exc))) from None

    async def _connect_socket(self) -> socket.socket:
        family = socket.AF_INET6 if ":" in self.address else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            await asyncio.wait_for(asyncio.get_running_loop().sock_connect(sock, (self.address, self.port)),
                                   self.timeouts.connect)
        except (OSError, TimeoutError) as exc:
            sock.close()
            raise _HostFailed(reply.no_route(self.where, _describe(exc))) from None
        return sock

    async def _hello(self) -> None:
        try:
            await self.smtp.ehlo(timeout=self.timeouts.ehlo)
        except aiosmtplib.SMTPHeloError:
            await self.smtp.helo(timeout=self.timeouts.ehlo)

    async def _starttls(self) -> None:
        try:
            await self.smtp.starttls(server_hostname=self.host, timeout=self.timeouts.starttls)
        except aiosmtplib.SMTPResponseException:
            return      # refused: go on in plain text on this connection
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise _TlsFailed(str(exc)) from exc
        try:
            await self._hello()
        except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError, OSError) as exc:
            raise _TlsFailed(str(exc)) from exc     # TLS 1.3: a refused handshake shows on the next read

    async def _login(self) -> None:
        assert self.relay is not None and self.relay.username is not None
        try:
            await self.smtp.login(self.relay.username, self.relay.password or "", timeout=self.timeouts.ehlo)
        except aiosmtplib.SMTPAuthenticationError as exc:
            # our credentials are wrong: defer (never bounce the users' mail for it)
            raise _HostFailed(Reply(454, f"4.7.0 authentication to the relay host failed: {exc.code} {exc.message}",
                                    self.host)) from None

    async def _transaction(self, envelope: Envelope) -> Results:
        """MAIL, RCPT each, DATA: a Reply per recipient."""
        smtp, timeouts = self.smtp, self.timeouts
        refusal = self._refuse_before_mail(envelope)
        if refusal is not None:
            return _all(envelope, refusal)
        options, encoding = self._mail_options(envelope)
        results: Results = {}
        try:
            await smtp.mail(envelope.mail_from, options=options, encoding=encoding, timeout=timeouts.mail)
            accepted = []
            for recipient in envelope.recipients:
                try:
                    await smtp.rcpt(recipient, encoding=encoding, timeout=timeouts.rcpt)
                    accepted.append(recipient)
                except aiosmtplib.SMTPRecipientRefused as exc:
                    results[recipient] = self._reply(exc.code, exc.message)
            if accepted:
                response = await smtp.data(envelope.raw, timeout=timeouts.data)
                results.update({r: self._reply(response.code, response.message) for r in accepted})
        except aiosmtplib.SMTPResponseException as exc:     # MAIL or DATA refused
            failure = self._reply(exc.code, exc.message)
            results.update({r: failure for r in envelope.recipients if r not in results})
        except (aiosmtplib.SMTPException, OSError) as exc:
            lost = reply.connection_lost(self.where, _describe(exc))
            results.update({r: replace(lost, remote_mta=self.host) for r in envelope.recipients if r not in results})
        return results

    def _refuse_before_mail(self, envelope: Envelope) -> Reply | None:
        smtp = self.smtp
        limit = smtp.esmtp_extensions.get("size", "")
        if limit.isdigit() and int(limit) > 0 and len(envelope.raw) > int(limit):
            return replace(reply.too_big(len(envelope.raw), int(limit)), remote_mta=self.host)
        if _needs_smtputf8(envelope) and not smtp.supports_extension("smtputf8"):
            return replace(reply.needs_smtputf8(self.host), remote_mta=self.host)
        return None

    def _mail_options(self, envelope: Envelope) -> tuple[list[str], str]:
        smtp = self.smtp
        options = []
        if smtp.supports_extension("size"):
            options.append(f"SIZE={len(envelope.raw)}")
        if not envelope.raw.isascii() and smtp.supports_extension("8bitmime"):
            options.append("BODY=8BITMIME")
        if _needs_smtputf8(envelope):
            options.append("SMTPUTF8")
            return options, "utf-8"
        return options, "ascii"

    def _reply(self, code: int, message: str) -> Reply:
        return Reply(code, message, self.host)

    async def _close(self) -> None:
        if self.smtp.is_connected:
            try:
                await self.smtp.quit(timeout=QUIT_TIMEOUT_S)
            except (aiosmtplib.SMTPException, OSError):
                pass
        self.smtp.close()


def _all(envelope: Envelope, result: Reply) -> Results:
    return {recipient: result for recipient in envelope.recipients}


def _needs_smtputf8(envelope: Envelope) -> bool:
    return not all(address.isascii() for address in (envelope.mail_from, *envelope.recipients))


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, ConnectionRefusedError):
        return "Connection refused"
    return str(exc) or type(exc).__name__


def group_by_domain(recipients: Sequence[str]) -> dict[str, list[str]]:
    """Recipients per destination domain (case-insensitive), in their order."""
    groups: dict[str, list[str]] = {}
    for recipient in recipients:
        groups.setdefault(recipient.rpartition("@")[2].lower(), []).append(recipient)
    return groups
