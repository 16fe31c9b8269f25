"""The router's ``tidings.v1.Mail`` API as the SMTP edge uses it.

One ``grpc.aio`` channel, opened by :meth:`MailApi.open` and closed by
:meth:`MailApi.close`. Three calls, each with a deadline, returning plain
values. This is the one place where gRPC status codes become this package's
errors (:mod:`smtp_edge.errors`); nothing outside imports ``grpc``. Only
unavailability is temporary; a request the router calls invalid is refused for good.

Retries on ``UNAVAILABLE`` live in the channel's service config; they are
safe because ``Deliver`` is idempotent per entry id.
"""
from __future__ import annotations

import json
from collections.abc import Sequence

import grpc

from smtp_edge.errors import EdgeError, InvalidCredentials, PermanentFailure, TemporaryFailure
from smtp_edge.model import Account, Recipient
from smtp_edge.pipeline.findings import Screening
from tidings.v1 import mail_pb2, mail_pb2_grpc, types_pb2
from tidings_runtime import logs
from tidings_runtime.addresses import AddressError
from tidings_runtime.ttl_cache import TtlCache

_SERVICE_CONFIG = json.dumps({
    "methodConfig": [{
        "name": [{"service": "tidings.v1.Mail"}],
        # Long enough (up to ~1.4 s, randomised) to span the router's redial of a storage node
        # that just came back (at most 1 s of backoff: tidings_runtime/channels.py), yet inside
        # the shortest deadline an edge is given; safe, as Deliver is idempotent.
        "retryPolicy": {
            "maxAttempts": 4,
            "initialBackoff": "0.2s",
            "maxBackoff": "1s",
            "backoffMultiplier": 2,
            "retryableStatusCodes": ["UNAVAILABLE"],
        },
    }],
})

# Why a call failed, as told to the SMTP client (after "451 4.3.0 ").
_REASONS: dict[grpc.StatusCode, str] = {
    grpc.StatusCode.UNAVAILABLE: "mail store unavailable",
    grpc.StatusCode.DEADLINE_EXCEEDED: "mail store timed out",
    grpc.StatusCode.RESOURCE_EXHAUSTED: "mail store out of resources",
}
# The request itself is wrong (RFC 5321: a 5xx, so the client gives up and bounces).
_PERMANENT = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION}
_BAD_CREDENTIALS = {
    grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.INVALID_ARGUMENT,
}

_RECIPIENT = {
    mail_pb2.CheckRecipientResponse.LOCAL_USER: Recipient.LOCAL_USER,
    mail_pb2.CheckRecipientResponse.UNKNOWN_USER: Recipient.UNKNOWN_USER,
    mail_pb2.CheckRecipientResponse.NOT_HOSTED: Recipient.NOT_HOSTED,
}


def screening_message(screening: Screening) -> types_pb2.Screening:
    """The pipeline's plain :class:`Screening` as ``tidings.v1.Screening``."""
    return types_pb2.Screening(
        screened=screening.screened, authenticated_domain=screening.authenticated_domain,
        client_ip=screening.client_ip, quarantine=screening.quarantine, sender_domain=screening.sender_domain,
        rules=[types_pb2.SpamRule(name=rule.name, score=rule.score, detail=rule.detail) for rule in screening.rules])


def translate(error: grpc.RpcError, *, credentials: bool = False) -> EdgeError:
    """Map a failed call to :class:`InvalidCredentials` (``Authenticate``, i.e.
    ``credentials=True``), :class:`PermanentFailure` (an invalid request), or
    :class:`TemporaryFailure` (anything else), so the SMTP client retries only what may work.
    """
    code = error.code() if callable(getattr(error, "code", None)) else None
    if credentials and code in _BAD_CREDENTIALS:
        return InvalidCredentials(str(code))
    if code in _PERMANENT:
        details = error.details() if callable(getattr(error, "details", None)) else None
        return PermanentFailure(details or "request refused")
    reason = _REASONS.get(code, "mail store failed") if code else "mail store failed"
    return TemporaryFailure(reason)


