"""`POST /v1/auth/token`: password (checked by the router) → signed bearer token."""
from __future__ import annotations

from fastapi import APIRouter

from ..deps import Client, Signer, login
from ..errors import error_responses
from ..schemas import TokenRequest, TokenResponse, rfc3339_s

router = APIRouter(prefix="/v1/auth", tags=["auth"])


@router.post("/token", responses=error_responses(400, 401, 413, 429, 503))
async def issue_token(body: TokenRequest, client: Client, signer: Signer) -> TokenResponse:
    account = await login(client, body.email, body.password)
    token, principal = signer.mint(account.user_id, account.email)
    return TokenResponse(token=token, expires_at=rfc3339_s(principal.expires_at))
