"""Typed errors of the Tidings client, mapped once from gRPC status codes.

Every wrapper call raises a subclass of `TidingsError` instead of
`grpc.aio.AioRpcError`, so callers (the HTTP edge, the CLI, webmail) can
`except NotFound:` without knowing gRPC. The mapping lives in `_BY_CODE` and
nowhere else (one status is refined by its detail: FAILED_PRECONDITION
"cannot_calculate_changes" is `CannotCalculateChanges`); `from_rpc_error` is the
only translator.
"""
from __future__ import annotations

import grpc


class TidingsError(Exception):
    """Base class: `code` is the gRPC status the router answered with."""

    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(self, message: str = "", *, code: grpc.StatusCode | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"


class Cancelled(TidingsError):
    code = grpc.StatusCode.CANCELLED


class Unknown(TidingsError):
    code = grpc.StatusCode.UNKNOWN


class InvalidArgument(TidingsError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class DeadlineExceeded(TidingsError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


class NotFound(TidingsError):
    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(TidingsError):
    code = grpc.StatusCode.ALREADY_EXISTS


class PermissionDenied(TidingsError):
    code = grpc.StatusCode.PERMISSION_DENIED


class ResourceExhausted(TidingsError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class FailedPrecondition(TidingsError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class CannotCalculateChanges(FailedPrecondition):
    """`Changes`/`Watch` from a state older than the change feed keeps (the router's detail
    starts "cannot_calculate_changes"): resync from the listings, then follow their `state`."""

    DETAIL = "cannot_calculate_changes"


class Aborted(TidingsError):
    code = grpc.StatusCode.ABORTED


class OutOfRange(TidingsError):
    code = grpc.StatusCode.OUT_OF_RANGE


class Unimplemented(TidingsError):
    code = grpc.StatusCode.UNIMPLEMENTED


class Internal(TidingsError):
    code = grpc.StatusCode.INTERNAL


class Unavailable(TidingsError):
    code = grpc.StatusCode.UNAVAILABLE


class DataLoss(TidingsError):
    code = grpc.StatusCode.DATA_LOSS


class Unauthenticated(TidingsError):
    code = grpc.StatusCode.UNAUTHENTICATED


_BY_CODE: dict[grpc.StatusCode, type[TidingsError]] = {
    cls.code: cls
    for cls in (
        Cancelled,
        Unknown,
        InvalidArgument,
        DeadlineExceeded,
        NotFound,
        AlreadyExists,
        PermissionDenied,
        ResourceExhausted,
        FailedPrecondition,
        Aborted,
        OutOfRange,
        Unimplemented,
        Internal,
        Unavailable,
        DataLoss,
        Unauthenticated,
    )
}


def error_class(code: grpc.StatusCode) -> type[TidingsError]:
    return _BY_CODE.get(code, Unknown)


def from_rpc_error(err: grpc.RpcError) -> TidingsError:
    """Translate a gRPC error (sync or aio) into its typed counterpart."""
    code_fn = getattr(err, "code", None)
    details_fn = getattr(err, "details", None)
    code = code_fn() if callable(code_fn) else grpc.StatusCode.UNKNOWN
    details = (details_fn() if callable(details_fn) else None) or ""
    cls = error_class(code)
    if cls is FailedPrecondition and details.startswith(CannotCalculateChanges.DETAIL):
        cls = CannotCalculateChanges
    return cls(details or code.name.lower().replace("_", " "), code=code)


__all__ = [
    "TidingsError",
    "Cancelled",
    "Unknown",
    "InvalidArgument",
    "DeadlineExceeded",
    "NotFound",
    "AlreadyExists",
    "PermissionDenied",
    "ResourceExhausted",
    "FailedPrecondition",
    "CannotCalculateChanges",
    "Aborted",
    "OutOfRange",
    "Unimplemented",
    "Internal",
    "Unavailable",
    "DataLoss",
    "Unauthenticated",
    "error_class",
    "from_rpc_error",
]
