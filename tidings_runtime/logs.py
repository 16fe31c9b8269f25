"""Structured logs: one JSON object a line on stderr (or `text` for a person at a terminal),
with the request's ids from context variables, and what carries the request id across gRPC as
`x-request-id` metadata: `request_metadata` for a client's calls, the server interceptor that
binds it around a call's handler.

Nothing logged here carries message content or secrets: callers pass ids, addresses,
codes and sizes only (docs/architecture.md, Logs)."""
from __future__ import annotations

import json
import logging
import re
import secrets
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Literal

import grpc

LogFormat = Literal["json", "text"]
METADATA_KEY = "x-request-id"
_WELL_FORMED = re.compile(r"[A-Za-z0-9._:-]{1,128}")

# The context fields of every line, when set: the request (HTTP X-Request-ID, SMTP
# transaction id), the account it acts for (an id, never a credential), the session.
request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
user: ContextVar[str | None] = ContextVar("user", default=None)
session_id: ContextVar[str | None] = ContextVar("session_id", default=None)
_CONTEXT = {"request_id": request_id, "user": user, "session": session_id}

# LogRecord's own attributes: anything else on a record came from `extra=` and is a field.
_RECORD_ATTRS = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
log = logging.getLogger("tidings.rpc")


def new_request_id() -> str:
    """A fresh id: 16 hex digits (64 random bits)."""
    return secrets.token_hex(8)


def well_formed(value: str | None) -> str | None:
    """`value` if it may be used as a request id (1-128 of [A-Za-z0-9._:-]), else None."""
    return value if value is not None and _WELL_FORMED.fullmatch(value) else None


@contextmanager
def bound(**fields: str | None) -> Iterator[None]:
    """Set context fields (request_id, user, session) for the block, restored after."""
    tokens = [(_CONTEXT[name], _CONTEXT[name].set(value)) for name, value in fields.items()]
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


class JsonFormatter(logging.Formatter):
    """A record as one JSON object: ts (RFC 3339 UTC), level, logger, process (the role),
    msg, the context fields set, the record's `extra=` fields, and exc when there is one."""

    def __init__(self, role: str) -> None:
        super().__init__()
        self.role = role

    def format(self, record: logging.LogRecord) -> str:
        ts = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        line: dict[str, Any] = {"ts": ts, "level": record.levelname.lower(), "logger": record.name,
                                "process": self.role, "msg": record.getMessage()}
        for name, var in _CONTEXT.items():
            value = var.get()
            if value is not None:
                line[name] = value
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRS and not key.startswith("_"):
                line[key] = value
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """The same fields as a line for people: time, level, logger, message, then key=value."""

    def __init__(self, role: str) -> None:
        super().__init__(f"%(asctime)s {role} %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        fields = {name: var.get() for name, var in _CONTEXT.items() if var.get() is not None}
        fields.update({k: v for k, v in vars(record).items() if k not in _RECORD_ATTRS and not k.startswith("_")})
        text = super().format(record)
        return text + "".join(f" {k}={v}" for k, v in fields.items())


class _OurHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler `setup` installs (others on the root logger, e.g. pytest's, are left)."""


def setup(role: str, level: str = "info", fmt: LogFormat = "json") -> None:
    """Send every logger's records to stderr in `fmt` at `level`: a process calls it once at start."""
    handler = _OurHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(role) if fmt == "json" else TextFormatter(role))
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _OurHandler)]:   # a second call replaces ours only
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())


# -- gRPC: the request id across processes -----------------------------------------------


def request_metadata() -> tuple[tuple[str, str], ...] | None:
    """The current request id as a call's `x-request-id` metadata, None when none is set: given
    per call (a client's metadata hook), which costs less than a grpc.aio client interceptor
    (that wraps each call in an intercepted call with tasks of its own)."""
    rid = request_id.get()
    return None if rid is None else ((METADATA_KEY, rid),)


class RequestIdServerInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Each call's handler runs with request_id from its `x-request-id` metadata (if well formed)."""

    async def intercept_service(self, continuation: Callable[[grpc.HandlerCallDetails],
                                                             Awaitable[grpc.RpcMethodHandler]],
                                handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        rid = next((well_formed(str(v)) for k, v in handler_call_details.invocation_metadata or ()
                    if k == METADATA_KEY), None)
        if handler is None or rid is None:
            return handler
        return _bind_handler(handler, rid, handler_call_details.method)


def _bind_handler(handler: grpc.RpcMethodHandler, rid: str, method: str) -> grpc.RpcMethodHandler:
    """`handler` with its behaviour run inside `bound(request_id=rid)`, and a debug line a call."""
    def unary(behavior: Callable[..., Any]) -> Callable[..., Any]:
        async def call(request: Any, context: Any) -> Any:
            with bound(request_id=rid):
                log.debug("rpc", extra={"method": method})
                return await behavior(request, context)
        return call

    def streaming(behavior: Callable[..., Any]) -> Callable[..., Any]:
        async def call(request: Any, context: Any) -> AsyncIterator[Any]:
            with bound(request_id=rid):
                log.debug("rpc", extra={"method": method})
                result = behavior(request, context)
                if hasattr(result, "__aiter__"):
                    async for item in result:
                        yield item
                else:   # a handler that writes with context.write and returns None
                    await result
        return call

    kwargs = {"request_deserializer": handler.request_deserializer,
              "response_serializer": handler.response_serializer}
    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(unary(handler.unary_unary), **kwargs)
    if handler.stream_unary is not None:
        return grpc.stream_unary_rpc_method_handler(unary(handler.stream_unary), **kwargs)
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(streaming(handler.unary_stream), **kwargs)
    if handler.stream_stream is not None:
        return grpc.stream_stream_rpc_method_handler(streaming(handler.stream_stream), **kwargs)
    return handler
