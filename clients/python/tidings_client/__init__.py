"""Tidings client: the generated tidings.v1 stubs (package `tidings`), an asyncio wrapper and its sync twin."""

from tidings import __version__  # proto/generate.py's VERSION, the package's too

from .client import AdminClient, MailClient
from .errors import (
    AlreadyExists,
    CannotCalculateChanges,
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
from .paging import MessagePager, SyncMessagePager
from .sync import SyncAdminClient, SyncMailClient

__all__ = [
    "__version__",
    "AdminClient",
    "MailClient",
    "MessagePager",
    "SyncAdminClient",
    "SyncMailClient",
    "SyncMessagePager",
    "TidingsError",
    "AlreadyExists",
    "CannotCalculateChanges",
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
