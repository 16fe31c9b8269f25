"""What happens to a received message between the end of DATA and delivery.

- ``message``  :class:`InboundMessage`, the message and its envelope.
- ``headers``  a small, lenient reader of the header section (bytes in, bytes out).
- ``checks``   the checks: each an async callable returning ``None`` (pass) or
               a reply line from :mod:`smtp_edge.replies` (reject).
- ``trace``    the ``Received:`` header prepended before delivery.

The check lists below are the seam for later work: spam scoring and virus
scanning are further checks appended to :data:`INBOUND` (a verdict that
files to Spam instead of rejecting will travel on :class:`InboundMessage`).
"""
from __future__ import annotations

from smtp_edge.pipeline.checks import Check, check_from_owned, check_headers, check_size
from smtp_edge.pipeline.message import InboundMessage

INBOUND: tuple[Check, ...] = (check_size, check_headers)
SUBMISSION: tuple[Check, ...] = (check_size, check_headers, check_from_owned)


async def screen(message: InboundMessage, checks: tuple[Check, ...]) -> str | None:
    """Run ``checks`` in order; the first rejection's reply line, or ``None``."""
    for check in checks:
        reply = await check(message)
        if reply is not None:
            return reply
    return None


__all__ = ["INBOUND", "SUBMISSION", "Check", "InboundMessage", "screen"]
