"""The ring's token space: unsigned 64-bit tokens (``partition_token``), and the size of a
range ``(start, end]`` that wraps past ``2**64 - 1`` to 0."""
from __future__ import annotations

TOKEN_SPACE = 1 << 64
TOKEN_MASK = TOKEN_SPACE - 1


def range_size(start: int, end: int) -> int:
    """Number of tokens in ``(start, end]``, wrapping; ``start == end`` is the whole ring."""
    return ((end - start) & TOKEN_MASK) or TOKEN_SPACE
