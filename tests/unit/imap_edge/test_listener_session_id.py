"""imap_edge/listeners.py: each connection's session runs with its own session id, the
`session` field of every line it logs (tidings_runtime/logs.py)."""
from __future__ import annotations

import asyncio

from imap_edge.listeners import Sessions
from tidings_runtime import logs


async def _two_connections() -> list[str | None]:
    sessions = Sessions("imap")
    seen: list[str | None] = []
    done = asyncio.Event()

    async def session(writer: asyncio.StreamWriter) -> None:
        seen.append(logs.session_id.get())
        writer.close()
        if len(seen) == 2:
            done.set()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await sessions.run(session(writer))

    port = await sessions.listen(handler, "127.0.0.1", 0)
    for _ in range(2):
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.close()
    await asyncio.wait_for(done.wait(), 10)
    await sessions.stop()
    return seen


def test_each_session_has_its_own_id() -> None:
    first, second = asyncio.run(_two_connections())
    assert first and second and first != second
    assert logs.session_id.get() is None