class MailApi:
    """Client of ``tidings.v1.Mail`` for the edge; create, :meth:`open`, use, :meth:`close`."""

    def __init__(self, target: str, *, rpc_timeout: float, deliver_timeout: float,
                 max_message_bytes: int, lookup_ttl: float = 0.0) -> None:
        self._target = target
        # A yes (a user here) is kept lookup_ttl seconds, as the router keeps known accounts;
        # a no is asked again each time, so a new account receives at once.
        self._known: TtlCache[str, Recipient] | None = TtlCache(lookup_ttl, 100_000) if lookup_ttl > 0 else None
        self._rpc_timeout = rpc_timeout
        self._deliver_timeout = deliver_timeout
        self._max_message_bytes = max_message_bytes
        self._channel: grpc.aio.Channel | None = None
        self._stub: mail_pb2_grpc.MailStub | None = None

    async def open(self) -> None:
        """Open the channel; it connects lazily and reconnects on its own."""
        # Room for the raw message plus the request's other fields.
        limit = self._max_message_bytes + 1024 * 1024
        self._channel = grpc.aio.insecure_channel(self._target, options=[
            ("grpc.service_config", _SERVICE_CONFIG),
            ("grpc.max_send_message_length", limit),
            ("grpc.max_receive_message_length", limit),
        ])
        self._stub = mail_pb2_grpc.MailStub(self._channel)

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel = self._stub = None

    @property
    def stub(self) -> mail_pb2_grpc.MailStub:
        if self._stub is None:
            raise RuntimeError("MailApi used before open()")
        return self._stub

    async def check_recipient(self, address: str) -> Recipient:
        """Whether ``address`` is a user here, an unknown user of ours, or not ours at all;
        :class:`AddressError` when the router finds it malformed."""
        known = self._known.get(address) if self._known is not None else None
        if known is not None:
            return known
        try:
            response = await self.stub.CheckRecipient(
                mail_pb2.CheckRecipientRequest(address=address), timeout=self._rpc_timeout,
                metadata=logs.request_metadata())   # the transaction id as x-request-id
        except grpc.RpcError as error:
            raise translate(error) from error
        if response.status == mail_pb2.CheckRecipientResponse.MALFORMED:
            raise AddressError(address, response.reason)
        status = _RECIPIENT.get(response.status)
        if status is None:
            raise TemporaryFailure("recipient check gave no answer")
        if status is Recipient.LOCAL_USER and self._known is not None:
            self._known.put(address, status)
        return status

    async def deliver(self, entry_id: str, raw: bytes, recipients: Sequence[str],
                      sender_user_id: str = "", mail_from: str = "", *,
                      screening: Screening | None = None, dedupe_digest: bytes = b"") -> str:
        """Return only once the router says the message is durable (W replicas): stored for
        hosted recipients, queued for the others. ``screening``: what port 2525's checks found;
        ``dedupe_digest``: the transaction's, so that a retry reuses the first entry id.
        Returns the entry id the router delivered under ("" from a router that does not say)."""
        request = mail_pb2.DeliverRequest(entry_id=entry_id, raw=raw, recipients=list(recipients),
                                          sender_user_id=sender_user_id, mail_from=mail_from,
                                          dedupe_digest=dedupe_digest)
        if screening is not None:
            request.screening.CopyFrom(screening_message(screening))
        try:
            response = await self.stub.Deliver(request, timeout=self._deliver_timeout,
                                                 metadata=logs.request_metadata())
        except grpc.RpcError as error:
            raise translate(error) from error
        return str(getattr(response, "entry_id", "") or "")

    async def authenticate(self, email: str, password: str) -> Account:
        try:
            account = await self.stub.Authenticate(
                mail_pb2.AuthenticateRequest(email=email, password=password),
                timeout=self._rpc_timeout, metadata=logs.request_metadata())
        except grpc.RpcError as error:
            raise translate(error, credentials=True) from error
        if not account.user_id:
            raise InvalidCredentials("no account")
        return Account(user_id=account.user_id, email=account.email or email)
