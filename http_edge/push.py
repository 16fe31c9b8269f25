"""Live push to online users: `GET /v1/events` (Server-Sent Events) — a later issue.

The seam: `router` below is already included by `app.py`; the events route
goes here and streams `message.new`, `message.updated`, `message.deleted`
(data JSON with `id`, `folder_id`, `thread_id`) with `sse_starlette`, fed by
the router's push fan-out for the authenticated user (`deps.CurrentUser`).
Nothing else in the edge needs to change.
"""
from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/v1/events", tags=["events"])
