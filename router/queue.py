"""The outgoing queue on the replicated store (Stalwart's Queue/MessageEvent{due, id} layout,
on our N=3/W=2 directory).

An item (`tidings.v1.QueueItem`) is one message for its recipients outside our domains,
stored as the directory entry `queue:SHARD:ID`; its body is stored once, apart, as
`qbody:ID`. A shard's items share one partition, so each replica keeps a due index of the
shard (`storage_node/queue_index.py`) and a worker's lease asks R replicas for what is due.
Every change is a whole new item with a newer HLC version (LWW), written to W replicas
before it is acknowledged.

- Creation is idempotent: an item is first written at the version of its creation time, so
  a retried `Deliver` rewrites the same item at the same version, and any later change (a
  lease, an attempt) wins over it.
- A lease is an ordinary change: lease owner and expiry, due at the expiry. It is granted
  only after a quorum read of the item (a replica's index may be stale), and confirmed by
  reading it back; two workers racing for one item may both win only if their writes and
  reads interleave on different replicas, which a single router never does.
- A worker killed mid-delivery loses its lease at the expiry: the item is due again then.
"""
from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from prometheus_client import Gauge

from router.directory import Directory
from router.errors import FailedPrecondition, InvalidArgument, NotFound
from tidings.v1 import queue_pb2, storage_pb2, types_pb2
from tidings_runtime.hlc import hlc_pack
from tidings_runtime.ids import is_entry_id
from tidings_runtime.partitions import QUEUE_PREFIX

SHARDS = 16
DEFAULT_LIFETIME_MS = 5 * 86_400_000
LIST_PAGE = 500
MAX_DUE_MS = (1 << 62)

State = types_pb2.QueueRecipient.State
PENDING = (State.QUEUED, State.DEFERRED)
DONE = (State.DELIVERED, State.BOUNCED)

QUEUE_DEPTH = Gauge("tidings_queue_items", "Outgoing queue items with something left to do (as last listed)")
OLDEST_AGE = Gauge("tidings_queue_oldest_age_seconds", "Age of the oldest outgoing item with something left to do")


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def shard_of(item_id: str) -> int:
    return int(item_id[-4:], 16) % SHARDS


def item_key(item_id: str) -> str:
    return f"{QUEUE_PREFIX}{shard_of(item_id)}:{item_id}"


def body_key(item_id: str) -> str:
    return f"qbody:{item_id}"


def due_ms(item: queue_pb2.QueueItem, at_ms: int) -> int:
    """When a worker should take the item next: at once for a bounce owed, the earliest next
    attempt of a pending recipient, the lease's expiry while leased; 0 when all are done."""
    if item.lease_owner and item.lease_until_ms > at_ms:
        return item.lease_until_ms
    times = [r.next_attempt_ms or item.created_ms for r in item.recipients if r.state in PENDING]
    if any(r.state == State.FAILED for r in item.recipients):
        times.append(at_ms)
    return max(min(times), 1) if times else 0


def _list_call(request: storage_pb2.DirectoryListRequest) -> Callable[[Any], Awaitable[Any]]:
    return lambda stub: stub.ListDirectory(request)


def _newest_by_key(best: dict[str, storage_pb2.DirectoryEntry], answers: Iterable[tuple[Any, Any]]
                   ) -> dict[str, storage_pb2.DirectoryEntry]:
    """Fold replicas' listings into `best`: the newest copy of each key."""
    for _, answer in answers:
        for entry in answer.entries:
            if entry.key not in best or entry.version > best[entry.key].version:
                best[entry.key] = entry
    return best


def _decode(entry: storage_pb2.DirectoryEntry) -> queue_pb2.QueueItem | None:
    if not entry.found or not entry.value:
        return None
    item = queue_pb2.QueueItem()
    item.ParseFromString(entry.value)
    item.version = entry.version
    return item


