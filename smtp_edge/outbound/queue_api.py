"""The router as the delivery worker uses it: `tidings.v1.Queue` (lease, body, report,
signing keys) and `tidings.v1.Mail.Deliver` (bounces), over one `grpc.aio` channel.

The one place where gRPC status codes become this package's errors: `RouterError` for a
call that may work later, `BounceRefused` for a bounce the router will never take.
Retries on UNAVAILABLE live in the channel's service config; each call here is safe to
repeat (a lease is the router's to grant, a report carries the whole item, Deliver is
idempotent per entry id).
"""
from __future__ import annotations

import json
import logging
from typing import Any

import grpc

from smtp_edge.outbound.dkim import Key, KeyFormatError, dkimpy_key
from smtp_edge.outbound.dsn import Bounce
from tidings.v1 import mail_pb2, mail_pb2_grpc, queue_pb2, queue_pb2_grpc

log = logging.getLogger(__name__)

_SERVICE_CONFIG = json.dumps({
    "methodConfig": [{
        "name": [{"service": "tidings.v1.Queue"}, {"service": "tidings.v1.Mail"}],
        "retryPolicy": {"maxAttempts": 3, "initialBackoff": "0.1s", "maxBackoff": "1s",
                        "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]},
    }],
})
_REFUSED = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION,
            grpc.StatusCode.NOT_FOUND, grpc.StatusCode.PERMISSION_DENIED}


class RouterError(Exception):
    """A router call failed; the next round tries again."""


class BounceRefused(Exception):
    """The router will never deliver this bounce (e.g. its recipient is not hosted)."""


class QueueApi:
    """Client of the router's Queue service and Mail.Deliver; `open`, use, `close`."""

    def __init__(self, target: str, *, rpc_timeout: float) -> None:
        self._target = target
        self._timeout = rpc_timeout
        self._channel: grpc.aio.Channel | None = None
        self._queue: queue_pb2_grpc.QueueStub | None = None
        self._mail: mail_pb2_grpc.MailStub | None = None

    async def open(self) -> None:
        self._channel = grpc.aio.insecure_channel(self._target, options=[("grpc.service_config", _SERVICE_CONFIG)])
        self._queue = queue_pb2_grpc.QueueStub(self._channel)
        self._mail = mail_pb2_grpc.MailStub(self._channel)

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel = None

    @property
    def _q(self) -> queue_pb2_grpc.QueueStub:
        if self._queue is None:
            raise RouterError("QueueApi used before open()")
        return self._queue

    async def lease(self, worker: str, limit: int, lease_ms: int) -> list[queue_pb2.QueueItem]:
        request = queue_pb2.LeaseRequest(worker=worker, limit=limit, lease_ms=lease_ms)
        return list((await self._call(self._q.LeaseDue, request)).items)

    async def body(self, item_id: str) -> bytes:
        return bytes((await self._call(self._q.GetBody, queue_pb2.QueueItemRef(id=item_id))).raw)

    async def report(self, item: queue_pb2.QueueItem) -> queue_pb2.QueueItem:
        return await self._call(self._q.ReportAttempt, item)

    async def signing_keys(self, domain: str) -> list[Key] | None:
        """The domain's keys in dkimpy's form (unusable ones left out); None if not hosted."""
        try:
            answer = await self._q.GetSigningKeys(queue_pb2.SigningKeysRequest(domain=domain), timeout=self._timeout)
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise RouterError(f"GetSigningKeys({domain}): {exc.code().name}") from None
        keys = []
        for key in answer.keys:
            try:
                keys.append(dkimpy_key(key.selector, key.algorithm, bytes(key.private_key)))
            except KeyFormatError as exc:
                log.error("DKIM key of %s left out: %s", domain, exc)
        return keys

    async def send_bounce(self, bounce: Bounce) -> None:
        """Deliver a DSN with the null sender (`Mail.Deliver`, idempotent per entry id).

        To a hosted sender it lands in their Inbox; to a remote sender the router queues it
        as an item with `is_bounce` set, which a worker then delivers like any other (and
        never bounces). A refusal (say, a hosted sender's account is gone) is BounceRefused."""
        if self._mail is None:
            raise RouterError("QueueApi used before open()")
        request = mail_pb2.DeliverRequest(entry_id=bounce.entry_id, raw=bounce.raw, recipients=[bounce.sender],
                                          mail_from="", bounce=True)
        try:
            await self._mail.Deliver(request, timeout=self._timeout)
        except grpc.aio.AioRpcError as exc:
            if exc.code() in _REFUSED:
                raise BounceRefused(f"{exc.code().name}: {exc.details()}") from None
            raise RouterError(f"Deliver (bounce {bounce.entry_id}): {exc.code().name}") from None

    async def _call(self, method: Any, request: Any) -> Any:     # grpc stubs are untyped
        try:
            return await method(request, timeout=self._timeout)
        except grpc.aio.AioRpcError as exc:
            raise RouterError(f"{exc.code().name}: {exc.details()}") from None
