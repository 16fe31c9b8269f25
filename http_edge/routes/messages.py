"""`/v1/messages`: send, read (detail, raw, attachments), change flags/folder, delete."""
from __future__ import annotations

import asyncio
import re
from typing import Annotated
from urllib.parse import quote

import nh3
from fastapi import APIRouter, Header, Path, Request, Response

from .. import sending
from ..deps import Client, CurrentUser, SettingsDep
from ..errors import AUTHENTICATED_WITH_INPUT, WITH_BODY, error_responses
from ..limits import send_limiter
from ..schemas import MessageDetailOut, MessagePatch, SendRequest, SendResponse, Summary

router = APIRouter(prefix="/v1/messages", tags=["messages"])

MessageId = Annotated[str, Path(min_length=1, max_length=256)]
AttachmentId = Annotated[str, Path(min_length=1, max_length=256)]

_SAFE_CONTENT_TYPE = re.compile(r"^[A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+$")
_INLINE_SANITIZE_LIMIT = 64 * 1024  # larger HTML is cleaned in a worker thread
_BYTES = {"schema": {"type": "string", "format": "binary"}}


async def sanitize_html(html: str) -> str | None:
    if not html:
        return None
    if len(html) <= _INLINE_SANITIZE_LIMIT:
        return nh3.clean(html)
    return await asyncio.to_thread(nh3.clean, html)


def attachment_headers(filename: str) -> dict[str, str]:
    fallback = "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "_" for c in filename) or "attachment"
    return {
        "Content-Disposition": f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox",
    }


@router.post("", status_code=202, responses=error_responses(*AUTHENTICATED_WITH_INPUT, *WITH_BODY, 409, 422))
async def send_message(
    body: SendRequest, user: CurrentUser, client: Client, settings: SettingsDep, request: Request,
    idempotency_key: Annotated[str | None, Header(description="1-255 printable ASCII characters; the same key "
                                                  "and body within 24 h get the first answer, nothing is sent "
                                                  "twice")] = None,
) -> SendResponse:
    key = sending.check_idempotency_key(idempotency_key)
    send_limiter(request.app.state, settings).check(user.user_id)
    return await sending.send(client, user, body, settings, key)


@router.get("/{message_id}", responses=error_responses(*AUTHENTICATED_WITH_INPUT, 404))
async def get_message(message_id: MessageId, user: CurrentUser, client: Client) -> MessageDetailOut:
    detail = await client.get_message(user.user_id, message_id)
    return MessageDetailOut.from_pb_detail(detail, await sanitize_html(detail.html))


@router.get(
    "/{message_id}/raw",
    response_class=Response,
    responses={200: {"content": {"message/rfc822": _BYTES}}, **error_responses(*AUTHENTICATED_WITH_INPUT, 404)},
)
async def get_raw_message(message_id: MessageId, user: CurrentUser, client: Client) -> Response:
    raw = await client.get_raw_message(user.user_id, message_id)
    return Response(content=raw, media_type="message/rfc822", headers={"X-Content-Type-Options": "nosniff"})


@router.get(
    "/{message_id}/attachments/{attachment_id}",
    response_class=Response,
    responses={
        200: {"description": "the bytes, as the attachment's (safe) content type", "content": {"*/*": _BYTES}},
        **error_responses(*AUTHENTICATED_WITH_INPUT, 404),
    },
)
async def get_attachment(
    message_id: MessageId, attachment_id: AttachmentId, user: CurrentUser, client: Client
) -> Response:
    att = await client.get_attachment(user.user_id, message_id, attachment_id)
    content_type = att.info.content_type.strip().lower()
    if not _SAFE_CONTENT_TYPE.match(content_type):
        content_type = "application/octet-stream"
    return Response(
        content=bytes(att.content),
        media_type=content_type,
        headers=attachment_headers(att.info.filename or attachment_id),
    )


@router.patch("/{message_id}", responses=error_responses(*AUTHENTICATED_WITH_INPUT, *WITH_BODY, 404, 409))
async def update_message(message_id: MessageId, patch: MessagePatch, user: CurrentUser, client: Client) -> Summary:
    if patch.is_empty:
        detail = await client.get_message(user.user_id, message_id)
        return Summary.from_pb(detail.summary)
    summary = await client.update_message(
        user.user_id, message_id, unread=patch.unread, starred=patch.starred, folder_id=patch.folder_id,
        answered=patch.answered, draft=patch.draft, add_keywords=patch.add_keywords,
        remove_keywords=patch.remove_keywords,
    )
    return Summary.from_pb(summary)


@router.delete(
    "/{message_id}", status_code=204, response_class=Response, responses=error_responses(*AUTHENTICATED_WITH_INPUT, 404)
)
async def delete_message(message_id: MessageId, user: CurrentUser, client: Client) -> Response:
    await client.delete_message(user.user_id, message_id)
    return Response(status_code=204)
