"""The TTL cache: values expire after their TTL, the least recently used go first."""
from __future__ import annotations

from tidings_runtime.ttl_cache import TtlCache


def test_values_expire_and_the_least_recently_used_go_first() -> None:
    now = [0.0]
    cache: TtlCache[str, int] = TtlCache(10.0, 2, clock=lambda: now[0])
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1          # a is now the most recent
    cache.put("c", 3)                   # b goes
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (1, None, 3)
    now[0] = 10.0
    assert cache.get("a") is None and len(cache) == 1
    cache.drop("c")
    assert len(cache) == 0
