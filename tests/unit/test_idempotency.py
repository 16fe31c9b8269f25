"""router/idempotency.py's claims and the edges' token buckets, in memory."""
from __future__ import annotations

import asyncio

import pytest

from http_edge.errors import ApiError
from http_edge.limits import RateLimiter
from router import idempotency
from tidings_runtime.ids import entry_id_ms, new_entry_id


class Memory:
    def __init__(self) -> None:
        self.held: dict[str, tuple[bytes, int]] = {}
        self.reads = self.writes = 0

    async def get(self, key: str) -> bytes | None:
        self.reads += 1
        return self.held[key][0] if key in self.held else None

    async def offer(self, key: str, value: bytes, version: int) -> list[bytes]:
        self.writes += 1
        if key not in self.held or self.held[key][1] < version:
            self.held[key] = (value, version)
        return [self.held[key][0]]


class Replicated:
    """Three replicas, a write reaching the two ``reach`` picks, a read of two (newest wins)."""

    def __init__(self) -> None:
        self.nodes = [Memory(), Memory(), Memory()]
        self.reach = (0, 1)

    async def get(self, key: str) -> bytes | None:
        held = [n.held[key] for n in (self.nodes[i] for i in self.reach) if key in n.held]
        return max(held, key=lambda vv: vv[1])[0] if held else None

    async def offer(self, key: str, value: bytes, version: int) -> list[bytes]:
        return [v for i in self.reach for v in await self.nodes[i].offer(key, value, version)]


def test_a_claim_is_adopted_then_refused_for_another_hash_then_expires() -> None:
    store, first = Memory(), new_entry_id()
    ttl = idempotency.IDEMPOTENCY_TTL_MS
    now = entry_id_ms(first)
    second = new_entry_id(now + 1000)

    async def run() -> None:
        c1 = await idempotency.claim(store, "idem:u:k", b"h1", first, "<m1@x>", ttl, now)
        assert (c1.entry_id, c1.replayed, store.reads, store.writes) == (first, False, 0, 1)
        c2 = await idempotency.claim(store, "idem:u:k", b"h1", second, "<m2@x>", ttl, now + 1000)
        assert (c2.entry_id, c2.message_id, c2.replayed, store.reads, store.writes) == (first, "<m1@x>", True, 0, 2)
        with pytest.raises(idempotency.KeyReused, match="idempotency_key_reused"):
            await idempotency.claim(store, "idem:u:k", b"h2", second, "", ttl, now + 1000)
        assert (await idempotency.held(store, "idem:u:k", b"h1", ttl, now + 1000)).entry_id == first
        third = new_entry_id(now + ttl + 1)
        later = await idempotency.claim(store, "idem:u:k", b"h2", third, "", ttl, now + ttl + 1)
        assert later.entry_id == third and not later.replayed
        assert "idem:u:k#2" in store.held       # the expired claim's next generation
        assert (await idempotency.held(store, "idem:u:k", b"h2", ttl, now + ttl + 2)).entry_id == third
        assert await idempotency.held(store, "idem:u:k", b"h2", ttl, now + 2 * ttl + 2) is None

    asyncio.run(run())


@pytest.mark.parametrize(("first_reach", "retry_reach"),
                         [((0, 1), (1, 2)), ((0, 1), (0, 2)), ((1, 2), (0, 1)), ((0, 2), (0, 1))])
def test_a_retry_sees_the_first_claim_whichever_two_replicas_each_reached(
        first_reach: tuple[int, int], retry_reach: tuple[int, int]) -> None:
    ttl = idempotency.DEDUPE_TTL_MS
    store, first = Replicated(), new_entry_id()
    now = entry_id_ms(first)
    retry = new_entry_id(now + 5)

    async def run() -> None:
        store.reach = first_reach
        assert (await idempotency.claim(store, "dedupe:ab", b"d", first, "", ttl, now)).entry_id == first
        store.reach = retry_reach
        adopted = await idempotency.claim(store, "dedupe:ab", b"d", retry, "", ttl, now + 5)
        assert (adopted.entry_id, adopted.replayed) == (first, True)

    asyncio.run(run())
    # the earliest claim wins every replica it met; the retry's claim stays only where it was alone
    missed = ({0, 1, 2} - set(first_reach)).pop()
    for k, node in enumerate(store.nodes):
        if k != missed:
            assert f'"entry_id":"{first}"'.encode() in node.held["dedupe:ab"][0]


def test_an_earlier_claim_beats_a_later_one_by_version() -> None:
    assert idempotency.claim_version(new_entry_id(1_000)) > idempotency.claim_version(new_entry_id(1_001)) > 0
    a, b = new_entry_id(1_000), new_entry_id(1_000)
    assert idempotency.claim_version(a) != idempotency.claim_version(b) or a[-4:] == b[-4:]


def test_key_syntax() -> None:
    assert idempotency.valid_key("a") and idempotency.valid_key("~ !" * 85)
    assert not idempotency.valid_key("") and not idempotency.valid_key("x" * 256)
    assert not idempotency.valid_key("tab\there") and not idempotency.valid_key("caf\u00e9")


def test_token_bucket_refills_and_says_when() -> None:
    now = [0.0]
    limiter = RateLimiter(per_minute=60, burst=2, clock=lambda: now[0])
    assert limiter.take("u") == 0 and limiter.take("u") == 0
    assert limiter.take("u") == pytest.approx(1.0)
    assert limiter.take("v") == 0
    with pytest.raises(ApiError) as caught:
        limiter.check("u")
    assert caught.value.status == 429 and caught.value.headers["Retry-After"] == "1"
    now[0] = 1.0
    assert limiter.take("u") == 0
    assert RateLimiter(per_minute=0, burst=1).take("u") == 0
