"""Where a domain's mail goes (RFC 5321 section 5): its MX hosts by preference (equal
preferences shuffled), or the domain itself as an implicit MX when it has no MX records;
then each host's A and AAAA addresses, looked up when that host's turn comes.

A null MX (`0 .`, RFC 7505) and a domain that does not exist are permanent failures;
SERVFAIL and timeouts are temporary. Both are `DnsError`s carrying the `Reply` to record.
The resolvers come from `TIDINGS_DNS` (`IP:PORT[,IP:PORT]`), else the system's, made by
`tidings_runtime.dns.make_resolver` (shared with the SMTP edge's sender authentication).
"""
from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from dataclasses import dataclass

import dns.asyncresolver
import dns.exception
import dns.rdatatype
import dns.resolver

from smtp_edge.outbound import reply
from smtp_edge.outbound.reply import Reply
from tidings_runtime.dns import make_resolver, parse_resolvers

__all__ = ["DnsError", "MxHost", "MxResolver", "is_null_mx", "make_resolver", "order_mx", "parse_resolvers"]


class DnsError(Exception):
    """A lookup that gives no destination; `reply` says why (temporary or permanent)."""

    def __init__(self, failure: Reply) -> None:
        super().__init__(failure.text())
        self.reply = failure


@dataclass(frozen=True)
class MxHost:
    name: str               # without the trailing dot
    preference: int
    implicit: bool = False  # the domain itself: it has no MX records


def order_mx(records: Sequence[tuple[int, str]], rng: random.Random | None = None) -> list[MxHost]:
    """MX (preference, exchange) pairs as hosts to try in order: lowest preference first,
    equal preferences in random order (RFC 5321 5.1), null MX targets left out."""
    shuffle = (rng or random).random
    hosts = [MxHost(name.rstrip(".").lower(), preference) for preference, name in records if name.rstrip(".")]
    keyed = sorted(((host.preference, shuffle(), host) for host in hosts), key=lambda row: (row[0], row[1]))
    return [host for _, _, host in keyed]


def is_null_mx(records: Sequence[tuple[int, str]]) -> bool:
    """RFC 7505: the domain publishes `0 .` (and, as it must, no other MX)."""
    return bool(records) and all(name.rstrip(".") == "" for _, name in records)


class MxResolver:
    """MX and address lookups for delivery, mapping resolver outcomes to `DnsError`s once."""

    def __init__(self, resolver: dns.asyncresolver.Resolver) -> None:
        self._resolver = resolver

    async def hosts(self, domain: str) -> list[MxHost]:
        """The hosts to try for `domain`, in order; DnsError when there is none."""
        try:
            answer = await self._resolver.resolve(domain, "MX")
        except dns.resolver.NoAnswer:
            return [MxHost(domain, 0, implicit=True)]
        except dns.resolver.NXDOMAIN:
            raise DnsError(reply.dns_not_found(domain, "domain does not exist")) from None
        except (dns.resolver.NoNameservers, dns.exception.Timeout) as exc:
            raise DnsError(reply.dns_temporary(domain, _short(exc))) from None
        records = [(int(r.preference), r.exchange.to_text(omit_final_dot=True)) for r in answer]
        if is_null_mx(records):
            raise DnsError(reply.null_mx(domain))
        return order_mx(records)

    async def addresses(self, host: MxHost) -> list[str]:
        """`host`'s IPv4 then IPv6 addresses; DnsError when it has none.

        For an implicit MX a name without addresses is permanent (the domain takes no
        mail); for a listed MX host it is temporary, so the next host is tried."""
        v4, v6 = await asyncio.gather(self._lookup(host.name, "A"), self._lookup(host.name, "AAAA"),
                                      return_exceptions=True)
        found = [a for result in (v4, v6) if isinstance(result, list) for a in result]
        if found:
            return found
        errors = [result for result in (v4, v6) if isinstance(result, BaseException)]
        temporary = [e for e in errors if isinstance(e, DnsError) and e.reply.code < 500]
        if temporary:
            raise temporary[0]
        others = [e for e in errors if not isinstance(e, DnsError)]
        if others:
            raise others[0]
        if host.implicit:
            raise DnsError(reply.dns_not_found(host.name, "no MX and no address records"))
        raise DnsError(reply.dns_temporary(host.name, "MX host has no address records"))

    async def _lookup(self, name: str, rdtype: str) -> list[str]:
        try:
            answer = await self._resolver.resolve(name, rdtype)
        except (dns.resolver.NoAnswer, dns.resolver.NXDOMAIN):
            return []
        except (dns.resolver.NoNameservers, dns.exception.Timeout) as exc:
            raise DnsError(reply.dns_temporary(name, _short(exc))) from None
        return [r.address for r in answer]


def _short(exc: Exception) -> str:
    if isinstance(exc, dns.exception.Timeout):
        return "timed out"
    if isinstance(exc, dns.resolver.NoNameservers):
        return "server failure (SERVFAIL)"
    return type(exc).__name__
