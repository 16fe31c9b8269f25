"""The DNS lookups of sender authentication, on the edge's asyncio resolver
(:func:`tidings_runtime.dns.make_resolver`: ``TIDINGS_DNS``, a TTL cache).

A name that does not exist or has no records of the type is an empty answer; a timeout or
SERVFAIL (dnspython's ``NoNameservers``) is :class:`DnsTemporary`, which the check turns
into ``451 4.7.0``: a lookup that could not be made never counts as a pass or as "no record".
"""
from __future__ import annotations

from typing import Any

import dns.asyncresolver
import dns.exception
import dns.resolver


class DnsTemporary(Exception):
    """A lookup failed for now (timeout, SERVFAIL); ``reason`` is safe to show."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"{name}: {reason}")
        self.name = name
        self.reason = reason


class Lookups:
    def __init__(self, resolver: dns.asyncresolver.Resolver) -> None:
        self._resolver = resolver

    async def records(self, name: str, rdtype: str) -> list[Any]:
        """The rdatas of ``name``/``rdtype`` (CNAMEs followed); [] when there are none."""
        try:
            answer = await self._resolver.resolve(name, rdtype, raise_on_no_answer=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        except dns.exception.Timeout:
            raise DnsTemporary(name, "DNS timed out") from None
        except dns.resolver.NoNameservers:
            raise DnsTemporary(name, "DNS server failure") from None
        except dns.exception.DNSException:      # a name that cannot be asked (empty or long label)
            return []
        return list(answer.rrset) if answer.rrset is not None else []

    async def txt(self, name: str) -> list[bytes]:
        """Each TXT record of ``name`` with its character-strings joined."""
        return [b"".join(rdata.strings) for rdata in await self.records(name, "TXT")]
