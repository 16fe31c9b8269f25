"""Sequence sets: ``1:*,3,5:7`` (``*`` is the largest number in use) and ``$`` (the saved
result of RFC 5182 / IMAP4rev2), and the compact form used in responses (``1:3,5``)."""
from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from imap_edge.protocol.errors import ParseError
from imap_edge.protocol.tokens import MAX_NUMBER, Reader

_SET = re.compile(rb"(?:[0-9]+|\*)(?::(?:[0-9]+|\*))?(?:,(?:[0-9]+|\*)(?::(?:[0-9]+|\*))?)*")


@dataclass(frozen=True)
class SequenceSet:
    """``items`` as written: ``(low, high)`` pairs, ``None`` for ``*``, a single number as ``(n, n)``.
    ``saved`` is ``$``, which has no items."""

    items: tuple[tuple[int | None, int | None], ...] = ()
    saved: bool = False

    def __str__(self) -> str:
        if self.saved:
            return "$"
        return ",".join(_item(low, high) for low, high in self.items)

    @property
    def has_star(self) -> bool:
        return any(low is None or high is None for low, high in self.items)

    def ranges(self, largest: int) -> list[tuple[int, int]]:
        """Merged inclusive ranges, ``*`` read as ``largest`` (0 for an empty mailbox, so ``*`` is
        nothing). Numbers above ``largest`` are kept: sequence numbers there are the session's
        error, UIDs there simply match nothing."""
        spans: list[tuple[int, int]] = []
        for low, high in self.items:
            a = largest if low is None else low
            b = largest if high is None else high
            if a > b:
                a, b = b, a
            if b >= 1:
                spans.append((max(a, 1), b))
        spans.sort()
        merged: list[tuple[int, int]] = []
        for a, b in spans:
            if merged and a <= merged[-1][1] + 1:
                merged[-1] = (merged[-1][0], max(merged[-1][1], b))
            else:
                merged.append((a, b))
        return merged

    def contains(self, number: int, largest: int) -> bool:
        return any(a <= number <= b for a, b in self.ranges(largest))


def _item(low: int | None, high: int | None) -> str:
    first = "*" if low is None else str(low)
    if low == high:
        return first
    return f"{first}:{'*' if high is None else high}"


def compact(numbers: Iterable[int]) -> str:
    """``[1, 2, 3, 5]`` as ``1:3,5`` (sorted, duplicates dropped); empty for no numbers."""
    parts: list[str] = []
    run: list[int] = []
    for number in sorted(set(numbers)):
        if run and number == run[1] + 1:
            run[1] = number
            continue
        if run:
            parts.append(str(run[0]) if run[0] == run[1] else f"{run[0]}:{run[1]}")
        run = [number, number]
    if run:
        parts.append(str(run[0]) if run[0] == run[1] else f"{run[0]}:{run[1]}")
    return ",".join(parts)


def _number(text: bytes, position: int) -> int | None:
    if text == b"*":
        return None
    if len(text) > 10 or int(text) > MAX_NUMBER:
        raise ParseError(f"number too large in sequence set at position {position}")
    if int(text) == 0:
        raise ParseError(f"0 is not a valid sequence number, at position {position}")
    return int(text)


def sequence_set(reader: Reader, *, allow_saved: bool = True) -> SequenceSet:
    start = reader.pos
    if reader.take(b"$"):
        if not allow_saved:
            raise ParseError(f"'$' not allowed here, at position {start}")
        return SequenceSet(saved=True)
    found = reader.match(_SET)
    if found is None:
        raise reader.error("a sequence set")
    items: list[tuple[int | None, int | None]] = []
    offset = start
    for part in found.split(b","):
        ends = part.split(b":")
        low = _number(ends[0], offset)
        high = _number(ends[-1], offset + len(part) - len(ends[-1]))
        items.append((low, high))
        offset += len(part) + 1
    return SequenceSet(tuple(items))


def parse_sequence_set(text: str) -> SequenceSet:
    """A sequence set on its own (tests, configuration)."""
    reader = Reader(text.encode("ascii"))
    result = sequence_set(reader)
    reader.end()
    return result
