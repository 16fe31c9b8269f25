"""`/healthz` (the process is up) and `/readyz` (the router answers)."""
from __future__ import annotations

from fastapi import APIRouter

from ..deps import Client, router_ready
from ..errors import RETRY_AFTER_SECONDS, ApiError, error_responses
from ..schemas import StatusOut

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> StatusOut:
    return StatusOut(status="ok")


@router.get("/readyz", responses=error_responses(503))
async def readyz(client: Client) -> StatusOut:
    if not await router_ready(client):
        raise ApiError(503, "unavailable", "the router is not reachable", headers={"Retry-After": RETRY_AFTER_SECONDS})
    return StatusOut(status="ready")
