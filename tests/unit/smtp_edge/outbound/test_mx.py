"""MX ordering and null MX (the lookups themselves run against a DNS server in tests/smtp)."""
from __future__ import annotations

import random

import pytest

from smtp_edge.outbound.mx import MxHost, is_null_mx, order_mx, parse_resolvers


def test_lowest_preference_first() -> None:
    hosts = order_mx([(20, "b.example."), (10, "a.example."), (30, "c.example.")])
    assert [h.name for h in hosts] == ["a.example", "b.example", "c.example"]
    assert hosts[0] == MxHost("a.example", 10)


def test_equal_preferences_are_shuffled_but_stay_in_their_rank() -> None:
    records = [(10, "a1.example"), (10, "a2.example"), (10, "a3.example"), (5, "first.example"), (50, "last.example")]
    seen = set()
    for seed in range(40):
        names = [h.name for h in order_mx(records, random.Random(seed))]
        assert names[0] == "first.example" and names[-1] == "last.example"
        seen.add(tuple(names[1:4]))
    assert len(seen) > 1


def test_null_mx() -> None:
    assert is_null_mx([(0, ".")]) and is_null_mx([(0, "")])
    assert not is_null_mx([(0, "."), (10, "mx.example")])
    assert not is_null_mx([])
    assert [h.name for h in order_mx([(0, "."), (10, "mx.example")])] == ["mx.example"]


def test_resolvers_setting() -> None:
    assert parse_resolvers("127.0.0.1:5353, [::1]:53") == [("127.0.0.1", 5353), ("::1", 53)]
    for bad in ("127.0.0.1", "dns.example:53", "127.0.0.1:0", ""):
        with pytest.raises(ValueError):
            parse_resolvers(bad)
