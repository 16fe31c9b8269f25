"""`GET /v1/search?q=`: Gmail-style queries, run by the router's search.

A query the parser rejects comes back as INVALID_ARGUMENT (→ 400, with the
parse error and its position); until search lands, UNIMPLEMENTED (→ 501).
"""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from ..deps import Client, CurrentUser
from ..errors import AUTHENTICATED_WITH_INPUT, error_responses
from ..plain_json import PlainJSONResponse
from ..schemas import SearchPageOut

router = APIRouter(prefix="/v1/search", tags=["search"])


@router.get("", response_model=SearchPageOut, responses=error_responses(*AUTHENTICATED_WITH_INPUT))
async def search(
    user: CurrentUser,
    client: Client,
    q: Annotated[str, Query(min_length=1, max_length=2000)],
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str, Query(max_length=1024)] = "",
) -> PlainJSONResponse:
    return PlainJSONResponse(SearchPageOut.fields_from_pb(await client.search(user.user_id, q, limit=limit, cursor=cursor)))
