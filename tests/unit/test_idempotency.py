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

    async def put(self, key: str, value: bytes, version: int | None = None) -> None:
        self.writes += 1
        if key not in self.held or self.held[key][1] < version:
            self.held[key] = (value, version)


def test_a_claim_is_adopted_then_refused_for_another_hash_then_expires() -> None:
    store, first, second = Memory(), new_entry_id(), new_entry_id()
    ttl = idempotency.IDEMPOTENCY_TTL_MS
    now = entry_id_ms(first)

    async def run() -> None:
        c1 = await idempotency.claim(store, "idem:u:k", b"h1", first, "<m1@x>", ttl, now)
        assert (c1.entry_id, c1.replayed, store.reads, store.writes) == (first, False, 1, 1)
        c2 = await idempotency.claim(store, "idem:u:k", b"h1", second, "<m2@x>", ttl, now + 1000)
        assert (c2.entry_id, c2.message_id, c2.replayed, store.writes) == (first, "<m1@x>", True, 1)
        with pytest.raises(idempotency.KeyReused, match="idempotency_key_reused"):
            await idempotency.claim(store, "idem:u:k", b"h2", second, "", ttl, now + 1000)
        later = await idempotency.claim(store, "idem:u:k", b"h2", second, "", ttl, now + ttl + 1)
        assert later.entry_id == second and not later.replayed

    asyncio.run(run())


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
