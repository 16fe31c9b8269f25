"""`GET /v1/threads/{thread_id}`: a conversation, oldest first."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from ..deps import Client, CurrentUser
from ..errors import AUTHENTICATED_WITH_INPUT, error_responses
from ..plain_json import PlainJSONResponse
from ..schemas import ThreadOut

router = APIRouter(prefix="/v1/threads", tags=["threads"])


@router.get("/{thread_id}", response_model=ThreadOut, responses=error_responses(*AUTHENTICATED_WITH_INPUT, 404))
async def get_thread(
    thread_id: Annotated[str, Path(min_length=1, max_length=256)], user: CurrentUser, client: Client
) -> PlainJSONResponse:
    return PlainJSONResponse(ThreadOut.fields_from_pb(await client.get_thread(user.user_id, thread_id)))
