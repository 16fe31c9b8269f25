"""`GET /v1/changes?since=STATE&limit=N`: what changed in the mailbox after a state (JMAP
`/changes`, RFC 8620 section 5.2), from `Mail.Changes`, collapsed per id by `feed.collapse`.

A folder's change only says the folder was created, renamed or deleted; when a window holds
some, one `ListFolders` tells the folders still there (`folders.updated`, a new one included)
from the gone (`folders.destroyed`); `folders.created` stays empty."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from ..deps import Client, CurrentUser
from ..errors import AUTHENTICATED_WITH_INPUT, error_responses
from ..feed import collapse, parse_state
from ..schemas import ChangesOut, FolderChangesOut

router = APIRouter(prefix="/v1/changes", tags=["changes"])

MAX_CHANGES = 1024  # the router's most a call


@router.get("", responses=error_responses(*AUTHENTICATED_WITH_INPUT, 409))
async def changes(
    user: CurrentUser,
    client: Client,
    since: Annotated[str, Query(max_length=40, description="a state: a listing's `state` or an earlier `new_state`")],
    limit: Annotated[int, Query(ge=1, le=MAX_CHANGES, description="changes to read at most")] = 256,
) -> ChangesOut:
    start = parse_state(since, "since")
    page = await client.changes(user.user_id, start, limit)
    found = collapse(list(page.changes))
    folders = FolderChangesOut(created=[], updated=[], destroyed=[])
    if found.folders.changed:
        present = {f.id for f in await client.list_folders(user.user_id)}
        for folder_id in found.folders.changed:
            (folders.updated if folder_id in present else folders.destroyed).append(folder_id)
    return ChangesOut(old_state=str(start), new_state=str(page.new_state), has_more=page.has_more,
                      created=found.created, updated=found.updated, destroyed=found.destroyed,
                      folders=folders, folders_changed=found.folders.changed)
