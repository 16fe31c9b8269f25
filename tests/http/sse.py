"""A Server-Sent Events reader for tests and benchmarks: lines in, blocks out (the event's
fields, and its comment lines), over httpx's sync or async line iterators."""
from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Block:
    """One SSE block: its fields (event, id, data, retry) and comment lines."""

    fields: dict[str, str] = field(default_factory=dict)
    comments: list[str] = field(default_factory=list)

    @property
    def name(self) -> str | None:
        return self.fields.get("event")

    @property
    def id(self) -> str | None:
        return self.fields.get("id")

    @property
    def data(self) -> Any:
        return json.loads(self.fields["data"])


class _Parser:
    def __init__(self) -> None:
        self.block = Block()

    def feed(self, line: str) -> Block | None:
        """The block `line` ends, if it does."""
        if line == "":
            done, self.block = self.block, Block()
            return done if done.fields or done.comments else None
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name:
            self.block.fields[name] = value
        else:
            self.block.comments.append(value)
        return None


class Reader:
    """Blocks of an async line iterator (`httpx.Response.aiter_lines()`)."""

    def __init__(self, lines: AsyncIterator[str]) -> None:
        self._lines = lines
        self._parser = _Parser()

    async def block(self, timeout: float = 5.0) -> Block | None:
        """The next block, or None when the stream ended."""
        while True:
            try:
                line = await asyncio.wait_for(anext(self._lines), timeout)
            except StopAsyncIteration:
                return None
            if (done := self._parser.feed(line)) is not None:
                return done

    async def event(self, timeout: float = 5.0) -> Block:
        """The next block that is an event (pings and other comments skipped)."""
        while True:
            block = await self.block(timeout)
            assert block is not None, "the stream ended"
            if block.name:
                return block

    async def events(self, count: int) -> list[Block]:
        return [await self.event() for _ in range(count)]


class SyncReader:
    """Blocks of a sync line iterator (`httpx.Response.iter_lines()`); a read timeout is the
    response's own (httpx's `read` timeout)."""

    def __init__(self, lines: Iterator[str]) -> None:
        self._lines = lines
        self._parser = _Parser()

    def block(self) -> Block | None:
        for line in self._lines:
            if (done := self._parser.feed(line)) is not None:
                return done
        return None

    def event(self) -> Block:
        while True:
            block = self.block()
            assert block is not None, "the stream ended"
            if block.name:
                return block
