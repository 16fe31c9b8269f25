"""Our policy, as aiosmtpd handler hooks: sender, recipients, AUTH, delivery.

aiosmtpd runs the protocol and calls ``handle_EHLO``, ``handle_MAIL``,
``handle_RCPT`` and ``handle_DATA`` for the reply line of each command.
:class:`EdgeHandler` holds what both listeners share; :class:`MxHandler`
(port 2525) and :class:`SubmissionHandler` (port 2587) differ only in who may
send, which recipients are taken, and which pipeline checks run.

The rule this module keeps: ``250`` after DATA only once ``Mail.Deliver``
returned OK, which the router does only when the message is durable on W
replicas. When the router is unavailable it is ``451 4.3.0`` and the client
retries; a request it refuses for good (a malformed address, an unknown user)
is a 5xx. Envelope addresses are checked, and put in their canonical form, by
:mod:`tidings_runtime.addresses`, the router's own rules.
"""
from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import time
import weakref
from collections.abc import Callable, Mapping
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session, TLSSetupException

from smtp_edge import pipeline, replies, transaction_log
from smtp_edge.errors import InvalidCredentials, PermanentFailure, TemporaryFailure
from smtp_edge.mail_api import MailApi
from smtp_edge.metrics import ACCEPTED, DELIVERY_SECONDS
from smtp_edge.model import Account, Recipient
from smtp_edge.pipeline import InboundMessage
from smtp_edge.pipeline.findings import Screening
from smtp_edge.pipeline.trace import Trace, stamp
from smtp_edge.transaction_log import Transaction
from tidings_runtime.addresses import AddressError, parse_address, same_mailbox
from tidings_runtime.ids import new_entry_id
from tidings_runtime.rate import TokenBuckets

log = logging.getLogger(__name__)

RecipientPolicy = Mapping[Recipient, Callable[[str], str] | None]

NULL_SENDER = "<>"   # how aiosmtpd reports ``MAIL FROM:<>`` (bounces, RFC 5321 4.5.5)


