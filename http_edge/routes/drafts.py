"""`/v1/drafts`: save a draft (the JSON of `POST /v1/messages`, recipients optional), replace
it, send it. A draft is a message of the Drafts folder, so it is read, listed and deleted as
any (`/v1/folders/drafts/messages`, `/v1/messages/{id}`); messages are immutable, so a
replaced draft has a new id (`replaces` names the old one, which is gone)."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Path, Request

from .. import sending
from ..deps import Client, CurrentUser, SettingsDep
from ..errors import AUTHENTICATED_WITH_INPUT, WITH_BODY, error_responses
from ..limits import send_limiter
from ..schemas import DraftOut, DraftRequest, SendResponse

router = APIRouter(prefix="/v1/drafts", tags=["drafts"])

DraftId = Annotated[str, Path(min_length=1, max_length=256)]


@router.post("", status_code=201, responses=error_responses(*AUTHENTICATED_WITH_INPUT, *WITH_BODY))
async def create_draft(body: DraftRequest, user: CurrentUser, client: Client, settings: SettingsDep) -> DraftOut:
    return await sending.save_draft(client, user, body, settings)


@router.put("/{draft_id}", responses=error_responses(*AUTHENTICATED_WITH_INPUT, *WITH_BODY, 404))
async def replace_draft(draft_id: DraftId, body: DraftRequest, user: CurrentUser, client: Client,
                        settings: SettingsDep) -> DraftOut:
    """The draft is stored anew (a new `id`) and the old one expunged."""
    return await sending.save_draft(client, user, body, settings, replaces=draft_id)


@router.post("/{draft_id}/send", status_code=202,
             responses=error_responses(*AUTHENTICATED_WITH_INPUT, 404, 409, 422))
async def send_draft(
    draft_id: DraftId, user: CurrentUser, client: Client, settings: SettingsDep, request: Request,
    idempotency_key: Annotated[str | None, Header(description="as for POST /v1/messages: the same key for "
                                                  "the same draft within 24 h gets the first answer")] = None,
) -> SendResponse:
    """Sent as `POST /v1/messages` sends (its To, Cc and Bcc; the Bcc field is not sent), then
    removed from Drafts."""
    key = sending.check_idempotency_key(idempotency_key)
    send_limiter(request.app.state, settings).check(user.user_id)
    return await sending.send_draft(client, user, draft_id, settings, key)
