"""Background upkeep of the embedded search index: users who got mail have their fresh postings
sealed and merged into segments (search_node/segments.py), each step planned in a thread off
the event loop and applied through the group committer in a batch of its own."""
from __future__ import annotations

import asyncio
import itertools
import threading
import time
from functools import partial

from prometheus_client import Counter, Gauge

from search_node import segments
from search_node.index import SearchIndex
from storage_node.commit import GroupCommitter
from storage_node.engine import Engine

FORGET_AFTER_S = 2.0  # idle this long past the grace of retired data, a user is forgotten
STEPS_PER_ROUND = 64  # per user, so one busy mailbox cannot hold up the others
STEPS = Counter("tidings_search_maintenance_steps_total", "Index maintenance steps (seal, merge, purge)",
                ["result"])  # applied, or stale: the user's segments moved between plan and apply
DOCS_SEALED = Counter("tidings_search_docs_sealed_total", "Docs whose fresh postings were sealed into segments")
PENDING_USERS = Gauge("tidings_search_maintenance_pending_users", "Users the index maintainer is watching")


class IndexMaintainer:
    """Users with postings to seal, and the rounds that seal them."""

    def __init__(self, engine: Engine, committer: GroupCommitter, index: SearchIndex) -> None:
        self._engine, self._committer, self._index = engine, committer, index
        self._lock = threading.Lock()
        self._pending: dict[str, int] = {}  # user -> stamp of the last touch
        self._last_work: dict[str, float] = {}
        self._stamps = itertools.count()

    @property
    def pending(self) -> list[str]:
        with self._lock:
            return list(self._pending)

    def touched(self, user_id: str) -> None:
        """A user's index got docs (called from the commit thread)."""
        with self._lock:
            self._pending[user_id] = next(self._stamps)

    async def run_round(self) -> int:
        """Seal what the pending users have; returns the steps applied."""
        with self._lock:
            users = dict(self._pending)
        PENDING_USERS.set(len(users))
        applied = 0
        for user_id, stamp in users.items():
            steps = await self._maintain(user_id)
            applied += steps
            now = time.monotonic()
            if steps:
                self._last_work[user_id] = now
            elif now - self._last_work.setdefault(user_id, now) >= segments.GRACE_MS / 1000 + FORGET_AFTER_S:
                await self._forget(user_id, stamp)
        return applied

    async def resume(self) -> int:
        """Take up the users marked in the index (after a restart); returns how many."""
        users = await asyncio.to_thread(self._index.pending_users, self._engine)
        for user_id in users:
            self.touched(user_id)
        return len(users)

    async def _forget(self, user_id: str, stamp: int) -> None:
        """Idle past the grace: unmark the user in the index unless work turned up, then here."""
        if not await self._committer.submit(lambda txn: self._index.forget(txn, self._engine, user_id)):
            self._last_work[user_id] = time.monotonic()
            return
        with self._lock:
            if self._pending.get(user_id) == stamp:
                del self._pending[user_id]
                del self._last_work[user_id]

    async def _maintain(self, user_id: str) -> int:
        steps = 0
        while steps < STEPS_PER_ROUND:
            plan = await asyncio.to_thread(self._index.plan_maintenance, self._engine, user_id)
            if plan is None:
                break
            applied = await self._committer.submit(partial(self._index.apply_maintenance, step=plan))
            STEPS.labels("applied" if applied else "stale").inc()
            if applied:
                DOCS_SEALED.inc(plan.docs)
            steps += 1
        return steps
