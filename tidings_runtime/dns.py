"""The one resolver factory: dnspython's asyncio resolver on the servers of `TIDINGS_DNS`
(`IP:PORT[,IP:PORT]`, an IPv6 address in brackets), else on the system's (/etc/resolv.conf),
with a cache that keeps each answer for its records' TTL (dnspython's `LRUCache`: an answer
expires at its smallest TTL; negative answers for their SOA minimum).

Used by the delivery worker (MX and address lookups) and by the SMTP edge's sender
authentication (SPF, DKIM keys, DMARC policies). What a lookup's failure means is the
caller's: both treat SERVFAIL and timeouts as temporary.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

import dns.asyncresolver
import dns.inet
import dns.nameserver
import dns.resolver
from pydantic import AfterValidator

DNS_TIMEOUT_S = 5.0        # per query to one server
DNS_LIFETIME_S = 15.0      # per lookup, across servers and retries
CACHE_ENTRIES = 50_000


def parse_resolvers(text: str) -> list[tuple[str, int]]:
    """`IP:PORT[,IP:PORT]` (an IPv6 address in brackets) as (ip, port) pairs; ValueError if malformed."""
    servers = []
    for entry in (part.strip() for part in text.split(",")):
        host, sep, port = entry.rpartition(":")
        host = host.removeprefix("[").removesuffix("]")
        if not sep or not host or not port.isdigit() or not 0 < int(port) <= 65535:
            raise ValueError(f"{entry!r} is not IP:PORT")
        dns.inet.af_for_address(host)   # ValueError unless an IP address
        servers.append((host, int(port)))
    if not servers:
        raise ValueError(f"{text!r} names no resolver")
    return servers


def valid_resolvers(value: str | None) -> str | None:
    """A settings validator: `value` if it parses (empty: None, the system's), else ValueError."""
    if value:
        parse_resolvers(value)
    return value or None


# A setting naming resolvers: checked at start, kept as written (None: the system's).
Resolvers = Annotated[str | None, AfterValidator(valid_resolvers)]


def make_resolver(servers: Sequence[tuple[str, int]] | None, *, timeout: float = DNS_TIMEOUT_S,
                  lifetime: float = DNS_LIFETIME_S, cache_entries: int = CACHE_ENTRIES) -> dns.asyncresolver.Resolver:
    """An asyncio resolver on `servers`, or on the system's when None, caching answers for their TTL."""
    resolver = dns.asyncresolver.Resolver(configure=servers is None)
    if servers is not None:
        resolver.nameservers = [dns.nameserver.Do53Nameserver(ip, port) for ip, port in servers]
    resolver.timeout = timeout
    resolver.lifetime = max(lifetime, timeout)
    resolver.cache = dns.resolver.LRUCache(cache_entries)
    return resolver
