"""The event loop of the mail path's processes (router, storage node, SMTP and HTTP edges):
uvloop's, whose loop is libuv in C, where asyncio's own is Python (measured: ~0.3 ms of CPU less
a delivered message over the cluster, docs/performance.md); TIDINGS_EVENT_LOOP=asyncio runs
asyncio's own instead."""
from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine
from typing import Any, TypeVar

import uvloop

T = TypeVar("T")

CHOICES = ("uvloop", "asyncio")


def run(main: Coroutine[Any, Any, T]) -> T:
    """`main` run to its end on a new loop of the chosen kind, as asyncio.run would."""
    choice = os.environ.get("TIDINGS_EVENT_LOOP", "uvloop")
    if choice not in CHOICES:
        main.close()
        raise SystemExit(f"TIDINGS_EVENT_LOOP must be one of {', '.join(CHOICES)}, not {choice!r}")
    with asyncio.Runner(loop_factory=uvloop.new_event_loop if choice == "uvloop" else None) as runner:
        return runner.run(main)
