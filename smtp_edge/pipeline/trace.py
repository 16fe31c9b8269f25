"""The ``Received:`` trace header (RFC 5321 4.4) prepended to each message.

Only this header is added; the client's bytes follow it unchanged, so
attachments come back byte-identical.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime

_UNSAFE = re.compile(r"[^\x21-\x7e]|[()\\;]")


@dataclass(frozen=True)
class Trace:
    helo: str            # what the client said in HELO/EHLO
    peer: str            # client IP address
    by: str              # our host name
    protocol: str        # RFC 3848: SMTP, ESMTP, ESMTPS, ESMTPSA
    entry_id: str
    recipient: str = ""  # named only when there is exactly one


def _clean(text: str, limit: int = 255) -> str:
    return _UNSAFE.sub("?", text)[:limit] or "unknown"


def received_header(trace: Trace, now: datetime | None = None) -> bytes:
    when = format_datetime(now or datetime.now(UTC))
    recipient = f"\r\n\tfor <{_clean(trace.recipient, 254)}>" if trace.recipient else ""
    return (f"Received: from {_clean(trace.helo)} ([{_clean(trace.peer, 64)}])\r\n"
            f"\tby {_clean(trace.by)} (Tidings) with {trace.protocol} id {trace.entry_id}"
            f"{recipient}; {when}\r\n").encode("ascii")


def stamp(raw: bytes, trace: Trace, now: datetime | None = None) -> bytes:
    """``raw`` with a ``Received:`` header in front."""
    return received_header(trace, now) + raw
