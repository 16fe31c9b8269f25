"""The delivery loop: lease due items from the router, deliver, bounce, report.

Every `poll_interval_s` (and whenever an item finishes) one round leases as many due
items as there are free slots (`concurrency`), each for `lease_s`. An item is then, in
its own task: its body fetched, signed (DKIM, `dkim.py`), its due recipients grouped by
domain and delivered (`delivery.py`, the domains in parallel), each recipient's new
state decided (`retry.py`), one DSN for its FAILED recipients handed to `send_bounce`
(never for a bounce), and the whole item reported back, which releases the lease.

An attempt is cut off shortly before the lease ends (its recipients deferred), so the
report lands while the item is still ours. Duplicate window: a worker that dies after
the far end's 250 but before ReportAttempt lands leaves the item leased; when the lease
runs out (`lease_s`, 20 minutes by default) another worker delivers it again, as any MTA
does that crashes between the remote 250 and its queue update (RFC 5321 6.1).
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from smtp_edge.outbound import hold, reply
from smtp_edge.outbound.delivery import Deliverer, Envelope, Results, group_by_domain
from smtp_edge.outbound.dkim import Signer
from smtp_edge.outbound.dsn import Bounce, FailedRecipient, Report, bounce
from smtp_edge.outbound.metrics import DELIVERIES
from smtp_edge.outbound.queue_api import BounceRefused, QueueApi, RouterError
from smtp_edge.outbound.retry import Next, RetrySchedule, decide, expires_ms, is_expired
from tidings.v1 import queue_pb2, types_pb2
from tidings_runtime.durations import format_duration
from tidings_runtime.periodic import Periodic, PeriodicTask

log = logging.getLogger(__name__)

State = types_pb2.QueueRecipient
PENDING = (State.QUEUED, State.DEFERRED)
_STATE = {Next.DELIVERED: State.DELIVERED, Next.DEFERRED: State.DEFERRED, Next.FAILED: State.FAILED,
          Next.EXPIRED: State.FAILED}
REPORT_MARGIN_S = 30.0      # an attempt ends this long before the lease (at most a quarter of it)

SendBounce = Callable[[Bounce], Awaitable[None]]


def _now_ms() -> int:
    return int(time.time() * 1000)


class Worker:
    """Leases and delivers queue items; `start(periodic)`, later `stop()`."""

    def __init__(self, api: QueueApi, deliverer: Deliverer, signer: Signer, *, worker_id: str, hostname: str,
                 schedule: RetrySchedule, lifetime_ms: int, lease_s: float, poll_interval_s: float = 1.0,
                 concurrency: int = 16, send_bounce: SendBounce | None = None,
                 clock_ms: Callable[[], int] = _now_ms, sender_hold: hold.SenderHold | None = None) -> None:
        self._api = api
        self._deliverer = deliverer
        self._signer = signer
        self._worker_id = worker_id
        self._hostname = hostname
        self._schedule = schedule
        self._lifetime_ms = lifetime_ms
        self._lease_s = lease_s
        self._poll_interval_s = poll_interval_s
        self._concurrency = concurrency
        self._send_bounce = send_bounce or api.send_bounce
        self._clock_ms = clock_ms
        self._in_flight: set[asyncio.Task[None]] = set()
        self._hold = sender_hold or hold.SenderHold()
        self._task: PeriodicTask | None = None

    def start(self, periodic: Periodic) -> PeriodicTask:
        self._task = periodic.start(PeriodicTask("outbound-lease", self._poll_interval_s, self.lease_round,
                                                 immediately=True))
        return self._task

    async def stop(self, grace_s: float = 10.0) -> None:
        """Let items in flight finish for `grace_s`, then cancel them (their leases run out)."""
        if self._in_flight:
            _, pending = await asyncio.wait(set(self._in_flight), timeout=grace_s)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    async def lease_round(self) -> int:
        """Lease up to the free slots' worth of items and start them; how many were leased."""
        free = self._concurrency - len(self._in_flight)
        if free <= 0:
            return 0
        items = await self._api.lease(self._worker_id, free, int(self._lease_s * 1000))
        for item in items:
            task = asyncio.create_task(self._guarded(item), name=f"outbound-{item.id}")
            self._in_flight.add(task)
            task.add_done_callback(self._finished)
        return len(items)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        if self._task is not None:
            self._task.wake()

    async def _guarded(self, item: queue_pb2.QueueItem) -> None:
        try:
            await self.process(item)
        except RouterError as exc:
            log.warning("item %s: router call failed, retried when its lease runs out: %s", item.id, exc)
        except Exception:   # one bad item must not stop the others; its lease runs out and it is tried again
            log.exception("item %s failed", item.id)

    async def process(self, item: queue_pb2.QueueItem) -> queue_pb2.QueueItem:
        """One attempt at `item`, its bounce, its report; the item as the router stored it."""
        now = self._clock_ms()
        deadline_s = self._budget_s(item, now)
        expiry = expires_ms(item.created_ms, item.expires_ms, self._lifetime_ms)
        fetched: list[bytes] = []

        async def body() -> bytes:
            """The body, fetched only when an attempt or a bounce needs it, and only once."""
            if not fetched:
                fetched.append(await self._api.body(item.id))
            return fetched[0]

        due = [r for r in item.recipients if r.state in PENDING and r.next_attempt_ms <= now]
        if due and is_expired(now, expiry):
            for recipient in due:
                self._expire(recipient, item, expiry, now)
        elif due and self._hold.is_held(item.sender_user_id, now):
            held = hold.held_reply(item.mail_from)
            for recipient in due:
                self._apply(recipient, held, item, expiry, now)
            hold.HELD_ATTEMPTS.inc(len(due))
        elif due:
            signed = await self._signer.sign(await body())
            results = await self._deliver(item.mail_from, [r.address for r in due], signed, deadline_s)
            for recipient in due:
                self._hold.record(item.sender_user_id, results[recipient.address], now)
                self._apply(recipient, results[recipient.address], item, expiry, now)
        await self._bounce(item, body, now)
        return await self._api.report(item)

    def _budget_s(self, item: queue_pb2.QueueItem, now: int) -> float:
        lease_s = (item.lease_until_ms - now) / 1000 if item.lease_until_ms else self._lease_s
        return max(lease_s - min(REPORT_MARGIN_S, lease_s / 4), 0.1)

    async def _deliver(self, mail_from: str, recipients: list[str], raw: bytes, deadline_s: float) -> Results:
        groups = group_by_domain(recipients)
        outcomes = await asyncio.gather(*(self._deliver_domain(domain, Envelope(mail_from, tuple(rcpts), raw),
                                                               deadline_s)
                                          for domain, rcpts in groups.items()))
        return {address: result for outcome in outcomes for address, result in outcome.items()}

    async def _deliver_domain(self, domain: str, envelope: Envelope, deadline_s: float) -> Results:
        try:
            return await asyncio.wait_for(self._deliverer.deliver(domain, envelope), deadline_s)
        except TimeoutError:
            cut = reply.connection_lost(domain, f"attempt cut off after {deadline_s:.0f} s, before the lease ends")
            return {recipient: cut for recipient in envelope.recipients}

    def _apply(self, recipient: types_pb2.QueueRecipient, result: reply.Reply, item: queue_pb2.QueueItem,
               expiry: int, now: int) -> None:
        attempts = recipient.attempts + 1
        decision = decide(result.verdict, attempts, now, expiry, self._schedule)
        recipient.attempts = attempts
        recipient.updated_ms = now
        recipient.remote_mta = result.remote_mta
        recipient.next_attempt_ms = decision.next_attempt_ms
        recipient.state = _STATE[decision.state]
        recipient.last_reply = result.text()
        if decision.state is Next.EXPIRED:
            recipient.last_reply = reply.expired(self._lifetime_text(item, expiry), result.text())
        DELIVERIES.labels(decision.state.value).inc()
        log.info("item %s to %s: %s (%s)", item.id, recipient.address, decision.state.value, recipient.last_reply)

    def _expire(self, recipient: types_pb2.QueueRecipient, item: queue_pb2.QueueItem, expiry: int, now: int) -> None:
        recipient.state = State.FAILED
        recipient.last_reply = reply.expired(self._lifetime_text(item, expiry), recipient.last_reply)
        recipient.next_attempt_ms = 0
        recipient.updated_ms = now
        DELIVERIES.labels(Next.EXPIRED.value).inc()

    @staticmethod
    def _lifetime_text(item: queue_pb2.QueueItem, expiry: int) -> str:
        return format_duration(max(expiry - item.created_ms, 1000) // 1000)

    async def _bounce(self, item: queue_pb2.QueueItem, body: Callable[[], Awaitable[bytes]], now: int) -> None:
        """One DSN for every FAILED recipient, then BOUNCED; a bounce's failures tell no one."""
        failed = [r for r in item.recipients if r.state == State.FAILED]
        if not failed:
            return
        if not item.is_bounce and item.mail_from:
            report = Report(item.id, item.mail_from, self._hostname, item.created_ms,
                            tuple(FailedRecipient(r.address, r.last_reply, r.remote_mta, r.updated_ms) for r in failed))
            try:
                await self._send_bounce(bounce(report, await body(), now))
            except BounceRefused as exc:
                log.warning("item %s: the bounce to %s was refused, no one is told: %s", item.id, item.mail_from, exc)
            except RouterError as exc:
                log.warning("item %s: bounce not sent, tried again next lease: %s", item.id, exc)
                return
        for recipient in failed:
            recipient.state = State.BOUNCED
            recipient.updated_ms = max(recipient.updated_ms, now)
        DELIVERIES.labels("bounced").inc(len(failed))
