"""Scored rules for received mail (port 2525) that reject nothing themselves: what is missing
or malformed in the header section, and an optional DNS blocklist lookup of the client.

The router adds these to the recipients' spam scores (`router/spam.py`). A blocklist is
optional (`TIDINGS_DNSBL`, off by default) and fails open: an unanswered lookup is logged
and scores nothing, because a third party's outage must not defer all our mail.
"""
from __future__ import annotations

import asyncio
import ipaddress
import logging
from email.utils import getaddresses, parsedate_to_datetime

import dns.asyncresolver
import dns.exception
import dns.resolver

from smtp_edge.pipeline.message import InboundMessage

log = logging.getLogger(__name__)

MISSING_DATE = ("MISSING_DATE", 1.0)
INVALID_DATE = ("INVALID_DATE", 1.0)
MISSING_MESSAGE_ID = ("MISSING_MESSAGE_ID", 1.0)
MISSING_SUBJECT = ("MISSING_SUBJECT", 0.5)
FROM_NO_ADDRESS = ("FROM_NO_ADDRESS", 2.0)
DNSBL_LISTED = 5.0


def _text(message: InboundMessage, name: str) -> str | None:
    values = message.headers.values(name)
    return values[0].decode("utf-8", errors="replace").strip() if values else None


async def check_header_rules(message: InboundMessage) -> str | None:
    """Score what a legitimate MTA or client always writes (RFC 5322 3.6: Date and From are
    required, Message-ID should be there) and is missing or unreadable here."""
    findings = message.findings
    date = _text(message, "date")
    if date is None:
        findings.add(*MISSING_DATE)
    else:
        try:
            parsedate_to_datetime(date)
        except (TypeError, ValueError, IndexError):
            findings.add(*INVALID_DATE, date[:80])
    if _text(message, "message-id") is None:
        findings.add(*MISSING_MESSAGE_ID)
    if _text(message, "subject") is None:
        findings.add(*MISSING_SUBJECT)
    sender = _text(message, "from")
    if sender is not None and not [a for _, a in getaddresses([sender]) if "@" in a]:
        findings.add(*FROM_NO_ADDRESS, sender[:80])
    return None


def query_name(ip: str, zone: str) -> str | None:
    """The blocklist name for `ip` in `zone` (reversed octets, or nibbles for IPv6)."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return None
    return f"{address.reverse_pointer.rsplit('.', 2)[0]}.{zone}"


class DnsBlocklists:
    """The check: the client's address looked up in every zone at once; a listing scores."""

    def __init__(self, resolver: dns.asyncresolver.Resolver, zones: tuple[str, ...],
                 lifetime: float | None = None) -> None:
        self._resolver = resolver
        self.zones = zones
        self._lifetime = lifetime      # per lookup (None: the resolver's)

    async def __call__(self, message: InboundMessage) -> str | None:
        if message.client_ip:
            listed = await asyncio.gather(*(self._listed(message.client_ip, zone) for zone in self.zones))
            for zone, answer in zip(self.zones, listed):
                if answer:
                    message.findings.add("DNSBL_LISTED", DNSBL_LISTED, f"{zone}: {answer}")
        return None

    async def _listed(self, ip: str, zone: str) -> str:
        name = query_name(ip, zone)
        if name is None:
            return ""
        try:
            answer = await self._resolver.resolve(name, "A", lifetime=self._lifetime)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return ""
        except dns.exception.DNSException as exc:
            log.warning("blocklist %s did not answer for %s: %s (scored nothing)", zone, ip, exc)
            return ""
        return ",".join(sorted(r.to_text() for r in answer))
