"""One attempt's answer for a recipient: the far end's SMTP reply, or the reason there was
none (DNS, connection), in the same shape, with its verdict and RFC 3463 status.

Reasons we make up ourselves carry an SMTP-like code (so 4xx/5xx means the same
everywhere) but no `remote_mta`; `text()` is what `QueueRecipient.last_reply` stores,
`"550 5.1.1 no such user"`, and `status_of` reads the status back from it."""
from __future__ import annotations

import re
from dataclasses import dataclass

from smtp_edge.outbound.retry import Verdict

_ENHANCED = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})(?=\s|$)")
_STORED = re.compile(r"^(\d{3})(?:[ -]|$)\s*(.*)$", re.DOTALL)


@dataclass(frozen=True)
class Reply:
    code: int                   # 2xx, 4xx, 5xx
    message: str                # the reply's text, enhanced code first when there is one
    remote_mta: str = ""        # the host that said it; "" for our own reasons

    @property
    def verdict(self) -> Verdict:
        if 200 <= self.code < 300:
            return Verdict.DELIVERED
        return Verdict.PERMANENT if self.code >= 500 else Verdict.TEMPORARY

    @property
    def status(self) -> str:
        """The RFC 3463 status: the reply's own enhanced code, else its class's x.0.0."""
        return status_of(self.text())

    def text(self) -> str:
        """The reply on one line, as stored in `last_reply` and quoted in a DSN."""
        return f"{self.code} {' '.join(self.message.split())}".strip()


def status_of(stored: str) -> str:
    """The enhanced status in a stored reply (`550 5.1.1 ...` or `4.4.7 ...`), else the
    class of its code (`550 ...` -> 5.0.0), else 5.0.0 (a failure with no reply)."""
    match = _STORED.match(stored)
    rest = match.group(2) if match else stored
    enhanced = _ENHANCED.match(rest)
    if enhanced:
        return ".".join(enhanced.groups())
    if match and match.group(1)[0] in "245":
        return f"{match.group(1)[0]}.0.0"
    return "5.0.0"


def is_smtp_reply(stored: str) -> bool:
    """Whether a stored reply starts with a three-digit SMTP code."""
    return bool(_STORED.match(stored))


def local(code: int, status: str, reason: str) -> Reply:
    """A reason of our own (no remote MTA said it)."""
    return Reply(code, f"{status} {reason}")


# Our own reasons, by RFC 3463 / RFC 7505 status.
def dns_not_found(name: str, detail: str) -> Reply:
    return local(550, "5.1.2", f"Host or domain name not found: {name}: {detail}")


def null_mx(domain: str) -> Reply:
    return local(556, "5.1.10", f"Recipient address has null MX: {domain} accepts no mail (RFC 7505)")


def dns_temporary(name: str, detail: str) -> Reply:
    return local(451, "4.4.3", f"Name service error for {name}: {detail}")


def no_route(host: str, detail: str) -> Reply:
    return local(451, "4.4.1", f"connect to {host}: {detail}")


def connection_lost(host: str, detail: str) -> Reply:
    return local(451, "4.4.2", f"lost connection with {host}: {detail}")


def too_big(size: int, limit: int) -> Reply:
    return local(552, "5.3.4", f"message of {size} bytes exceeds the far end's size limit of {limit}")


def needs_smtputf8(host: str) -> Reply:
    return local(553, "5.6.7", f"{host} does not offer SMTPUTF8, which the addresses need")


def expired(lifetime: str, last: str) -> str:
    """The stored reply of a recipient whose queue lifetime ran out."""
    return f"4.4.7 delivery time expired after {lifetime}" + (f"; last reply: {last}" if last else "")
