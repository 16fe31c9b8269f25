"""`/healthz` (the process is up) and `/readyz` (the router answers)."""
from __future__ import annotations

from fastapi import APIRouter

from ..deps import Client, router_ready
from ..errors import RETRY_AFTER_SECONDS, ApiError

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(client: Client) -> dict[str, str]:
    if not await router_ready(client):
        raise ApiError(503, "unavailable", "the router is not reachable", headers={"Retry-After": RETRY_AFTER_SECONDS})
    return {"status": "ready"}
