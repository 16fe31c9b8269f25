"""Read repair: when a read sees replicas disagree, bring the stale ones up to the newest
state in the background (after Cassandra's service/reads/repair/ReadRepair.java).

Deciding is pure (`for_message`, `for_listing`: answers per node in, repair actions
out); `ReadRepair` sends the actions as background tasks with bounded concurrency, logs
failures and never raises to the reader. Every repair is idempotent on the replica:
StoreMessage of an id already held changes nothing, UpdateMessage with a version the
replica already has or exceeds is a no-op (last writer wins), and a tombstone is final.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from prometheus_client import Counter

from router.ring import NodeInfo
from tidings.v1 import storage_pb2, storage_pb2_grpc, types_pb2

log = logging.getLogger(__name__)
StubOf = Callable[[NodeInfo], storage_pb2_grpc.StorageNodeStub]

STORE, UPDATE, EXPUNGE = "store", "update", "expunge"
MAX_REPAIRS_PER_READ = 20
MAX_CONCURRENT = 8
MAX_PENDING = 256  # repairs queued beyond this are dropped: a later read will find them again

REPAIRS = Counter("tidings_read_repairs_total", "Read repairs sent to stale replicas", ["kind"])
FAILURES = Counter("tidings_read_repair_failures_total", "Read repairs that failed")


@dataclass(frozen=True)
class Repair:
    """One action on one replica.

    store: `state` (and `raw`) is the newest copy; raw None means fetch it from `source`.
    update: `state` carries the newest folder, flags, keywords (sent as the whole set) and version.
    expunge: `version` is the tombstone's; 0 means read it from `source` first.
    """

    kind: str
    node: NodeInfo
    message_id: str
    state: types_pb2.MessageSummary | None = None
    raw: bytes | None = None
    version: int = 0
    source: NodeInfo | None = None


def held_order(held: storage_pb2.StoredMessage) -> tuple[bool, int]:
    """Which copy wins: a tombstone over any live copy, then the higher version."""
    return held.tombstone, held.summary.version


def for_message(message_id: str, answers: list[tuple[NodeInfo, storage_pb2.StoredMessage]],
                missing: list[NodeInfo]) -> list[Repair]:
    """Repairs after GetMessage: `answers` are the replicas that hold the id (live or
    tombstone), `missing` those that answered NOT_FOUND."""
    if not answers:
        return []
    _, best = max(answers, key=lambda a: held_order(a[1]))
    version = best.summary.version
    repairs: list[Repair] = []
    if best.tombstone:  # a tombstone wins over a live copy of any version
        for node, held in answers:
            if not held.tombstone:
                repairs.append(Repair(EXPUNGE, node, message_id, version=version))
        return repairs  # a replica that never held it has nothing to resurrect
    for node in missing:
        repairs.append(Repair(STORE, node, message_id, state=best.summary, raw=best.raw, version=version))
    for node, held in answers:
        if not held.tombstone and held.summary.version < version:
            repairs.append(Repair(UPDATE, node, message_id, state=best.summary, version=version))
    return repairs[:MAX_REPAIRS_PER_READ]


def for_listing(listed: list[tuple[NodeInfo, storage_pb2.NodeSummaries]],
                checked: Sequence[tuple[NodeInfo, storage_pb2.NodeSummaries]] = (),
                asked: Iterable[str] = ()) -> list[Repair]:
    """Repairs after a listing (ListFolder, GetThread) and its check of doubtful ids.

    `listed`: each replica's page. `checked`: each replica's GetSummaries answer for the
    ids in `asked`. A page can leave an id out for paging reasons, so only a checked
    answer that has the id neither live nor as a tombstone proves the replica lacks it.
    """
    held: dict[tuple[str, str], tuple[NodeInfo, types_pb2.MessageSummary]] = {}
    best: dict[str, tuple[NodeInfo, types_pb2.MessageSummary]] = {}
    dead: dict[str, NodeInfo] = {}
    for node, answer in [*listed, *checked]:
        for summary in answer.messages:
            mine = held.get((node.node_id, summary.id))
            if mine is None or summary.version > mine[1].version:
                held[(node.node_id, summary.id)] = (node, summary)
            top = best.get(summary.id)
            if top is None or summary.version > top[1].version:
                best[summary.id] = (node, summary)
        for message_id in answer.tombstones:
            dead.setdefault(message_id, node)
    repairs: dict[tuple[str, str], Repair] = {}
    for (node_id, message_id), (node, summary) in sorted(held.items()):
        if message_id in dead:
            repairs[(node_id, message_id)] = Repair(EXPUNGE, node, message_id, source=dead[message_id])
        elif summary.version < best[message_id][1].version:
            newest = best[message_id][1]
            repairs[(node_id, message_id)] = Repair(UPDATE, node, message_id, state=newest, version=newest.version)
    wanted = sorted(set(asked))
    for node, answer in checked:
        has = {s.id for s in answer.messages} | set(answer.tombstones)
        for message_id in wanted:
            if message_id in has or message_id in dead or message_id not in best:
                continue
            source, newest = best[message_id]
            repairs.setdefault((node.node_id, message_id),
                               Repair(STORE, node, message_id, state=newest, version=newest.version, source=source))
    return list(repairs.values())[:MAX_REPAIRS_PER_READ]


class ReadRepair:
    """Sends repairs as background tasks, at most `concurrency` at a time."""

    def __init__(self, stub_of: StubOf, timeout: float = 5.0, concurrency: int = MAX_CONCURRENT) -> None:
        self._stub_of = stub_of
        self._timeout = timeout
        self._concurrency = concurrency
        self._semaphore: asyncio.Semaphore | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def submit(self, user_id: str, repairs: list[Repair]) -> None:
        """Schedule the repairs and return at once; never raises."""
        try:
            for repair in repairs[:MAX_REPAIRS_PER_READ]:
                if len(self._tasks) >= MAX_PENDING:
                    log.info("read repair backlog full; dropping %s of %s on node %s",
                             repair.kind, repair.message_id, repair.node.node_id)
                    continue
                task = asyncio.get_running_loop().create_task(self._run(user_id, repair))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        except Exception:  # noqa: BLE001 - repair must never fail a read
            log.exception("could not schedule read repair")

    async def drain(self) -> None:
        """Wait for the repairs under way (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def _run(self, user_id: str, repair: Repair) -> None:
        if self._semaphore is None:
            self._semaphore = asyncio.Semaphore(self._concurrency)
        async with self._semaphore:
            try:
                if await self._apply(user_id, repair):
                    REPAIRS.labels(repair.kind).inc()
            except Exception as exc:  # noqa: BLE001 - logged and counted, never raised
                FAILURES.inc()
                log.warning("read repair %s of %s on node %s failed: %s",
                            repair.kind, repair.message_id, repair.node.node_id, exc)

    async def _apply(self, user_id: str, repair: Repair) -> bool:
        """Send one repair; False when there turned out to be nothing to send."""
        stub = self._stub_of(repair.node)
        if repair.kind == UPDATE:
            assert repair.state is not None
            s = repair.state
            await stub.UpdateMessage(storage_pb2.UpdateMessageRequest(
                user_id=user_id, id=repair.message_id, unread=s.unread, starred=s.starred,
                folder_id=s.folder_id, answered=s.answered, draft=s.draft, deleted=s.deleted,
                keywords=storage_pb2.KeywordSet(names=s.keywords), version=s.version), timeout=self._timeout)
            return True
        if repair.kind == EXPUNGE:
            version = repair.version
            if not version:
                if repair.source is None:
                    return False
                tomb = await self._fetch(user_id, repair.source, repair.message_id)
                if not tomb.tombstone:
                    return False
                version = tomb.summary.version
            await stub.UpdateMessage(storage_pb2.UpdateMessageRequest(
                user_id=user_id, id=repair.message_id, expunge=True, version=version), timeout=self._timeout)
            return True
        if repair.kind == STORE:
            state, raw = repair.state, repair.raw
            if raw is None:
                if repair.source is None:
                    return False
                fetched = await self._fetch(user_id, repair.source, repair.message_id)
                if fetched.tombstone:
                    return False
                state, raw = fetched.summary, fetched.raw
            assert state is not None
            await stub.StoreMessage(storage_pb2.StoreMessageRequest(
                user_id=user_id, id=repair.message_id, raw=raw, thread_id=state.thread_id,
                folder_id=state.folder_id, unread=state.unread, starred=state.starred,
                answered=state.answered, draft=state.draft, deleted=state.deleted, keywords=state.keywords,
                received_ms=state.received_ms, version=state.version), timeout=self._timeout)
            return True
        raise ValueError(f"unknown repair kind {repair.kind!r}")

    async def _fetch(self, user_id: str, node: NodeInfo, message_id: str) -> storage_pb2.StoredMessage:
        return await self._stub_of(node).GetMessage(
            storage_pb2.NodeMessageRef(user_id=user_id, id=message_id), timeout=self._timeout)
