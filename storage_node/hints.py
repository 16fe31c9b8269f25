"""Hinted handoff, the storage node's half: hints held durably in CF hints, replayed to their
target in version order when it answers (router/hints.py decides who holds a hint).

Key: target node id | 0x00 | mutation version | local sequence, so one prefix scan yields a
target's hints in version order. The sequence starts at the wall clock in ns when the node
opens, so keys stay unique across restarts.
"""
from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import Counter as Tally
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from prometheus_client import Counter, Gauge

from storage_node import keys
from storage_node.batch import Txn
from storage_node.commit import GroupCommitter
from storage_node.engine import Engine, check_new_message_id, check_user_id
from storage_node.errors import InvalidArgument
from tidings.v1 import storage_pb2, storage_pb2_grpc
from tidings_runtime.channels import PeerPool
from tidings_runtime.hlc import first_version_at

log = logging.getLogger(__name__)

HINTS_PENDING = Gauge("tidings_hints_pending", "Hints held for a target node, not yet replayed", ["target"])
HINTS_STORED = Counter("tidings_hints_stored_total", "Hints taken and made durable")
HINTS_REPLAYED = Counter("tidings_hints_replayed_total", "Hints replayed to their target")
HINTS_DROPPED = Counter("tidings_hints_dropped_total",
                        "Hints dropped: refused definitively by their target, or unreadable")

REPLAY_DEADLINE_S = 2.0
REPLAY_CHUNK = 256
# The target refused the mutation for good (e.g. an update of a message it never got:
# anti-entropy repairs that): the hint is dropped. Any other error ends the round for it.
DEFINITIVE = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND}


def mutation_version(hint: storage_pb2.Hint) -> int:
    kind = hint.WhichOneof("mutation")
    if kind is None:
        raise InvalidArgument("a hint without a mutation")
    return getattr(hint, kind).version


def check_hint(hint: storage_pb2.Hint) -> None:
    if not hint.target_node_id or "\x00" in hint.target_node_id:
        raise InvalidArgument(f"malformed hint target node id {hint.target_node_id!r}")
    if not hint.target_address:
        raise InvalidArgument("a hint without a target address")
    mutation_version(hint)
    if hint.HasField("directory"):
        if not hint.directory.key:
            raise InvalidArgument("a directory hint without a key")
        return
    mutation = hint.store if hint.HasField("store") else hint.update
    check_user_id(mutation.user_id)
    check_new_message_id(mutation.id)


def _call(stub: storage_pb2_grpc.StorageNodeStub, hint: storage_pb2.Hint) -> Awaitable[Any]:
    kind = hint.WhichOneof("mutation")
    method: Callable[..., Awaitable[Any]] = {
        "store": stub.StoreMessage, "update": stub.UpdateMessage, "directory": stub.PutDirectory,
    }[kind or ""]
    return method(getattr(hint, kind or ""), timeout=REPLAY_DEADLINE_S)


class HintStore:
    def __init__(self, engine: Engine, committer: GroupCommitter, peers: PeerPool | None = None) -> None:
        self._engine = engine
        self._committer = committer
        self._peers = peers or PeerPool()
        self._seq = itertools.count(time.time_ns())
        self._pending: Tally[str] = Tally(keys.parse_hint(key)[0] for key in self._keys())
        for target in self._pending:
            self._publish(target)

    def _keys(self, start: bytes = b"", end: bytes | None = None) -> list[bytes]:
        return [key for key, _ in self._engine.scan(keys.CF_HINTS, start, end)]

    def _publish(self, target: str) -> None:
        HINTS_PENDING.labels(target).set(self._pending[target])

    def status(self) -> dict[str, int]:
        return {target: count for target, count in sorted(self._pending.items()) if count}

    async def put(self, hint: storage_pb2.Hint) -> None:
        """Hold a hint durably (synced with the group's batch)."""
        check_hint(hint)
        key = keys.hint(hint.target_node_id, mutation_version(hint), next(self._seq))
        value = hint.SerializeToString()
        await self._committer.submit(lambda txn: txn.put(keys.CF_HINTS, key, value))
        self._pending[hint.target_node_id] += 1
        self._publish(hint.target_node_id)
        HINTS_STORED.inc()

    async def _delete(self, hint_keys: list[bytes]) -> list[bytes]:
        """Delete hints (those still held: replay and GC may race); returns the ones deleted."""

        def mutate(txn: Txn) -> list[bytes]:
            held = [key for key in hint_keys if txn.get(keys.CF_HINTS, key) is not None]
            for key in held:
                txn.delete(keys.CF_HINTS, key)
            return held

        deleted = await self._committer.submit(mutate) if hint_keys else []
        for target, count in Tally(keys.parse_hint(key)[0] for key in deleted).items():
            self._pending[target] -= count
            self._publish(target)
        return deleted

    # -- replay --------------------------------------------------------------------------
    async def replay(self) -> None:
        """One round: every target with hints, concurrently, each in version order."""
        targets = [target for target, count in self._pending.items() if count]
        await asyncio.gather(*(self._replay_target(target) for target in targets))

    def _read_chunk(self, start: bytes, end: bytes) -> list[tuple[bytes, bytes]]:
        return list(itertools.islice(self._engine.scan(keys.CF_HINTS, start, end), REPLAY_CHUNK))

    async def _replay_target(self, target: str) -> None:
        start, end = keys.hint_target(target), keys.prefix_end(keys.hint_target(target))
        while True:
            chunk = await asyncio.to_thread(self._read_chunk, start, end)
            done, dropped, reachable = await self._send_all(chunk)
            deleted = set(await self._delete(done + dropped))
            HINTS_REPLAYED.inc(len(deleted.intersection(done)))
            HINTS_DROPPED.inc(len(deleted.intersection(dropped)))
            if not reachable or len(chunk) < REPLAY_CHUNK:
                return
            start = keys.prefix_end(chunk[-1][0])

    async def _send_all(self, chunk: list[tuple[bytes, bytes]]) -> tuple[list[bytes], list[bytes], bool]:
        """Replay hints in order: (replayed keys, dropped keys, whether the target answered throughout)."""
        done: list[bytes] = []
        dropped: list[bytes] = []
        for key, value in chunk:
            hint = storage_pb2.Hint()
            try:
                hint.ParseFromString(value)
                check_hint(hint)
            except Exception:  # an unreadable hint can never be replayed
                log.warning("dropping unreadable hint %r", key)
                dropped.append(key)
                continue
            try:
                await _call(self._peers.stub(hint.target_address), hint)
            except grpc.aio.AioRpcError as exc:
                if exc.code() not in DEFINITIVE:
                    return done, dropped, False
                log.info("hint for %s refused (%s: %s): dropped", hint.target_node_id, exc.code().name, exc.details())
                dropped.append(key)
                continue
            done.append(key)
        return done, dropped, True

    # -- garbage collection ----------------------------------------------------------------
    async def collect(self, cutoff_ms: int) -> int:
        """Drop hints whose mutation is older than cutoff_ms (physical HLC time)."""
        cutoff = first_version_at(cutoff_ms)
        old = [key for key in await asyncio.to_thread(self._keys) if keys.parse_hint(key)[1] < cutoff]
        return len(await self._delete(old))

    async def close(self) -> None:
        await self._peers.close()
