"""Both pagers walk the same pages the same way: follow cursors, stop on an empty or repeated one,
honour max_items."""
from __future__ import annotations

import asyncio

import pytest

from tidings.v1 import mail_pb2, types_pb2
from tidings_client import MessagePager, SyncMessagePager

PAGES = {
    "": mail_pb2.MessagePage(messages=[types_pb2.MessageSummary(id="a"), types_pb2.MessageSummary(id="b")],
                             next_cursor="c1", total=4),
    "c1": mail_pb2.MessagePage(messages=[types_pb2.MessageSummary(id="c")], next_cursor="c2", total=4),
    "c2": mail_pb2.MessagePage(messages=[types_pb2.MessageSummary(id="d")], next_cursor="c1", total=4),  # loops
}


def walk_sync(max_items: int | None) -> tuple[list[str], list[str]]:
    asked: list[str] = []

    def fetch(cursor: str) -> mail_pb2.MessagePage:
        asked.append(cursor)
        return PAGES[cursor]

    return [s.id for s in SyncMessagePager(fetch, max_items=max_items)], asked


def walk_async(max_items: int | None) -> tuple[list[str], list[str]]:
    asked: list[str] = []

    async def fetch(cursor: str) -> mail_pb2.MessagePage:
        asked.append(cursor)
        return PAGES[cursor]

    return [s.id for s in asyncio.run(MessagePager(fetch, max_items=max_items).collect())], asked


@pytest.mark.parametrize("walk", [walk_sync, walk_async])
def test_pagers_follow_cursors_and_stop(walk) -> None:
    assert walk(None) == (["a", "b", "c", "d"], ["", "c1", "c2"])
    assert walk(3) == (["a", "b", "c"], ["", "c1"])
    assert walk(0) == ([], [])
