"""The unit the pipeline works on: raw bytes plus envelope and session facts."""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from smtp_edge.model import Account
from smtp_edge.pipeline.headers import HeaderSection, read_header_section


@dataclass(frozen=True)
class InboundMessage:
    raw: bytes                      # exactly what the client sent (dot-unstuffed)
    mail_from: str                  # "<>" for the null sender
    recipients: tuple[str, ...]     # accepted RCPT TO, in order, no duplicates
    max_size: int
    account: Account | None = None  # the authenticated author (submission only)

    @cached_property
    def headers(self) -> HeaderSection:
        return read_header_section(self.raw)
