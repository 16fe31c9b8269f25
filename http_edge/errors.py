"""The one place where exceptions become HTTP responses.

Every error leaves the edge as `{"error": {"code": ..., "message": ...}}`
(plus, for some codes, extra fields inside `error`). Sources:
- `ApiError`, raised by edge code (auth, validation beyond pydantic, sending);
- `compose.ComposeError` (a message that cannot be built: 400; too large: 413);
- `tidings_runtime.addresses.AddressError` (a malformed address: 400; inside a
  request body pydantic reports it first, as a validation error);
- `tidings_client.errors.TidingsError`, raised by the router client: mapped by
  `_BY_CLIENT_ERROR` below;
- FastAPI's `RequestValidationError` (malformed JSON, wrong types, bad query
  parameters) → 400 `invalid_request`;
- Starlette's `HTTPException` (unknown route 404, wrong method 405, body too
  large 413);
- anything else → 500 `internal`, logged, with no details leaked.
Routes never catch exceptions themselves.

What a route can answer is documented from one table here, `ERROR_RESPONSES`
(status → OpenAPI response with the `ErrorBody` model): routes pick their
statuses with `error_responses(...)`, usually through the tuples below, so
`/openapi.json` says which errors each route gives (and the schemathesis test
holds it to that).
"""
from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from tidings_client import errors as client_errors
from tidings_runtime.addresses import AddressError

from .compose import ComposeError, MessageTooLarge

log = logging.getLogger("http_edge")

RETRY_AFTER_SECONDS = "1"


# ---- the error body, and which routes give which errors (OpenAPI) ---------------


class ErrorDetail(BaseModel):
    """Some codes add fields (e.g. `recipients_rejected`: `recipients: [{"email", "reason"}]`)."""

    model_config = ConfigDict(extra="allow")

    code: str = Field(description="machine-readable, e.g. `invalid_request`, `not_found`, `rate_limited`")
    message: str = Field(description="for people")


class ErrorBody(BaseModel):
    error: ErrorDetail


def _retry_after(description: str) -> dict[str, Any]:
    return {"Retry-After": {"description": description, "schema": {"type": "integer", "minimum": 0}}}


