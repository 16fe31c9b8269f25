"""`GET /v1/folders` and a folder's messages, newest first, paged by cursor."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from ..deps import Client, CurrentUser
from ..errors import AUTHENTICATED, AUTHENTICATED_WITH_INPUT, error_responses
from ..schemas import FolderListOut, MessagePageOut

router = APIRouter(prefix="/v1/folders", tags=["folders"])

FolderId = Annotated[str, Path(min_length=1, max_length=128, description="a folder id or a role (`inbox`)")]


@router.get("", responses=error_responses(*AUTHENTICATED))
async def list_folders(user: CurrentUser, client: Client) -> FolderListOut:
    return FolderListOut.from_pb(await client.list_folders(user.user_id))


@router.get("/{folder_id}/messages", responses=error_responses(*AUTHENTICATED_WITH_INPUT, 404))
async def list_messages(
    folder_id: FolderId,
    user: CurrentUser,
    client: Client,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str, Query(max_length=1024)] = "",
    unread: bool = False,
) -> MessagePageOut:
    page = await client.list_messages(user.user_id, folder_id, unread_only=unread, limit=limit, cursor=cursor)
    return MessagePageOut.from_pb(page)
