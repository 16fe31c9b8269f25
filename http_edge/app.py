"""The application factory: routers, error handlers, metrics, and the lifespan
that opens the router channel at start and closes it at stop."""
from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from tidings_client import MailClient
from tidings_runtime import logs

from . import errors, push
from .limits import BodyLimitMiddleware
from .observe import ObserveMiddleware
from .routes import ROUTERS
from .settings import Settings
from .tokens import TokenSigner


def without_default_422(spec: dict[str, Any]) -> dict[str, Any]:
    """Drop the 422 `HTTPValidationError` FastAPI adds to every route with parameters: invalid
    input is a 400 `invalid_request` here (`errors.py`), which the routes declare themselves."""
    for operations in spec.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.get("responses", {})
            ref = responses.get("422", {}).get("content", {}).get("application/json", {}).get("schema", {}).get("$ref")
            if ref == "#/components/schemas/HTTPValidationError":
                del responses["422"]
    schemas = spec.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    return spec


def create_app(settings: Settings, *, client: MailClient | None = None) -> FastAPI:
    """`client` lets tests hand in their own; by default one is opened on `settings.router`."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = client is None
        app.state.client = client if client is not None else MailClient(
            settings.router, timeout=settings.rpc_timeout, metadata=logs.request_metadata)
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
        # no OpenTelemetry here (the metrics are Prometheus's, http_edge/metrics.py): FastAPI's
        # own would look for a configured provider on every request
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.settings = settings
    app.state.signer = TokenSigner(settings.token_secret, settings.token_ttl)
    errors.install(app)
    app.add_middleware(BodyLimitMiddleware, max_body_size=settings.max_request_bytes)
    # outermost: an access line and the metrics of every answer, 413s included, its request id on all
    app.add_middleware(ObserveMiddleware)
    for router in ROUTERS:
        app.include_router(router)
    app.include_router(push.router)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = without_default_422(FastAPI.openapi(app))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
