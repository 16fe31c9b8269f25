"""`GET /v1/events` (Server-Sent Events) over the router's test double (`tests.fake_mail.FakeMail`,
whose `Watch` streams its change feed), served by a real uvicorn on a loopback port (httpx's
ASGI transport does not stream): live events, replay after `Last-Event-ID` with none missed or
doubled across broken router streams, pings, `resync`, the per-user stream limit, 401/400."""
from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import uvicorn

from http_edge.app import create_app
from http_edge.settings import Settings
from tests.fake_mail import Change, FakeMail
from tests.http.sse import Reader
from tests.http.test_api import USER, assert_error, run, seeded
from tidings_client import MailClient

pytestmark = pytest.mark.timeout(60)


@dataclass
class Edge:
    url: str
    fake: FakeMail
    auth: dict[str, str]
    app: Any
    http: httpx.AsyncClient

    @asynccontextmanager
    async def stream(self, *, headers: dict[str, str] | None = None, **params: Any) -> AsyncIterator[Reader]:
        """An open event stream (200 checked, its first comment read)."""
        async with self.http.stream("GET", "/v1/events", headers={**self.auth, **(headers or {})},
                                    params=params) as response:
            assert response.status_code == 200, (await response.aread()).decode()
            assert response.headers["content-type"].startswith("text/event-stream")
            reader = Reader(response.aiter_lines())
            first = await reader.block()
            assert first is not None and first.comments[0].startswith("after state "), first
            assert first.fields.get("retry") == "1000"
            yield reader

    async def patch(self, id: str, **body: Any) -> None:
        r = await self.http.patch(f"/v1/messages/{id}", headers=self.auth, json=body)
        assert r.status_code == 200, r.text

    async def delete(self, id: str) -> None:
        assert (await self.http.delete(f"/v1/messages/{id}", headers=self.auth)).status_code == 204


@asynccontextmanager
async def serving(**settings: Any) -> AsyncIterator[Edge]:
    async with seeded() as fake:
        app = create_app(Settings(token_secret=b"k" * 32, router=fake.address, rpc_timeout=5, **settings))
        token, _ = app.state.signer.mint(USER.user_id, USER.email)
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        config = uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=2)
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started:
            assert not task.done(), task.result()
            await asyncio.sleep(0.01)
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        try:
            async with httpx.AsyncClient(base_url=url, timeout=10) as http:
                yield Edge(url, fake, {"Authorization": f"Bearer {token}"}, app, http)
        finally:
            server.should_exit = True
            await task
            sock.close()


