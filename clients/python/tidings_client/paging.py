"""Async iteration over paged Mail RPCs (ListMessages, Search), hiding cursors.

    async for summary in client.iter_messages(user_id, "inbox"):
        ...

    async for page in client.iter_messages(user_id, "inbox").pages():
        print(page.total, len(page.messages))

`SyncMessagePager` is the same walk for the sync client (`for summary in ...`).

A pager asks for the next page only when the current one is used up and stops
when the router returns an empty `next_cursor`. `max_items` bounds the walk.
"""
from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

from tidings.v1 import mail_pb2, types_pb2

FetchPage = Callable[[str], Awaitable[mail_pb2.MessagePage]]
FetchPageSync = Callable[[str], mail_pb2.MessagePage]


def _next_cursor(page: mail_pb2.MessagePage, seen: set[str]) -> str | None:
    """The cursor of the page after `page`, or None when the walk is over."""
    if not page.next_cursor or not page.messages or page.next_cursor in seen:
        return None
    seen.add(page.next_cursor)
    return page.next_cursor


class MessagePager:
    """Iterates `MessageSummary` items across pages fetched with `fetch(cursor)`."""

    def __init__(self, fetch: FetchPage, *, cursor: str = "", max_items: int | None = None) -> None:
        self._fetch = fetch
        self._start = cursor
        self._max_items = max_items
        self.total: int | None = None  # the router's total, once the first page arrived

    async def pages(self) -> AsyncIterator[mail_pb2.MessagePage]:
        cursor = self._start
        seen: set[str] = set()
        while True:
            page = await self._fetch(cursor)
            self.total = page.total
            yield page
            following = _next_cursor(page, seen)
            if following is None:
                return
            cursor = following

    async def _items(self) -> AsyncIterator[types_pb2.MessageSummary]:
        count = 0
        if self._max_items is not None and self._max_items <= 0:
            return
        async for page in self.pages():
            for summary in page.messages:
                yield summary
                count += 1
                if self._max_items is not None and count >= self._max_items:
                    return

    def __aiter__(self) -> AsyncIterator[types_pb2.MessageSummary]:
        return self._items()

    async def collect(self) -> list[types_pb2.MessageSummary]:
        return [summary async for summary in self]


class SyncMessagePager:
    """`MessagePager` for the sync client: iterates across pages fetched with `fetch(cursor)`."""

    def __init__(self, fetch: FetchPageSync, *, cursor: str = "", max_items: int | None = None) -> None:
        self._fetch = fetch
        self._start = cursor
        self._max_items = max_items
        self.total: int | None = None

    def pages(self) -> Iterator[mail_pb2.MessagePage]:
        cursor: str | None = self._start
        seen: set[str] = set()
        while cursor is not None:
            page = self._fetch(cursor)
            self.total = page.total
            yield page
            cursor = _next_cursor(page, seen)

    def __iter__(self) -> Iterator[types_pb2.MessageSummary]:
        count = 0
        if self._max_items is not None and self._max_items <= 0:
            return
        for page in self.pages():
            for summary in page.messages:
                yield summary
                count += 1
                if self._max_items is not None and count >= self._max_items:
                    return

    def collect(self) -> list[types_pb2.MessageSummary]:
        return list(self)


__all__ = ["MessagePager", "SyncMessagePager", "FetchPage", "FetchPageSync"]
