"""The router's merge order must equal the storage key order, or pages overlap."""
from __future__ import annotations

from router.coordinator import listing_order
from tidings.v1 import types_pb2


def test_merge_order_is_newest_first_then_id_ascending() -> None:
    rows = [types_pb2.MessageSummary(id=i, received_ms=ms) for i, ms in [("b", 5), ("a", 5), ("c", 9), ("a", 1)]]
    assert [(r.id, r.received_ms) for r in sorted(rows, key=listing_order)] == [("c", 9), ("a", 5), ("b", 5), ("a", 1)]
