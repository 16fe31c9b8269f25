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
from .ids import new_entry_id
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
    "new_entry_id",
]
