"""The change feed of a mailbox, read and pushed: `Mail.Changes` reads the folded change
rows from R replicas; `Mail.Watch` waits for the user's MODSEQ to move, then reads again;
`Mail.Mailbox` reads one folder's view (UIDs, each message's MODSEQ) for IMAP.

The router learns that a mailbox moved from every storage node it serves (one
`WatchOrder` stream each, whichever router coordinated the change) and from its own
commits, whichever comes first. A missed notice costs latency, never a change: a watch
also reads again every few seconds, and each read starts from the last MODSEQ it sent.
"""
from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import AsyncIterator, Iterable

import grpc
from prometheus_client import Counter, Gauge

from router.errors import FailedPrecondition, InvalidArgument
from router.mailbox_order import MailboxOrder
from router.replicas import Replicas
from router.ring import NodeInfo
from tidings.v1 import mail_pb2, storage_pb2

log = logging.getLogger(__name__)

DEFAULT_LIMIT = 256
MAX_LIMIT = 1024
MAX_FOLDER_PAGE = 10_000
WATCH_POLL_S = 5.0          # a watch reads again at least this often, notice or not
RESUBSCRIBE_S = 0.5
CANNOT_CALCULATE = "cannot_calculate_changes"

WATCHES = Gauge("tidings_watch_streams", "Mail.Watch streams open on this router")
NOTICES = Counter("tidings_order_notices_total", "Mailbox-order notices from storage nodes")


class ChangeFeed:
    def __init__(self, replicas: Replicas) -> None:
        self.replicas = replicas
        self._waiters: dict[str, set[asyncio.Event]] = defaultdict(set)
        self._streams: dict[str, asyncio.Task[None]] = {}

    # -- reads --------------------------------------------------------------------------
    async def changes(self, user_id: str, since: int, limit: int) -> mail_pb2.ChangesResponse:
        """The changes after `since` from the most advanced of R replicas (every replica's
        rows are a prefix of the same sequence, so the longest holds the others)."""
        limit = limit or DEFAULT_LIMIT
        if not 1 <= limit <= MAX_LIMIT:
            raise InvalidArgument(f"limit must be between 1 and {MAX_LIMIT}")
        request = storage_pb2.OrderChangesRequest(user_id=user_id, since=since, limit=limit + 1)
        outcome = await self.replicas.read(user_id, lambda stub: stub.OrderChanges(request))
        answer = max((a for _, a in outcome.answers), key=lambda a: a.modseq)
        if since < answer.low_water:
            raise FailedPrecondition(f"{CANNOT_CALCULATE}: state {since} is older than the feed keeps "
                                     f"(from {answer.low_water}); resync from the listings")
        rows = list(answer.changes[:limit])
        new_state = rows[-1].modseq if rows else since
        return mail_pb2.ChangesResponse(old_state=since, new_state=new_state, changes=rows,
                                        has_more=answer.modseq > new_state and bool(rows))

    async def watch(self, user_id: str, since: int) -> AsyncIterator[mail_pb2.ChangesResponse]:
        """Every change after `since`, then each new batch, until the caller stops."""
        moved = asyncio.Event()
        self._waiters[user_id].add(moved)
        WATCHES.inc()
        try:
            while True:
                moved.clear()
                batch = await self.changes(user_id, since, MAX_LIMIT)
                if batch.changes:
                    since = batch.new_state
                    yield batch
                if batch.has_more:
                    continue
                try:
                    await asyncio.wait_for(moved.wait(), WATCH_POLL_S)
                except TimeoutError:
                    pass
        finally:
            WATCHES.dec()
            waiters = self._waiters.get(user_id)
            if waiters is not None:
                waiters.discard(moved)
                if not waiters:
                    del self._waiters[user_id]

    async def mailbox(self, user_id: str, folder_id: str, after_uid: int, limit: int, order: MailboxOrder
                      ) -> mail_pb2.MailboxView:
        """A folder's view in the order (IMAP's SELECT) from the most advanced of R replicas.
        A folder the order has not seen yet is ordered first (a FOLDER_CHANGED), so it has a
        UIDVALIDITY before anyone is told one."""
        limit = limit or MAX_FOLDER_PAGE
        if not 1 <= limit <= MAX_FOLDER_PAGE:
            raise InvalidArgument(f"limit must be between 1 and {MAX_FOLDER_PAGE}")
        request = storage_pb2.OrderFolderRequest(user_id=user_id, folder_id=folder_id, after_uid=after_uid, limit=limit)

        async def read() -> storage_pb2.OrderFolderReply:
            outcome = await self.replicas.read(user_id, lambda stub: stub.OrderFolder(request))
            return max((a for _, a in outcome.answers), key=lambda a: a.modseq)

        view = await read()
        if view.uidvalidity == 0:
            await order.append(user_id, [storage_pb2.OrderIntent(kind=storage_pb2.OrderIntent.FOLDER_CHANGED,
                                                                 folder_id=folder_id)])
            view = await read()
        return mail_pb2.MailboxView(uidvalidity=view.uidvalidity, uid_next=view.uid_next, highest_modseq=view.modseq,
                                    entries=view.entries, has_more=view.has_more)

    def moved(self, user_id: str, modseq: int = 0) -> None:
        """The user's mailbox advanced: wake its watches."""
        for event in self._waiters.get(user_id, ()):
            event.set()

    # -- notices from the storage nodes -------------------------------------------------
    def follow(self, nodes: Iterable[NodeInfo]) -> None:
        """Keep one WatchOrder stream open to each of these nodes (and none to others)."""
        wanted = {node.node_id: node for node in nodes}
        for node_id in list(self._streams):
            if node_id not in wanted:
                self._streams.pop(node_id).cancel()
        for node_id, node in wanted.items():
            if node_id not in self._streams or self._streams[node_id].done():
                self._streams[node_id] = asyncio.create_task(self._listen(node), name=f"watch-order-{node_id}")

    async def stop(self) -> None:
        for task in self._streams.values():
            task.cancel()
        await asyncio.gather(*self._streams.values(), return_exceptions=True)
        self._streams.clear()

    async def _listen(self, node: NodeInfo) -> None:
        while True:
            try:
                stream = self.replicas.pool.stub(node).WatchOrder(storage_pb2.WatchOrderRequest())
                async for notice in stream:
                    NOTICES.inc()
                    self.moved(notice.user_id, notice.modseq)
            except grpc.aio.AioRpcError as exc:
                log.debug("order notices from %s: %s", node.node_id, exc.code().name)
            # the stream ended (node restart, overflow): every watch reads again, then resubscribe
            for user_id in list(self._waiters):
                self.moved(user_id)
            await asyncio.sleep(RESUBSCRIBE_S)
