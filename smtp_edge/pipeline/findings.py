"""What the checks found about a received message, besides a rejection.

A check adds scored :class:`Rule`s and facts (the domain that authenticated, DMARC
quarantine) to the message's :class:`Findings`, asks for header fields to be prepended to
what is delivered (``Authentication-Results:``) and for received ones to be dropped (one
that forges our authserv-id). :class:`Screening` is the plain result the handler hands to
``Mail.Deliver`` (``tidings.v1.Screening``; :mod:`smtp_edge.mail_api` converts it).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from tidings_runtime.headers import remove_fields

# (lower-case field name, unfolded value) -> drop it
FieldFilter = Callable[[str, bytes], bool]


@dataclass(frozen=True)
class Rule:
    """A scored rule (``tidings.v1.SpamRule``): positive for spammy, negative for trustworthy."""

    name: str
    score: float
    detail: str = ""


@dataclass(frozen=True)
class Screening:
    screened: bool
    rules: tuple[Rule, ...] = ()
    authenticated_domain: str = ""
    client_ip: str = ""
    quarantine: bool = False
    sender_domain: str = ""


@dataclass
class Findings:
    """The mutable collector a message carries through its checks."""

    rules: list[Rule] = field(default_factory=list)
    headers: list[bytes] = field(default_factory=list)   # each a whole field, CRLF-ended, in order
    drop: list[FieldFilter] = field(default_factory=list)
    authenticated_domain: str = ""
    quarantine: bool = False

    def add(self, name: str, score: float, detail: str = "") -> None:
        self.rules.append(Rule(name, score, detail))

    def apply(self, raw: bytes) -> bytes:
        """``raw`` as delivered: the dropped fields removed, the new fields in front."""
        for keep_not in self.drop:
            raw = remove_fields(raw, keep_not)
        return b"".join(self.headers) + raw
