"""The shared spam models' cache: tokens held half a TTL to a TTL, totals for a TTL, a
forgotten model not refilled by a read that was in flight."""
from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from router import spam_cache
from router.spam_cache import SharedModelCache
from tidings.v1 import storage_pb2


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(spam_cache.time, "monotonic", clock)
    return clock


class Node:
    def __init__(self) -> None:
        self.asked: list[list[str]] = []
        self.spam = 1

    async def read(self, model: str, tokens: Sequence[str]) -> storage_pb2.SpamCountsResponse:
        names = list(tokens)
        self.asked.append(names)
        return storage_pb2.SpamCountsResponse(spam_messages=self.spam, ham_messages=2, tokens=names, counts=[
            storage_pb2.SpamTokenCount(spam=self.spam, ham=0) for _ in names])


def test_a_token_is_held_at_least_half_the_ttl_and_at_most_the_ttl(clock: Clock) -> None:
    cache, node = SharedModelCache(ttl=10), Node()

    async def run() -> None:
        await cache.counts("m", ["a"], node.read)
        clock.now += 4.9
        await cache.counts("m", ["a"], node.read)         # in the filling bucket
        clock.now += 0.2                                  # 5.1 s: swapped, still held
        assert (await cache.counts("m", ["a"], node.read)).tokens == {"a": (1, 0)}
        assert node.asked == [["a"]]
        clock.now += 5.0                                  # 10.1 s: dropped
        node.spam = 3
        held = await cache.counts("m", ["a"], node.read)
        assert held.tokens == {"a": (3, 0)} and held.spam_messages == 3
        assert node.asked == [["a"], ["a"]]

    asyncio.run(run())


def test_totals_are_read_again_after_the_ttl_with_no_tokens(clock: Clock) -> None:
    cache, node = SharedModelCache(ttl=10), Node()

    async def run() -> None:
        await cache.counts("rep", [], node.read)
        clock.now += 9.0
        await cache.counts("rep", [], node.read)
        clock.now += 2.0
        await cache.counts("rep", [], node.read)
        assert node.asked == [[], []]

    asyncio.run(run())


def test_a_read_in_flight_when_the_model_is_forgotten_does_not_refill_it(clock: Clock) -> None:
    cache, node = SharedModelCache(ttl=10), Node()
    release = asyncio.Event()

    async def slow(model: str, tokens: Sequence[str]) -> storage_pb2.SpamCountsResponse:
        await release.wait()
        return await node.read(model, tokens)

    async def run() -> None:
        reading = asyncio.create_task(cache.counts("m", ["a"], slow))
        await asyncio.sleep(0)
        cache.forget("m")
        release.set()
        await reading
        await cache.counts("m", ["a"], node.read)
        assert node.asked == [["a"], ["a"]]

    asyncio.run(run())


def test_models_beyond_the_bound_are_dropped_oldest_first(clock: Clock) -> None:
    cache, node = SharedModelCache(ttl=10, max_models=2), Node()

    async def run() -> None:
        for name in ("x", "y", "x", "z"):      # y is the least recently used when z comes
            await cache.counts(name, ["t"], node.read)
        await cache.counts("x", ["t"], node.read)
        await cache.counts("y", ["t"], node.read)
        assert len(node.asked) == 4

    asyncio.run(run())
