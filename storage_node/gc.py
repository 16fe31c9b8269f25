"""Garbage collection: tombstones and hints whose version is older than the grace period.

A tombstone must outlive every replica's chance to hear of the delete (hints, read repair,
anti-entropy all run well within the grace); after that it only costs space. As in
Cassandra's gc_grace, a replica that stays away longer than the grace may bring a deleted
message back: keep nodes down for less than TIDINGS_TOMBSTONE_GRACE_S.
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from functools import partial

from prometheus_client import Counter

from storage_node import codec, keys
from storage_node.batch import Txn
from storage_node.commit import GroupCommitter
from storage_node.engine import Engine
from storage_node.hints import HintStore
from tidings_runtime.hlc import first_version_at

TOMBSTONES_COLLECTED = Counter("tidings_gc_tombstones_total", "Tombstones deleted after the grace period")
HINTS_COLLECTED = Counter("tidings_gc_hints_total", "Hints deleted after the grace period")

SCAN_CHUNK = 10_000


@dataclass(frozen=True)
class GcResult:
    tombstones: int
    hints: int


def expired_tombstones(engine: Engine, cutoff: int, start: bytes) -> tuple[list[bytes], bytes | None]:
    """Keys of tombstones older than `cutoff` among the next SCAN_CHUNK records from `start`;
    the key to resume from (None at the end)."""
    expired: list[bytes] = []
    for n, (key, value) in enumerate(engine.scan(keys.CF_MESSAGES, start, None)):
        if n == SCAN_CHUNK:
            return expired, key
        if _expired(value, cutoff):
            expired.append(key)
    return expired, None


def _expired(value: bytes | None, cutoff: int) -> bool:
    return value is not None and codec.is_tombstone(value) and codec.decode_record(value).version < cutoff


def drop_tombstones(txn: Txn, candidates: list[bytes], cutoff: int) -> int:
    """Delete the candidates still expired tombstones (a newer tombstone may have replaced one)."""
    expired = [key for key in candidates if _expired(txn.get(keys.CF_MESSAGES, key), cutoff)]
    for key in expired:
        txn.delete(keys.CF_MESSAGES, key)
    return len(expired)


async def collect_garbage(engine: Engine, committer: GroupCommitter, hints: HintStore, grace_ms: int,
                          now_ms: int | None = None) -> GcResult:
    cutoff_ms = (time.time_ns() // 1_000_000 if now_ms is None else now_ms) - grace_ms
    cutoff = first_version_at(cutoff_ms)
    tombstones = 0
    start: bytes | None = b""
    while start is not None:
        candidates, start = await asyncio.to_thread(expired_tombstones, engine, cutoff, start)
        if candidates:
            tombstones += await committer.submit(partial(drop_tombstones, candidates=candidates, cutoff=cutoff))
    dropped_hints = await hints.collect(cutoff_ms)
    TOMBSTONES_COLLECTED.inc(tombstones)
    HINTS_COLLECTED.inc(dropped_hints)
    return GcResult(tombstones, dropped_hints)
