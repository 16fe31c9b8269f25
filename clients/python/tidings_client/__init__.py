"""Tidings client: the generated tidings.v1 stubs (package `tidings`) and an asyncio wrapper."""

from .client import AdminClient, MailClient
from .errors import (
    AlreadyExists,
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    TidingsError,
    Unauthenticated,
    Unavailable,
    Unimplemented,
)
from .paging import MessagePager

__all__ = [
    "AdminClient",
    "MailClient",
    "MessagePager",
    "TidingsError",
    "AlreadyExists",
    "DeadlineExceeded",
    "FailedPrecondition",
    "InvalidArgument",
    "NotFound",
    "PermissionDenied",
    "Unauthenticated",
    "Unavailable",
    "Unimplemented",
]
