"""The one fact of the router's hybrid logical clock a storage node needs (router/hlc.py owns the
clock; storage_node never imports the router): a version's high 48 bits are physical Unix ms."""
from __future__ import annotations

LOGICAL_BITS = 16  # as router/hlc.py


def hlc_ms(version: int) -> int:
    """The physical part of a version, in milliseconds since the epoch (router/hlc.py's hlc_ms)."""
    return version >> LOGICAL_BITS


def first_version_at(ms: int) -> int:
    """The smallest version of that millisecond (router/hlc.py's hlc_pack(ms))."""
    return max(ms, 0) << LOGICAL_BITS