class OutboundQueue:
    def __init__(self, directory: Directory, lifetime_ms: int = DEFAULT_LIFETIME_MS) -> None:
        self.directory = directory            # items and bodies are its entries
        self.replicas = directory.replicas    # for listing a shard
        self.clock = directory.clock
        self.lifetime_ms = lifetime_ms

    # -- the store -------------------------------------------------------------------------
    async def _save(self, item: queue_pb2.QueueItem, version: int | None = None) -> queue_pb2.QueueItem:
        saved = queue_pb2.QueueItem()
        saved.CopyFrom(item)
        saved.version = 0
        saved.due_ms = due_ms(saved, now_ms())
        version = self.clock.now() if version is None else version
        await self.directory.put(item_key(item.id), saved.SerializeToString(), version)
        saved.version = version
        return saved

    # -- producers -------------------------------------------------------------------------
    async def enqueue(self, item_id: str, raw: bytes, recipients: Iterable[str], *, mail_from: str,
                      sender_user_id: str, created_ms: int, is_bounce: bool = False,
                      sent_message_id: str = "") -> queue_pb2.QueueItem:
        """Durable on W replicas when it returns; the same call again changes nothing."""
        if not raw:
            raise InvalidArgument("empty message")
        version = hlc_pack(created_ms)
        item = queue_pb2.QueueItem(
            id=item_id, mail_from=mail_from, sender_user_id=sender_user_id, created_ms=created_ms,
            expires_ms=created_ms + self.lifetime_ms, size=len(raw), is_bounce=is_bounce,
            sent_message_id=sent_message_id,
            recipients=[types_pb2.QueueRecipient(address=r, state=State.QUEUED, next_attempt_ms=created_ms)
                        for r in dict.fromkeys(recipients)])
        await self.directory.put(body_key(item_id), raw, version)   # the body before the item that refers to it
        return await self._save(item, version)

    # -- workers ---------------------------------------------------------------------------
    async def lease_due(self, worker: str, limit: int, lease_ms: int) -> list[queue_pb2.QueueItem]:
        if not worker or limit <= 0 or lease_ms <= 0:
            raise InvalidArgument("a lease needs a worker name, a positive limit and a positive lease")
        shards = list(range(SHARDS))
        random.shuffle(shards)            # several workers take from different shards first
        at = now_ms()
        listed = await asyncio.gather(*(self._listed(shard, limit, due_by_ms=at) for shard in shards))
        candidates = [key for keys in listed for key in keys][:limit]
        leased = await asyncio.gather(*(self._lease(key, worker, lease_ms) for key in candidates))
        return [item for item in leased if item is not None]

    async def _lease(self, key: str, worker: str, lease_ms: int) -> queue_pb2.QueueItem | None:
        held = await self.directory.entry(key)
        item = None if held is None else _decode(held)
        at = now_ms()
        if item is None or not 0 < item.due_ms <= at:
            return None                    # a stale replica's index: the newest copy is not due
        item.lease_owner, item.lease_until_ms = worker, at + lease_ms
        saved = await self._save(item)
        check = await self.directory.entry(key)
        confirmed = None if check is None else _decode(check)
        if confirmed is None or confirmed.version != saved.version or confirmed.lease_owner != worker:
            return None                    # another worker's lease won
        return saved

    async def report(self, item: queue_pb2.QueueItem) -> queue_pb2.QueueItem:
        """Store a worker's attempt; the lease is released. A worker whose lease ran out and
        was taken by another is refused, so two attempts never overwrite each other."""
        current = await self.get(item.id)
        if current.lease_owner and current.lease_owner != item.lease_owner and current.lease_until_ms > now_ms():
            raise FailedPrecondition(f"item {item.id} is leased to another worker")
        if [r.address for r in item.recipients] != [r.address for r in current.recipients]:
            raise InvalidArgument(f"item {item.id}: a report must keep the item's recipients")
        updated = queue_pb2.QueueItem()
        updated.CopyFrom(current)
        del updated.recipients[:]
        updated.recipients.extend(item.recipients)
        updated.lease_owner, updated.lease_until_ms = "", 0
        saved = await self._save(updated)
        if saved.due_ms == 0:
            await self.directory.put(body_key(item.id), b"", self.clock.now())   # done: the body goes
        return saved

    async def body(self, item_id: str) -> bytes:
        held = await self.directory.entry(body_key(self._checked(item_id)))
        if held is None or not held.value:
            raise NotFound(f"no queued body for {item_id}")
        return bytes(held.value)

    # -- operators -------------------------------------------------------------------------
    async def get(self, item_id: str) -> queue_pb2.QueueItem:
        held = await self.directory.entry(item_key(self._checked(item_id)))
        item = None if held is None else _decode(held)
        if item is None:
            raise NotFound(f"no queue item {item_id}")
        return item

    async def find(self, item_id: str) -> queue_pb2.QueueItem | None:
        try:
            return await self.get(item_id)
        except NotFound:
            return None

    async def listing(self, limit: int = 100, include_done: bool = False) -> list[queue_pb2.QueueItem]:
        limit = limit if limit > 0 else 100
        shards = await asyncio.gather(*(self._every(shard) for shard in range(SHARDS)))
        found = [i for items in shards for i in items if i.due_ms or include_done]
        found.sort(key=lambda i: (i.created_ms, i.id))
        return found[:limit]

    async def retry(self, item_id: str = "", every: bool = False) -> list[queue_pb2.QueueItem]:
        """Deferred recipients are due now."""
        if bool(item_id) == every:
            raise InvalidArgument("name one item, or all")
        items = [await self.get(item_id)] if item_id else await self.listing(limit=1 << 30)
        changed = []
        at = now_ms()
        for item in items:
            deferred = [r for r in item.recipients if r.state == State.DEFERRED]
            for recipient in deferred:
                recipient.next_attempt_ms = at
            if deferred or item_id:
                changed.append(await self._save(item))
        return changed

    async def delete(self, item_id: str) -> queue_pb2.QueueItem:
        """Drop an item: its pending recipients fail now, so the worker bounces them."""
        item = await self.get(item_id)
        at = now_ms()
        for recipient in item.recipients:
            if recipient.state in PENDING:
                recipient.state = State.FAILED
                recipient.last_reply = "550 5.0.0 removed from the queue by the operator"
                recipient.updated_ms = at
        item.lease_owner, item.lease_until_ms = "", 0
        return await self._save(item)

    async def measure(self) -> None:
        """Queue depth and the oldest pending item's age, from the replicas' due indexes (only
        items with something left to do are read; done items are not)."""
        pending: dict[str, queue_pb2.QueueItem] = {}
        shards = await asyncio.gather(*(self._due_entries(shard, LIST_PAGE, due_by_ms=MAX_DUE_MS)
                                        for shard in range(SHARDS)))
        for entries in shards:
            for entry in entries:
                item = _decode(entry)
                if item is not None and item.due_ms:
                    pending[item.id] = item
        QUEUE_DEPTH.set(len(pending))
        oldest = min((i.created_ms for i in pending.values()), default=0)
        OLDEST_AGE.set((now_ms() - oldest) / 1000 if oldest else 0)

    # -- listing ---------------------------------------------------------------------------
    async def _due_entries(self, shard: int, limit: int, due_by_ms: int) -> list[storage_pb2.DirectoryEntry]:
        """What the replicas' indexes say is due, newest copy of each among the answers (a
        stale replica may still list an item: callers check the item itself)."""
        request = storage_pb2.DirectoryListRequest(partition=f"{QUEUE_PREFIX}{shard}", before_ms=due_by_ms,
                                                   limit=limit)
        outcome = await self.replicas.read(request.partition, _list_call(request))
        return list(_newest_by_key({}, outcome.answers).values())[:limit]

    async def _listed(self, shard: int, limit: int, due_by_ms: int) -> list[str]:
        """Keys that some replica's index says are due (to be checked against the newest copy)."""
        return [entry.key for entry in await self._due_entries(shard, limit, due_by_ms)]

    async def _every(self, shard: int) -> list[queue_pb2.QueueItem]:
        """Every item of a shard, newest copy of each among R replicas."""
        partition = f"{QUEUE_PREFIX}{shard}"
        best: dict[str, storage_pb2.DirectoryEntry] = {}
        after = ""
        while True:
            request = storage_pb2.DirectoryListRequest(partition=partition, all=True, limit=LIST_PAGE,
                                                       after_key=after)
            outcome = await self.replicas.read(partition, _list_call(request))
            _newest_by_key(best, outcome.answers)
            full = [answer for _, answer in outcome.answers if len(answer.entries) >= LIST_PAGE]
            if not full:
                break
            after = min(answer.entries[-1].key for answer in full)
        return [item for item in map(_decode, best.values()) if item is not None]

    @staticmethod
    def _checked(item_id: str) -> str:
        if not (len(item_id) == 32 and is_entry_id(item_id)):
            raise InvalidArgument(f"malformed queue item id {item_id!r}")
        return item_id
