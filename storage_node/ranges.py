"""Token ranges of the ring, (start, end] wrapping past 2**64-1, as RocksDB key bounds.

Every partition-keyed column family starts its keys with the 8-byte big-endian token
(keys.py), so a token range is one key range, or two when it wraps past 2**64-1.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from storage_node import keys
from storage_node.errors import InvalidArgument

# [low, high): high None means to the end of the key space (the token 2**64-1 is included).
KeyBounds = tuple[bytes, "bytes | None"]


@dataclass(frozen=True)
class TokenRange:
    """(start, end] over the 64-bit token, wrapping; start == end is the whole ring."""

    start: int
    end: int

    def __post_init__(self) -> None:
        for value in (self.start, self.end):
            if not 0 <= value <= keys.MAX_U64:
                raise InvalidArgument(f"token {value} is not a 64-bit unsigned integer")

    def spans(self) -> list[tuple[int, int]]:
        """The tokens of the range as inclusive [low, high] intervals, in ascending order."""
        if self.start == self.end:
            return [(0, keys.MAX_U64)]
        if self.start < self.end:
            return [(self.start + 1, self.end)]
        tail = [(self.start + 1, keys.MAX_U64)] if self.start < keys.MAX_U64 else []
        return [(0, self.end), *tail]

    def contains(self, token: int) -> bool:
        return any(low <= token <= high for low, high in self.spans())


def span_bounds(low: int, high: int) -> KeyBounds:
    return keys.u64(low), (keys.u64(high + 1) if high < keys.MAX_U64 else None)


def key_bounds(token_range: TokenRange) -> list[KeyBounds]:
    """The key ranges of one token range, in key order."""
    return [span_bounds(low, high) for low, high in token_range.spans()]


def union_bounds(ranges: Iterable[TokenRange]) -> list[KeyBounds]:
    """The key ranges covering any of `ranges`, disjoint and in key order (overlaps merged)."""
    merged: list[list[int]] = []
    for low, high in sorted(span for r in ranges for span in r.spans()):
        if merged and low <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], high)
        else:
            merged.append([low, high])
    return [span_bounds(low, high) for low, high in merged]


def check_ranges(ranges: list[TokenRange]) -> list[TokenRange]:
    if not ranges:
        raise InvalidArgument("no token ranges given")
    return ranges

