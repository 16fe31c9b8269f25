"""Who is told when a user's mailbox order advances on this node: each WatchOrder stream
(a router) holds a bounded queue; a stream that falls that far behind is ended, and its
router subscribes again and catches up from the change feed, so nothing is lost."""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

QUEUE_LIMIT = 10_000


class OrderWatchers:
    def __init__(self) -> None:
        self._queues: set[asyncio.Queue[tuple[str, int] | None]] = set()

    def tell(self, user_id: str, modseq: int) -> None:
        for queue in list(self._queues):
            if queue.qsize() >= QUEUE_LIMIT:
                self._queues.discard(queue)
                queue.put_nowait(None)      # past the bound: end that stream (it re-subscribes)
            else:
                queue.put_nowait((user_id, modseq))

    async def subscribe(self) -> AsyncIterator[tuple[str, int]]:
        queue: asyncio.Queue[tuple[str, int] | None] = asyncio.Queue()
        self._queues.add(queue)
        try:
            while (notice := await queue.get()) is not None:
                yield notice
        finally:
            self._queues.discard(queue)
