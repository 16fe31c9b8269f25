"""`/v1/folders`: the folders with their counts, a folder's messages (newest first, paged by
cursor), and custom folders: create, rename, delete (only when empty; never a system folder)."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from ..deps import Client, CurrentUser
from ..errors import AUTHENTICATED, AUTHENTICATED_WITH_INPUT, WITH_BODY, error_responses
from ..plain_json import PlainJSONResponse
from ..schemas import FolderIn, FolderListOut, FolderOut, MessagePageOut

router = APIRouter(prefix="/v1/folders", tags=["folders"])

FolderId = Annotated[str, Path(min_length=1, max_length=128, description="a folder id or a role (`inbox`)")]


@router.get("", response_model=FolderListOut, responses=error_responses(*AUTHENTICATED))
async def list_folders(user: CurrentUser, client: Client) -> PlainJSONResponse:
    return PlainJSONResponse(FolderListOut.fields_from_pb(await client.folder_list(user.user_id)))


@router.post("", status_code=201, responses=error_responses(*AUTHENTICATED_WITH_INPUT, *WITH_BODY, 409))
async def create_folder(body: FolderIn, user: CurrentUser, client: Client) -> FolderOut:
    """409 `folder_exists`: a folder of that name (ignoring case) exists, a system folder's included."""
    return FolderOut.from_pb(await client.create_folder(user.user_id, body.name))


@router.patch("/{folder_id}", responses=error_responses(*AUTHENTICATED_WITH_INPUT, *WITH_BODY, 404, 409))
async def rename_folder(folder_id: FolderId, body: FolderIn, user: CurrentUser, client: Client) -> FolderOut:
    """409 `folder_exists` (the name is taken) or `system_folder` (system folders keep their names)."""
    return FolderOut.from_pb(await client.rename_folder(user.user_id, folder_id, body.name))


@router.delete("/{folder_id}", status_code=204, response_class=Response,
               responses=error_responses(*AUTHENTICATED_WITH_INPUT, 404, 409))
async def delete_folder(folder_id: FolderId, user: CurrentUser, client: Client) -> Response:
    """409 `folder_not_empty` (move or delete its messages first) or `system_folder`."""
    await client.delete_folder(user.user_id, folder_id)
    return Response(status_code=204)


@router.get("/{folder_id}/messages", response_model=MessagePageOut,
             responses=error_responses(*AUTHENTICATED_WITH_INPUT, 404))
async def list_messages(
    folder_id: FolderId,
    user: CurrentUser,
    client: Client,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str, Query(max_length=1024)] = "",
    unread: bool = False,
) -> PlainJSONResponse:
    page = await client.list_messages(user.user_id, folder_id, unread_only=unread, limit=limit, cursor=cursor)
    return PlainJSONResponse(MessagePageOut.fields_from_pb(page))
