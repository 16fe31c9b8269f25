"""Live push to online users: `GET /v1/events`, Server-Sent Events for the signed-in user.

Each change of the mailbox is one event, `message.new`, `message.updated`, `message.deleted`
or `folder.updated`, with `id:` its MODSEQ and data JSON `{"id", "folder_id", "thread_id"}`
(plus `uid`, and `from_folder_id` for a move): `feed.event`. A stream starts after the state
named by `Last-Event-ID` (what a browser's EventSource sends when it reconnects) or `?since=`,
else after the mailbox's current state (`ListFolders`' `state`, read before the answer's
headers, so nothing that happens after them is missed). Every connection holds one
`Mail.Watch` stream of the router, which replays the changes after that state and then pushes
new ones; `tidings_client`'s `watch` redials a broken one (a router restart) from the last
MODSEQ it saw, so an event is neither lost nor sent twice. A state older than the feed keeps
ends the stream with an event `resync` (list again, then follow the listing's `state`).

A comment line is sent every `?ping=` seconds (15; 1 to 300) to keep proxies from closing an
idle stream. A user holds at most `--event-streams` (8) streams at once on one edge process:
one more is `429 too_many_streams`.
"""
from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from prometheus_client import Gauge
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.types import Receive, Scope, Send

from tidings_client import CannotCalculateChanges, MailClient, TidingsError

from . import feed
from .deps import Client, CurrentUser, SettingsDep
from .errors import AUTHENTICATED_WITH_INPUT, RESYNC, ApiError, error_responses

log = logging.getLogger("http_edge.push")

router = APIRouter(prefix="/v1/events", tags=["events"])

OPEN = Gauge("tidings_http_event_streams", "GET /v1/events streams open")
RETRY_MS = 1000      # what a browser waits before reconnecting a stream that ended
MAX_STATE_CHARS = 40


class StreamSlots:
    """The event streams open per user on this process, at most `limit` each."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open: dict[str, int] = {}

    def take(self, user_id: str) -> None:
        held = self.open.get(user_id, 0)
        if held >= self.limit:
            raise ApiError(429, "too_many_streams", f"at most {self.limit} event streams open at once; close one")
        self.open[user_id] = held + 1
        OPEN.inc()

    def give(self, user_id: str) -> None:
        held = self.open.pop(user_id, 0) - 1
        if held > 0:
            self.open[user_id] = held
        OPEN.dec()


def stream_slots(state: Any, settings: Any) -> StreamSlots:
    """The app's `StreamSlots` (`--event-streams`), made on first use."""
    slots = getattr(state, "event_slots", None)
    if slots is None:
        slots = state.event_slots = StreamSlots(settings.event_streams)
    return slots


class EventStream(EventSourceResponse):
    """An SSE response that gives its slot back when it ends, however it ends (the client left,
    the edge stops, the stream failed)."""

    def __init__(self, content: AsyncIterator[ServerSentEvent], *, ping: float, release: Callable[[], None]) -> None:
        super().__init__(content, ping=ping)
        self._release = release

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._release()


async def events_after(client: MailClient, user_id: str, since: int) -> AsyncIterator[ServerSentEvent]:
    """The stream's events: a first comment (the state it starts after, and the reconnect delay),
    then every change after `since`, for as long as the client listens."""
    yield ServerSentEvent(comment=f"after state {since}", retry=RETRY_MS)
    try:
        async for change in client.watch(user_id, since):
            found = feed.event(change)
            if found is not None:
                yield ServerSentEvent(data=found.data, event=found.name, id=found.id)
    except CannotCalculateChanges:
        data = {"error": "cannot_calculate_changes", "message": RESYNC}
        yield ServerSentEvent(data=json.dumps(data), event="resync")
    except TidingsError as exc:  # the stream ends; the browser reconnects with Last-Event-ID
        log.warning("event stream of %s ended: %s %s", user_id, exc.code.name, exc.message)


@router.get(
    "",
    response_class=EventSourceResponse,
    responses={
        200: {"description": "an endless `text/event-stream`", "content": {"text/event-stream": {"schema": {"type": "string"}}}},
        **error_responses(*AUTHENTICATED_WITH_INPUT),
        429: {**error_responses(429)[429], "description": "too many streams open (`too_many_streams`): close one",
              "headers": {}},
    },
)
async def events(
    request: Request,
    user: CurrentUser,
    client: Client,
    settings: SettingsDep,
    last_event_id: Annotated[str | None, Header(max_length=MAX_STATE_CHARS,
                                                description="the `id:` of the last event seen: replay after it")] = None,
    since: Annotated[str | None, Query(max_length=MAX_STATE_CHARS,
                                       description="as Last-Event-ID (which wins): a listing's `state`")] = None,
    ping: Annotated[int, Query(ge=1, le=300, description="seconds between keep-alive comments")] = 15,
) -> EventSourceResponse:
    start = None
    if last_event_id:
        start = feed.parse_state(last_event_id, "Last-Event-ID")
    elif since is not None:
        start = feed.parse_state(since, "since")
    slots = stream_slots(request.app.state, settings)
    slots.take(user.user_id)
    try:
        if start is None:
            start = await client.mailbox_state(user.user_id)
    except BaseException:
        slots.give(user.user_id)
        raise
    return EventStream(events_after(client, user.user_id, start), ping=ping, release=lambda: slots.give(user.user_id))
