"""Start and stop the SMTP edge: both listeners, the router channel, metrics.

:class:`SmtpEdge` runs inside the caller's asyncio loop (no aiosmtpd
Controller thread), so the handlers and the ``grpc.aio`` channel share it.
Stopping closes the listeners, lets deliveries in flight finish (a client
that was about to get ``250`` gets it), closes the remaining sessions and
then the channel.
"""
from __future__ import annotations

import asyncio
import logging
import weakref
from typing import Any

import dns.asyncresolver
from prometheus_client import start_http_server

from smtp_edge import pipeline
from smtp_edge.config import Settings
from smtp_edge.handler import EdgeHandler, MxHandler, SubmissionHandler
from smtp_edge.mail_api import MailApi
from smtp_edge.metrics import SESSIONS
from smtp_edge.pipeline import rspamd, virus
from smtp_edge.pipeline.auth import SenderAuth
from smtp_edge.pipeline.rules import DnsBlocklists
from smtp_edge.protocol import EdgeSMTP
from tidings_runtime.dns import make_resolver, parse_resolvers
from tidings_runtime.tls import server_context

log = logging.getLogger(__name__)

IDENT = "Tidings ESMTP"


class _QuietDeprecations(logging.Filter):
    """aiosmtpd warns on every successful AUTH about its own deprecated field."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Session.login_data is deprecated")


class SmtpEdge:
    """Both SMTP listeners of one process; :meth:`start`, then :meth:`stop`."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.api = MailApi(settings.router, rpc_timeout=settings.rpc_timeout,
                           deliver_timeout=settings.deliver_timeout,
                           max_message_bytes=settings.max_size, lookup_ttl=settings.lookup_ttl)
        limits: dict[str, Any] = dict(hostname=settings.hostname, max_size=settings.max_size,
                                      max_recipients=settings.max_recipients, dedupe=settings.dedupe)
        # one resolver and cache for sender authentication and blocklists, made only if one is on
        resolver = make_resolver(parse_resolvers(settings.dns) if settings.dns else None,
                                 timeout=settings.dns_timeout, lifetime=3 * settings.dns_timeout
                                 ) if settings.auth_checks or settings.dnsbl else None
        self.mx_handler = MxHandler(self.api, checks=pipeline.inbound(sender_auth(settings, resolver),
                                                                      blocklists(settings, resolver)),
                                    **limits)
        self.submission_handler = SubmissionHandler(self.api, send_rate=settings.submission_rate,
                                                    send_burst=settings.submission_burst, **limits)
        self._servers: list[asyncio.Server] = []
        self._sessions: weakref.WeakSet[EdgeSMTP] = weakref.WeakSet()
        self._metrics: Any = None
        self.mx_port = 0
        self.submission_port = 0
        self.metrics_port = 0

    async def start(self) -> None:
        settings = self.settings
        logging.getLogger("mail.log").addFilter(_QuietDeprecations())
        await self.api.open()
        await self._configure_scanning()
        tls = server_context(settings.data_dir, settings.hostname)
        mx = await self._listen(self.mx_handler, settings.port)
        submission = await self._listen(
            self.submission_handler, settings.submission_port, tls_context=tls,
            require_starttls=True, auth_required=True, auth_require_tls=True,
            authenticator=SubmissionHandler.capture_credentials)
        self.mx_port, self.submission_port = _port(mx), _port(submission)
        if settings.metrics_port is not None:
            self._metrics, _ = start_http_server(settings.metrics_port, addr=settings.host)
            self.metrics_port = self._metrics.server_port

    async def _configure_scanning(self) -> None:
        """The content checks' scanners (smtp_edge.pipeline.virus, .rspamd), from the settings."""
        settings = self.settings
        if not settings.virus_scan:
            virus.configure(None)
            log.warning("TIDINGS_VIRUS_SCAN=off: messages are NOT scanned for viruses")
        else:
            virus.configure(settings.clamd, settings.clamd_timeout)
            if not await virus.ClamdClient(settings.clamd, timeout=2.0).ping():
                log.warning("clamd at %s does not answer: mail is refused with 451 4.7.0 until it does",
                            settings.clamd)
        rspamd.configure(settings.rspamd, settings.rspamd_timeout)

    async def stop(self, grace: float = 10.0) -> None:
        for server in self._servers:
            server.close()
        for handler in (self.mx_handler, self.submission_handler):
            if not await handler.drain(grace):
                log.warning("%s: deliveries still in flight at shutdown", handler.listener)
        for session in list(self._sessions):
            if session.transport is not None:
                session.transport.close()
        for server in self._servers:
            await server.wait_closed()
        self._servers.clear()
        await self.api.close()
        virus.configure(None)
        if (spam_filter := rspamd.client()) is not None:
            await spam_filter.close()
        rspamd.configure(None)
        if self._metrics is not None:
            self._metrics.shutdown()
            self._metrics.server_close()
            self._metrics = None

    def banner(self) -> str:
        metrics = f" :{self.metrics_port}" if self.metrics_port else " off"
        return (f"smtp_edge listening on {self.settings.host}:{self.mx_port} "
                f"(submission {self.submission_port}), metrics{metrics}")

    async def _listen(self, handler: EdgeHandler, port: int, **options: Any) -> asyncio.Server:
        loop = asyncio.get_running_loop()
        settings = self.settings

        def session() -> EdgeSMTP:
            protocol = EdgeSMTP(handler, listener=handler.listener, loop=loop,
                                hostname=settings.hostname, ident=IDENT,
                                data_size_limit=settings.max_size, decode_data=False,
                                enable_SMTPUTF8=True,   # RFC 6531 addresses (tidings_runtime.addresses)
                                timeout=settings.session_timeout, **options)
            SESSIONS.labels(handler.listener).inc()
            self._sessions.add(protocol)
            return protocol

        server = await loop.create_server(session, settings.host, port)
        self._servers.append(server)
        return server


def sender_auth(settings: Settings, resolver: dns.asyncresolver.Resolver | None) -> SenderAuth | None:
    """Port 2525's SPF, DKIM and DMARC check on the resolvers of ``--dns`` (None: ``--no-auth-checks``)."""
    if not settings.auth_checks or resolver is None:
        log.warning("TIDINGS_SMTP_AUTH_CHECKS=off: no SPF, DKIM or DMARC checks on port %s", settings.port)
        return None
    return SenderAuth(resolver, settings.authserv_id or settings.hostname, deadline=6 * settings.dns_timeout)


def blocklists(settings: Settings, resolver: dns.asyncresolver.Resolver | None) -> DnsBlocklists | None:
    """The optional DNS blocklist lookup of port 2525's clients (``--dnsbl``), one try a zone."""
    if not settings.dnsbl or resolver is None:
        return None
    return DnsBlocklists(resolver, settings.dnsbl, lifetime=settings.dns_timeout)


def _port(server: asyncio.Server) -> int:
    return int(server.sockets[0].getsockname()[1])
