"""Two awaitables run at once, where the first failure cancels the other (asyncio.gather
leaves the survivor running unobserved)."""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

A = TypeVar("A")
B = TypeVar("B")


async def both(first: Awaitable[A], second: Awaitable[B]) -> tuple[A, B]:
    """Both results; the first exception raised, the other awaitable then cancelled."""
    one, two = asyncio.ensure_future(first), asyncio.ensure_future(second)
    try:
        return await asyncio.gather(one, two)
    except BaseException:
        one.cancel()
        two.cancel()
        raise
