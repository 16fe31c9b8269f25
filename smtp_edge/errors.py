"""Typed errors of the SMTP edge.

:mod:`smtp_edge.mail_api` raises these instead of gRPC errors; the handler
turns each into one reply from :mod:`smtp_edge.replies`.
"""
from __future__ import annotations


class EdgeError(Exception):
    """Base of this package's errors."""


class TemporaryFailure(EdgeError):
    """The router is unreachable, too slow, or failed: the client must retry.

    ``reason`` is short and safe to show to the SMTP client.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class InvalidCredentials(EdgeError):
    """Authentication was refused: wrong address or password."""


class BadAddress(EdgeError):
    """An envelope address is not a usable ``local@domain`` mailbox."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