async def eventually(check: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


def test_live_events_from_the_current_state() -> None:
    async def main() -> None:
        async with serving() as edge, edge.stream() as events:
            await edge.patch("m1", unread=False)
            updated = await events.event()
            assert (updated.name, updated.fields["id"]) == ("message.updated", "5")
            assert updated.data == {"id": "m1", "folder_id": "inbox", "thread_id": "t1"}
            await edge.delete("m2")
            await edge.delete("m2")
            moved, deleted = await events.events(2)
            assert (moved.name, moved.fields["id"], deleted.name, deleted.fields["id"]) == \
                ("message.updated", "6", "message.deleted", "7")
            assert moved.data == {"id": "m2", "folder_id": "trash", "thread_id": "t1", "uid": 1,
                                  "from_folder_id": "inbox"}
            assert deleted.data == {"id": "m2", "folder_id": "trash", "thread_id": "t1"}
            r = await edge.http.post("/v1/messages", headers=edge.auth, json={"to": [USER.email], "text": "hi"})
            assert r.status_code == 202, r.text
            new = await events.events(2)
            assert [(e.name, e.data["folder_id"]) for e in new] == [("message.new", "inbox"), ("message.new", "sent")]
            assert new[1].data["id"] == r.json()["id"] and new[1].data["thread_id"] == r.json()["thread_id"]
            edge.fake.record(USER.user_id, Change.FOLDER_UPDATED, "f1")
            folder = await events.event()
            assert (folder.name, folder.fields["id"], folder.data) == \
                ("folder.updated", "10", {"id": "f1", "folder_id": None, "thread_id": None})
            assert edge.fake.calls["Watch"][0].since == 4  # ListFolders' state when the stream began
            assert edge.fake.calls["Watch"][0].user_id == USER.user_id

    asyncio.run(main())


def test_last_event_id_replays_across_broken_router_streams_none_missed_none_twice() -> None:
    async def main() -> None:
        async with serving() as edge:
            for id in ("m1", "m2", "m3", "parent", "m1", "m2"):  # changes 5 to 10
                await edge.patch(id, starred=True)
            seen: list[str] = []
            async with edge.stream(headers={"Last-Event-ID": "6"}, since="1") as events:  # the header wins
                seen += [e.fields["id"] for e in await events.events(4)]
                await edge.patch("m3", unread=False)  # 11
                seen.append((await events.event()).fields["id"])
                edge.fake.break_watches()  # the router's stream breaks: the edge redials from 11
                await edge.patch("m1", unread=False)  # 12
                seen.append((await events.event()).fields["id"])
                port = int(edge.fake.address.rpartition(":")[2])
                await edge.fake.stop()  # the router restarts; changes land meanwhile
                edge.fake.record(USER.user_id, Change.MESSAGE_UPDATED, "m2", folder_id="inbox")  # 13
                await asyncio.sleep(0.3)
                await edge.fake.start(port)
                edge.fake.record(USER.user_id, Change.MESSAGE_UPDATED, "m3", folder_id="inbox")  # 14
                seen += [e.fields["id"] for e in await events.events(2)]
            assert seen == [str(n) for n in range(7, 15)]
            watches = [r.since for r in edge.fake.calls["Watch"]]
            assert watches[0] == 6 and 11 in watches and watches[-1] == 12, watches

            async with edge.stream(since="12") as events:  # ?since= alone
                assert [e.fields["id"] for e in await events.events(2)] == ["13", "14"]

    asyncio.run(main())


def test_ping_comments_at_the_asked_interval() -> None:
    async def main() -> None:
        async with serving() as edge:
            async with edge.stream(ping=1) as events:
                start, pings = time.monotonic(), []
                while time.monotonic() - start < 2.6:
                    block = await events.block(timeout=3)
                    assert block is not None and not block.name
                    pings.append(time.monotonic() - start)
                assert len(pings) >= 2 and all(b.startswith("ping") for b in block.comments)
                assert 0.7 < pings[1] - pings[0] < 1.5, pings
            async with edge.stream() as events:  # 15 s by default: nothing within a second
                with pytest.raises(TimeoutError):
                    await events.block(timeout=1)

    asyncio.run(main())


def test_a_state_too_old_sends_resync_and_ends_the_stream() -> None:
    async def main() -> None:
        async with serving() as edge:
            edge.fake.compact(USER.user_id, 3)
            async with edge.stream(headers={"Last-Event-ID": "2"}) as events:
                resync = await events.event()
                assert resync.name == "resync" and "id" not in resync.fields
                assert resync.data["error"] == "cannot_calculate_changes" and "resync" in resync.data["message"]
                assert await events.block() is None
            async with edge.stream(headers={"Last-Event-ID": "3"}) as events:  # still kept
                assert (await events.event()).data["id"] == "parent"

    asyncio.run(main())


def test_streams_per_user_are_bounded_and_given_back() -> None:
    async def main() -> None:
        async with serving(event_streams=2) as edge:
            async with edge.stream(), edge.stream():
                await eventually(lambda: edge.fake.watching == 2)
                r = await edge.http.get("/v1/events", headers=edge.auth)
                assert_error(r, 429, "too_many_streams")
            await eventually(lambda: edge.fake.watching == 0)  # the router streams ended with the clients
            await eventually(lambda: edge.app.state.event_slots.open == {})
            async with edge.stream(), edge.stream():
                pass
            await eventually(lambda: edge.app.state.event_slots.open == {})

    asyncio.run(main())


def test_errors_before_the_stream() -> None:
    async def scenario(c: httpx.AsyncClient, fake: FakeMail, auth: dict[str, str]) -> None:
        assert_error(await c.get("/v1/events"), 401, "unauthenticated")
        assert_error(await c.get("/v1/events", headers={"Authorization": "Bearer nope"}), 401, "unauthenticated")
        for params, headers in (({"ping": 0}, {}), ({"ping": 301}, {}), ({"since": "x"}, {}),
                                ({}, {"Last-Event-ID": "-3"}), ({}, {"Last-Event-ID": "1e3"})):
            assert_error(await c.get("/v1/events", params=params, headers={**auth, **headers}), 400,
                         "invalid_request")
        assert "Watch" not in fake.calls and "ListFolders" not in fake.calls

    run(scenario)


def test_client_watch_redials_from_the_last_change() -> None:
    async def main() -> None:
        async with seeded() as fake, MailClient(fake.address) as mail:
            seen: list[int] = []
            async for change in mail.watch(USER.user_id, 1, backoff=(0.01, 0.05)):
                seen.append(change.modseq)
                if change.modseq == 3:
                    fake.break_watches()
                    fake.record(USER.user_id, Change.MESSAGE_UPDATED, "m1")
                if change.modseq == 5:
                    break
            assert seen == [2, 3, 4, 5]
            assert [r.since for r in fake.calls["Watch"]] == [1, 4]
            await eventually(lambda: fake.watching == 0)  # leaving the loop ends the router's stream

    asyncio.run(main())
