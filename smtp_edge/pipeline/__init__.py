"""What happens to a received message between the end of DATA and delivery.

- ``message``  :class:`InboundMessage`, the message and its envelope.
- ``headers``  a small, lenient reader of the header section (bytes in, bytes out).
- ``checks``   the checks: each an async callable returning ``None`` (pass) or
               a reply line from :mod:`smtp_edge.replies` (reject).
- ``findings`` what checks add besides a rejection: scored rules, facts (authenticated
               domain, DMARC quarantine), header fields to prepend or drop; the
               ``Screening`` handed to ``Mail.Deliver``.
- ``auth``     sender authentication (port 2525): SPF (``spf_check``), DKIM
               (``dkim_check``), DMARC (``dmarc``, pure), their lookups (``auth_dns``).
- ``trace``    the ``Received:`` header prepended before delivery.

A check is ``async (InboundMessage) -> reply | None``: a reply rejects; anything else it
found goes on ``message.findings``. Checks run in list order, the cheap ones first; one
check may do its own work concurrently (sender authentication runs its SPF, DKIM and
DMARC lookups together).
"""
from __future__ import annotations

from smtp_edge.pipeline.checks import Check, check_from_owned, check_headers, check_size
from smtp_edge.pipeline.content import check_gtube
from smtp_edge.pipeline.findings import Findings, Rule, Screening
from smtp_edge.pipeline.message import InboundMessage
from smtp_edge.pipeline.rspamd import check_rspamd
from smtp_edge.pipeline.rules import check_header_rules
from smtp_edge.pipeline.virus import check_virus

# Port 2525, in memory before any network work: size, header sanity, GTUBE (a byte search),
# the scored header rules.
CHEAP: tuple[Check, ...] = (check_size, check_headers, check_gtube, check_header_rules)
# Then sender authentication (``inbound``), then the scanners and classifiers: the virus
# scan (clamd, both ports), rspamd (when TIDINGS_RSPAMD is set).
SCANS: tuple[Check, ...] = (check_virus, check_rspamd)
INBOUND: tuple[Check, ...] = (*CHEAP, *SCANS)   # without sender authentication


def inbound(sender_auth: Check | None, blocklists: Check | None = None) -> tuple[Check, ...]:
    """Port 2525's checks in order: the cheap ones, then the DNS work (sender authentication,
    blocklists), then the scans."""
    dns_checks = tuple(check for check in (sender_auth, blocklists) if check is not None)
    return (*CHEAP, *dns_checks, *SCANS)


SUBMISSION: tuple[Check, ...] = (check_size, check_headers, check_from_owned, check_virus)


async def screen(message: InboundMessage, checks: tuple[Check, ...]) -> str | None:
    """Run ``checks`` in order; the first rejection's reply line, or ``None``."""
    for check in checks:
        reply = await check(message)
        if reply is not None:
            return reply
    return None


__all__ = ["CHEAP", "INBOUND", "SCANS", "SUBMISSION", "Check", "Findings", "InboundMessage", "Rule", "Screening",
           "inbound", "screen"]
