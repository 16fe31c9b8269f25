"""The application factory: routers, error handlers, metrics, and the lifespan
that opens the router channel at start and closes it at stop."""
from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from tidings_client import MailClient

from . import errors, push
from .limits import BodyLimitMiddleware
from .metrics import MetricsMiddleware
from .routes import ROUTERS
from .settings import Settings
from .tokens import TokenSigner


def create_app(settings: Settings, *, client: MailClient | None = None) -> FastAPI:
    """`client` lets tests hand in their own; by default one is opened on `settings.router`."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = client is None
        app.state.client = client if client is not None else MailClient(settings.router, timeout=settings.rpc_timeout)
        try:
            yield
        finally:
            if owned:
                await app.state.client.close()

    app = FastAPI(
        title="Tidings",
        summary="The Tidings mail API",
        version="1",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.signer = TokenSigner(settings.token_secret, settings.token_ttl)
    errors.install(app)
    app.add_middleware(BodyLimitMiddleware, max_body_size=settings.max_request_bytes)
    app.add_middleware(MetricsMiddleware)  # outermost: counts every answer, 413s included
    for router in ROUTERS:
        app.include_router(router)
    app.include_router(push.router)
    return app
