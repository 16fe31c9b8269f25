"""aiosmtpd's ``SMTP`` protocol as this edge runs it.

The protocol itself is aiosmtpd's, unchanged. At the wire edge we only
(1) map the few reply lines aiosmtpd hard-codes (its size, STARTTLS and
address errors) through :data:`smtp_edge.replies.BUILTIN`, so every reply
comes from the one catalogue, and (2) count every 4xx/5xx reply by code.
"""
from __future__ import annotations

import collections
from typing import Any, AnyStr

from aiosmtpd.smtp import SMTP

from smtp_edge import replies
from smtp_edge.metrics import REJECTIONS


class EdgeSMTP(SMTP):
    def __init__(self, handler: Any, *, listener: str, **kwargs: Any) -> None:
        # aiosmtpd keeps command size limits in a class-level dict that every
        # session clears and grows; give each session its own.
        self.command_size_limits = collections.defaultdict(lambda: SMTP.command_size_limit)
        super().__init__(handler, **kwargs)
        self.listener = listener

    async def push(self, status: AnyStr) -> None:
        if isinstance(status, str):
            status = replies.BUILTIN.get(status, status)
            if status[:1] in ("4", "5"):
                code, enhanced = replies.reply_code(status)
                REJECTIONS.labels(self.listener, code, enhanced).inc()
        await super().push(status)