class EdgeHandler:
    """Hooks shared by both listeners; subclasses set the class attributes."""

    listener: str = ""
    recipient_policy: RecipientPolicy = {}      # None: accept the recipient
    checks: tuple[pipeline.Check, ...] = ()

    def __init__(self, api: MailApi, *, hostname: str, max_size: int,
                 max_recipients: int, checks: tuple[pipeline.Check, ...] | None = None,
                 send_rate: int = 0, send_burst: int = 1, dedupe: bool = True) -> None:
        self._api = api
        self._rate = TokenBuckets(send_rate, send_burst)
        # each transaction's accepted recipients in canonical form (one copy a user)
        self._accepted: weakref.WeakKeyDictionary[Envelope, set[str]] = weakref.WeakKeyDictionary()
        self._transactions: weakref.WeakKeyDictionary[Envelope, Transaction] = weakref.WeakKeyDictionary()
        self._dedupe = dedupe
        if checks is not None:
            self.checks = checks
        self._hostname = hostname
        self._max_size = max_size
        self._max_recipients = max_recipients
        self._deliveries = 0
        self._idle = asyncio.Event()
        self._idle.set()

    # -- policy points for subclasses -------------------------------------

    def sender_reply(self, session: Session, address: str) -> str | None:
        """A rejection for ``MAIL FROM:<address>``, or ``None`` to accept."""
        if address == NULL_SENDER:
            return None
        try:
            parse_address(address)
        except AddressError as error:
            return replies.bad_sender_address(address, error.reason)
        return None

    def author(self, session: Session) -> Account | None:
        """The authenticated user writing this message, if any."""
        return None

    # -- aiosmtpd hooks -----------------------------------------------------

    async def handle_EHLO(self, server: SMTP, session: Session, envelope: Envelope,
                          hostname: str, responses: list[str]) -> list[str]:
        session.host_name = hostname
        *extensions, last = responses
        return [*extensions, "250-ENHANCEDSTATUSCODES", last]

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, mail_options: list[str]) -> str:
        if not (address.isascii() or envelope.smtp_utf8):
            return self._logged(Transaction().begin(), replies.needs_smtputf8(address), session, address)
        txn = Transaction().begin()
        rejection = self.sender_reply(session, address)
        if rejection is not None:
            return self._logged(txn, rejection, session, address)
        self._transactions[envelope] = txn
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return replies.SENDER_OK

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        if not (address.isascii() or envelope.smtp_utf8):
            return replies.needs_smtputf8(address)
        try:
            parsed = parse_address(address)
            # Our users by their canonical form (one copy a user); another domain's local
            # part keeps its case, which only the far end may interpret (RFC 5321 2.4).
            mailbox = parsed.canonical
            accepted = self._accepted.setdefault(envelope, set())
            if mailbox in accepted:
                return replies.RECIPIENT_OK
            if len(envelope.rcpt_tos) >= self._max_recipients:
                return replies.TOO_MANY_RECIPIENTS
            status = await self._api.check_recipient(mailbox)
        except AddressError as error:        # ours, or the router's verdict
            return replies.bad_recipient_address(address, error.reason)
        except TemporaryFailure as error:
            return replies.temporary_failure(error.reason)
        except PermanentFailure as error:
            return replies.refused(error.reason)
        rejection = self.recipient_policy[status]
        if rejection is not None:
            return rejection(mailbox)
        envelope.rcpt_tos.append(str(parsed) if status is Recipient.NOT_HOSTED else mailbox)
        accepted.add(mailbox)
        envelope.rcpt_options.extend(rcpt_options)
        return replies.RECIPIENT_OK

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert envelope.original_content is not None and envelope.mail_from is not None
        reply = await self._data(session, envelope)
        return self._logged(self._transactions.pop(envelope, Transaction()), reply, session,
                            envelope.mail_from, tuple(envelope.rcpt_tos), len(envelope.original_content))

    def _logged(self, txn: Transaction, reply: str, session: Session, mail_from: str,
                recipients: tuple[str, ...] = (), size: int | None = None) -> str:
        """`reply`, once the transaction's line is logged (smtp_edge/transaction_log.py)."""
        author = self.author(session)
        transaction_log.record(txn, reply, listener=self.listener, peer=_peer_ip(session),
                               helo=session.host_name or "", user=author.user_id if author else "",
                               mail_from=mail_from, recipients=recipients, size=size)
        return reply

    async def _data(self, session: Session, envelope: Envelope) -> str:
        assert envelope.original_content is not None and envelope.mail_from is not None
        author = self.author(session)
        message = InboundMessage(raw=envelope.original_content, mail_from=envelope.mail_from,
                                 recipients=tuple(envelope.rcpt_tos), max_size=self._max_size,
                                 account=author, client_ip=_peer_ip(session), helo=session.host_name or "")
        rejection = await pipeline.screen(message, self.checks)
        if rejection is not None:
            return rejection
        entry_id = new_entry_id()
        sender_user_id = author.user_id if author else ""
        digest = transaction_digest(self.listener, sender_user_id, message.mail_from, message.recipients,
                                    message.raw) if self._dedupe else b""
        raw = stamp(message.findings.apply(message.raw), self._trace(session, message, entry_id))
        return await self._deliver(entry_id, raw, message.recipients, sender_user_id, message.mail_from,
                                   self.screening(message), digest)

    def screening(self, message: InboundMessage) -> Screening | None:
        """What ``Mail.Deliver`` is told of the checks (None: nothing, as for submission)."""
        return None

    async def handle_exception(self, error: Exception) -> str:
        if isinstance(error, TLSSetupException):      # aiosmtpd closes the connection
            log.info("%s: TLS handshake failed: %s", self.listener, error.__cause__)
        else:
            log.exception("%s: unexpected error in SMTP session", self.listener, exc_info=error)
        return replies.LOCAL_ERROR

    # -- delivery -------------------------------------------------------------

    async def _deliver(self, entry_id: str, raw: bytes, recipients: tuple[str, ...],
                       sender_user_id: str, mail_from: str, screening: Screening | None = None,
                       dedupe_digest: bytes = b"") -> str:
        self._deliveries += 1
        self._idle.clear()
        started = time.perf_counter()
        outcome = "failed"
        try:
            entry_id = await self._api.deliver(entry_id, raw, recipients, sender_user_id, mail_from,
                                               screening=screening, dedupe_digest=dedupe_digest) or entry_id
            outcome = "ok"
        except TemporaryFailure as error:
            log.warning("%s: delivery of %s failed: %s", self.listener, entry_id, error.reason)
            return replies.temporary_failure(error.reason)
        except PermanentFailure as error:
            log.warning("%s: delivery of %s refused: %s", self.listener, entry_id, error.reason)
            return replies.refused(error.reason)
        finally:
            DELIVERY_SECONDS.labels(self.listener, outcome).observe(time.perf_counter() - started)
            self._deliveries -= 1
            if not self._deliveries:
                self._idle.set()
        ACCEPTED.labels(self.listener).inc()
        return replies.accepted(entry_id)

    async def drain(self, timeout: float) -> bool:
        """Wait until no delivery is in flight; ``False`` if ``timeout`` ran out."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True

    def _trace(self, session: Session, message: InboundMessage, entry_id: str) -> Trace:
        protocol = "ESMTP" if session.extended_smtp else "SMTP"
        if session.ssl is not None:
            protocol += "S"
        if session.authenticated:
            protocol += "A"
        single = message.recipients[0] if len(message.recipients) == 1 else ""
        return Trace(helo=session.host_name or "", peer=_peer_ip(session), by=self._hostname,
                     protocol=protocol, entry_id=entry_id, recipient=single)


def transaction_digest(listener: str, user_id: str, mail_from: str, recipients: tuple[str, ...], raw: bytes) -> bytes:
    """What makes two transactions one message retried: the listener, the authenticated user,
    MAIL FROM, the RCPT TOs (as accepted) and the bytes as received (before our trace headers)."""
    h = hashlib.blake2b(digest_size=32, person=b"tidings-dedupe")
    for part in (listener, user_id, mail_from, *recipients):
        data = part.encode("utf-8", "surrogateescape")
        h.update(len(data).to_bytes(4, "big") + data)
    h.update(raw)
    return h.digest()


class MxHandler(EdgeHandler):
    """Port 2525, the MX role: mail from anyone, for hosted users only."""

    listener = "mx"
    recipient_policy: RecipientPolicy = {
        Recipient.LOCAL_USER: None,
        Recipient.UNKNOWN_USER: replies.no_such_user,
        Recipient.NOT_HOSTED: replies.relay_denied,     # never an open relay
    }
    checks = pipeline.INBOUND

    def screening(self, message: InboundMessage) -> Screening | None:
        return message.screening()


def _peer_ip(session: Session) -> str:
    """The client's IP address (aiosmtpd's ``session.peer`` is (host, port) on TCP)."""
    peer = session.peer
    return str(peer[0]) if isinstance(peer, tuple) and peer else str(peer or "")


class SubmissionHandler(EdgeHandler):
    """Port 2587: authenticated users send as themselves.

    aiosmtpd enforces STARTTLS before anything else and AUTH before MAIL; the
    credentials are checked here with ``Mail.Authenticate``. Recipients on our
    domains are delivered directly with a copy to the author's Sent folder;
    other domains need the outbound queue, which does not exist yet.
    """

    listener = "submission"
    recipient_policy: RecipientPolicy = {
        Recipient.LOCAL_USER: None,
        Recipient.UNKNOWN_USER: replies.no_such_user,
        Recipient.NOT_HOSTED: None,                     # the outgoing queue (after AUTH only)
    }
    checks = pipeline.SUBMISSION

    def author(self, session: Session) -> Account | None:
        account = session.auth_data if session.authenticated else None
        return account if isinstance(account, Account) else None

    def sender_reply(self, session: Session, address: str) -> str | None:
        account = self.author(session)
        if account is None:
            return replies.AUTH_REQUIRED
        if not same_mailbox(address, account.email):
            return replies.sender_not_owned(address)
        wait = self._rate.take(account.user_id)
        if wait > 0:
            return replies.rate_limited(max(1, math.ceil(wait)))
        return None

    # aiosmtpd parses the mechanism (challenges, base64, splitting) and hands
    # the credentials to ``capture_credentials``; we then check them, awaiting
    # the router, which aiosmtpd's synchronous authenticator cannot do.

    @staticmethod
    def capture_credentials(server: SMTP, session: Session, envelope: Envelope,
                            mechanism: str, auth_data: Any) -> AuthResult:
        """The ``authenticator`` given to aiosmtpd: refuses, carrying the credentials.

        On its own it fails closed; :meth:`auth_PLAIN` and :meth:`auth_LOGIN`
        pick the credentials up and decide.
        """
        return AuthResult(success=False, handled=False, auth_data=auth_data)

    async def auth_PLAIN(self, server: SMTP, args: list[str]) -> AuthResult:
        return await self._verify(await server.auth_PLAIN(None, args))

    async def auth_LOGIN(self, server: SMTP, args: list[str]) -> AuthResult:
        return await self._verify(await server.auth_LOGIN(None, args))

    async def _verify(self, parsed: AuthResult) -> AuthResult:
        credentials = parsed.auth_data
        if not isinstance(credentials, LoginPassword):
            return parsed                    # aiosmtpd already replied (bad base64, '*')
        try:
            email = credentials.login.decode("utf-8")
            password = credentials.password.decode("utf-8")
            account = await self._api.authenticate(email, password)
        except (UnicodeDecodeError, InvalidCredentials):
            return AuthResult(success=False, handled=False, message=replies.AUTH_INVALID)
        except TemporaryFailure:
            return AuthResult(success=False, handled=False,
                              message=replies.AUTH_TEMPORARY_FAILURE)
        return AuthResult(success=True, auth_data=account)