# status → OpenAPI response. Other modules may add statuses or headers here (at import time).
ERROR_RESPONSES: dict[int, dict[str, Any]] = {
    400: {"description": "a malformed request: bad JSON, a wrong type, an invalid parameter (`invalid_request`)"},
    401: {
        "description": "no, a malformed or an expired bearer token; or a wrong password (`unauthenticated`)",
        "headers": {"WWW-Authenticate": {"description": "`Bearer`", "schema": {"type": "string"}}},
    },
    403: {"description": "not allowed (`forbidden`)"},
    404: {"description": "no such resource (`not_found`)"},
    409: {"description": "conflicts with the current state (`conflict`, `failed_precondition`; "
                         "`cannot_calculate_changes`: a state too old for the change feed, resync; folders: "
                         "`folder_exists`, `folder_not_empty`, `system_folder`, `too_many_folders`)"},
    413: {"description": "the request body (`payload_too_large`) or the message (`message_too_large`) is too large"},
    422: {"description": "well-formed but refused: `recipients_rejected`, with `recipients: [{\"email\", \"reason\"}]`"},
    429: {"description": "too many requests (`rate_limited`)", "headers": _retry_after("seconds to wait")},
    503: {
        "description": "the mail store is temporarily unavailable (`unavailable`); retry",
        "headers": _retry_after("seconds to wait"),
    },
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The `responses=` of a route that can answer these error statuses, each with `ErrorBody`."""
    return {status: {"model": ErrorBody, **ERROR_RESPONSES[status]} for status in statuses}


# What every route that reaches the router as the signed-in user can answer besides its own errors.
AUTHENTICATED = (401, 429, 503)
# ... and one that takes parameters or a body as well.
AUTHENTICATED_WITH_INPUT = (400, *AUTHENTICATED)
# ... and a JSON body (the body limit).
WITH_BODY = (400, 413)


class ApiError(Exception):
    """An error answered to the client as is."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}
        self.extra = extra or {}


def invalid_request(message: str) -> ApiError:
    return ApiError(400, "invalid_request", message)


def unauthenticated(message: str) -> ApiError:
    return ApiError(401, "unauthenticated", message, headers={"WWW-Authenticate": "Bearer"})


def error_response(
    status: int,
    code: str,
    message: str,
    *,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {"code": code, "message": message}
    if extra:
        body.update(extra)
    return JSONResponse({"error": body}, status_code=status, headers=headers)


# gRPC status (as typed client errors) → (HTTP status, error code). Anything
# not listed (INTERNAL, UNKNOWN, DATA_LOSS, ...) is a 500 `internal`.
_BY_CLIENT_ERROR: dict[type[client_errors.TidingsError], tuple[int, str]] = {
    client_errors.InvalidArgument: (400, "invalid_request"),
    client_errors.OutOfRange: (400, "invalid_request"),
    client_errors.Unauthenticated: (401, "unauthenticated"),
    client_errors.PermissionDenied: (403, "forbidden"),
    client_errors.NotFound: (404, "not_found"),
    client_errors.AlreadyExists: (409, "conflict"),
    client_errors.Aborted: (409, "conflict"),
    client_errors.FailedPrecondition: (409, "failed_precondition"),
    client_errors.CannotCalculateChanges: (409, "cannot_calculate_changes"),
    client_errors.ResourceExhausted: (429, "rate_limited"),
    client_errors.Unimplemented: (501, "not_implemented"),
    client_errors.Unavailable: (503, "unavailable"),
    client_errors.DeadlineExceeded: (503, "unavailable"),
    client_errors.Cancelled: (503, "unavailable"),
}

# Statuses whose router message is safe and useful to pass on.
_PASS_MESSAGE = {400, 401, 403, 404, 409, 429, 501}
RESYNC = ("the state is older than the change feed keeps: resync (list the folders and messages again, "
          "then ask for changes since the listing's state)")
# Codes answered with a message of the edge's own.
_MESSAGES = {"cannot_calculate_changes": RESYNC}


# 409s whose router detail begins with a code of its own ("folder_exists: ..."): that code,
# and the rest of the detail as the message.
_DETAIL_CODES = {"folder_exists", "folder_not_empty", "system_folder", "too_many_folders"}


def client_error_response(exc: client_errors.TidingsError) -> JSONResponse:
    status, code = _BY_CLIENT_ERROR.get(type(exc), (500, "internal"))
    own, _, rest = (exc.message or "").partition(": ")
    if status == 409 and own in _DETAIL_CODES:
        return error_response(status, own, rest or own)
    if status == 503:
        return error_response(
            503,
            code,
            "the mail store is temporarily unavailable; retry shortly",
            headers={"Retry-After": RETRY_AFTER_SECONDS},
        )
    if code in _MESSAGES:
        return error_response(status, code, _MESSAGES[code])
    if status == 501:
        return error_response(501, code, exc.message or "not implemented yet")
    if status in _PASS_MESSAGE:
        return error_response(status, code, exc.message or HTTPStatus(status).phrase)
    log.error("router answered %s: %s", exc.code.name, exc.message)
    return error_response(500, "internal", "internal error")


def _describe_location(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in {"body", "query", "path", "header"}:
        where, rest = parts[0], parts[1:]
        return ".".join(rest) if rest else where
    return ".".join(parts)


def validation_message(exc: RequestValidationError) -> str:
    messages: list[str] = []
    for err in exc.errors():
        kind = err.get("type", "")
        loc = tuple(err.get("loc", ()))
        if kind == "json_invalid":
            detail = (err.get("ctx") or {}).get("error", "invalid JSON")
            pos = loc[1] if len(loc) > 1 else "?"
            messages.append(f"malformed JSON body: {detail} (at position {pos})")
            continue
        if loc == ("body",) and kind == "missing":
            messages.append("a JSON request body is required")
            continue
        if loc == ("body",) and kind in {"model_attributes_type", "dict_type", "model_type"}:
            messages.append("the request body must be a JSON object sent with Content-Type: application/json")
            continue
        msg = str(err.get("msg", "invalid value"))
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        messages.append(f"{_describe_location(loc)}: {msg}")
    if not messages:
        return "invalid request"
    shown = "; ".join(messages[:3])
    if len(messages) > 3:
        shown += f" (and {len(messages) - 3} more)"
    return shown


_HTTP_CODES = {
    400: "invalid_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.code, exc.message, headers=exc.headers, extra=exc.extra)


async def _client_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, client_errors.TidingsError)
    return client_error_response(exc)


async def _compose_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ComposeError)
    if isinstance(exc, MessageTooLarge):
        return error_response(413, "message_too_large", str(exc))
    return error_response(400, "invalid_request", str(exc))


async def _address_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AddressError)
    return error_response(400, "invalid_request", str(exc))


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return error_response(400, "invalid_request", validation_message(exc))


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    code = _HTTP_CODES.get(status) or HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_")
    if status == 404:
        message = "no such resource"
    elif status == 405:
        message = f"method {request.method} not allowed here"
    elif status == 413:
        message = str(exc.detail) if exc.detail and exc.detail != HTTPStatus(413).phrase else "request body too large"
    else:
        message = str(exc.detail) if exc.detail else HTTPStatus(status).phrase
    return error_response(status, code, message, headers=dict(exc.headers or {}))


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal", "internal error")


def install(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(client_errors.TidingsError, _client_error)
    app.add_exception_handler(ComposeError, _compose_error)
    app.add_exception_handler(AddressError, _address_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
