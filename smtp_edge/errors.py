"""Typed errors of the SMTP edge.

:mod:`smtp_edge.mail_api` raises these instead of gRPC errors; the handler
turns each into one reply from :mod:`smtp_edge.replies`. A malformed address is
:class:`tidings_runtime.addresses.AddressError`, whoever found it.
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


class PermanentFailure(EdgeError):
    """The router refused the request for good: retrying it cannot help.

    ``reason`` is the router's, safe to show to the SMTP client.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class InvalidCredentials(EdgeError):
    """Authentication was refused: wrong address or password."""
