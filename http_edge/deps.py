"""Shared dependencies: settings, the router client, the authenticated user, login, readiness.

Routes declare what they need with the `Annotated` aliases below:

    async def list_folders(user: CurrentUser, client: Client) -> ...
"""
from __future__ import annotations

from typing import Annotated

import grpc
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tidings.v1 import types_pb2
from tidings_client import InvalidArgument, MailClient, NotFound, PermissionDenied, Unauthenticated

from .access_log import note_user
from .errors import unauthenticated
from .settings import Settings
from .tokens import InvalidToken, Principal, TokenSigner

_bearer = HTTPBearer(auto_error=False, description="a token from POST /v1/auth/token")


# Every dependency is `async def`: FastAPI runs a plain `def` one in a worker thread, a
# thread hop (and a wake of the loop) per dependency per request for a few attribute reads.
async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_client(request: Request) -> MailClient:
    return request.app.state.client


async def get_signer(request: Request) -> TokenSigner:
    return request.app.state.signer


async def current_user(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None:
        if request.headers.get("authorization"):
            raise unauthenticated("the Authorization header must be 'Bearer <token>'")
        raise unauthenticated("missing bearer token (POST /v1/auth/token to get one)")
    try:
        principal: Principal = request.app.state.signer.verify(credentials.credentials)
    except InvalidToken as exc:
        raise unauthenticated(str(exc)) from None
    note_user(request.scope, principal.user_id)
    return principal


SettingsDep = Annotated[Settings, Depends(get_settings)]
Client = Annotated[MailClient, Depends(get_client)]
Signer = Annotated[TokenSigner, Depends(get_signer)]
CurrentUser = Annotated[Principal, Depends(current_user)]


async def login(client: MailClient, email: str, password: str) -> types_pb2.Account:
    """`Mail.Authenticate`; an unknown account is a wrong password to the outside (401)."""
    try:
        return await client.authenticate(email, password)
    except (NotFound, InvalidArgument, Unauthenticated, PermissionDenied):
        raise unauthenticated("wrong email or password") from None


async def router_ready(client: MailClient, timeout: float = 1.0) -> bool:
    """True when the router answers its gRPC health check (or at least answers)."""
    stub = health_pb2_grpc.HealthStub(client.channel)
    try:
        reply = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout)
    except grpc.RpcError as err:
        return err.code() == grpc.StatusCode.UNIMPLEMENTED  # up, but without a health service
    return reply.status == health_pb2.HealthCheckResponse.SERVING
