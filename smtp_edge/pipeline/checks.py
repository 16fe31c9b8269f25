"""Checks run on every received message before it is delivered.

Each check is ``async (InboundMessage) -> reply line | None``: ``None`` lets
the message through, a line from :mod:`smtp_edge.replies` rejects it. Checks
are small and independent; :mod:`smtp_edge.pipeline` lists which run where.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from email.utils import getaddresses

from smtp_edge import replies
from smtp_edge.pipeline.message import InboundMessage
from tidings_runtime.addresses import same_mailbox

Check = Callable[[InboundMessage], Awaitable[str | None]]

MAX_HEADER_BYTES = 1024 * 1024
MAX_HEADER_FIELDS = 1000
# RFC 5322 3.6: fields that may appear at most once.
SINGLE_FIELDS = ("date", "from", "sender", "reply-to", "to", "cc", "bcc",
                 "message-id", "in-reply-to", "references", "subject")


async def check_size(message: InboundMessage) -> str | None:
    """Over the advertised SIZE (aiosmtpd also stops reading past it)."""
    return replies.MESSAGE_TOO_BIG if len(message.raw) > message.max_size else None


async def check_headers(message: InboundMessage) -> str | None:
    """Header sanity: no NUL bytes, bounded size, single-instance fields once."""
    headers = message.headers
    if headers.has_nul:
        return replies.malformed_message("NUL byte in header section")
    if headers.size > MAX_HEADER_BYTES or len(headers.fields) > MAX_HEADER_FIELDS:
        return replies.malformed_message("header section too large")
    for name in SINGLE_FIELDS:
        if len(headers.values(name)) > 1:
            return replies.malformed_message(f"more than one {name.title()} header field")
    return None


async def check_from_owned(message: InboundMessage) -> str | None:
    """Submission: every ``From:`` address is the authenticated user's own."""
    if message.account is None:
        return replies.AUTH_REQUIRED
    values = message.headers.values("from")
    if not values:
        return replies.malformed_message("message has no From header field")
    text = values[0].decode("utf-8", errors="replace")
    addresses = [address for _, address in getaddresses([text]) if address]
    if not addresses:
        return replies.malformed_message("From header field has no address")
    for address in addresses:
        if not same_mailbox(address, message.account.email):
            return replies.sender_not_owned(address)
    return None
