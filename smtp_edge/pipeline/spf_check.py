"""SPF (RFC 7208) with pyspf, its DNS answered from our asyncio lookups without a thread.

pyspf asks for DNS through its module-level ``DNSLookup``; ours answers from a per-check
table when a check is running (a context variable) and defers to pyspf's own otherwise. A
name not yet in the table is noted and the evaluation stopped; the noted names are then
looked up concurrently (MX targets' addresses fetched with their MX) and the evaluation
run again from the start, until it needs nothing new. SPF evaluation is cheap next to its
lookups, and at most 10 mechanisms may look anything up (plus two void lookups), so the
reruns are few. A lookup that failed for now is pyspf's ``TempError`` (``temperror``).
"""
from __future__ import annotations

import asyncio
import contextvars
from dataclasses import dataclass, field
from typing import Any

import spf  # type: ignore[import-untyped]

from smtp_edge.pipeline.auth_dns import DnsTemporary, Lookups

MAX_ROUNDS = 64
Key = tuple[str, str]


class _Missing(Exception):
    """pyspf asked for a name we have not looked up yet."""


@dataclass
class _Table:
    answers: dict[Key, list[Any] | str] = field(default_factory=dict)   # str: a temporary failure
    missing: set[Key] = field(default_factory=set)

    def answer(self, name: str, qtype: str) -> list[Any]:
        key = (name.lower().rstrip("."), qtype.upper())
        found = self.answers.get(key)
        if found is None:
            self.missing.add(key)
            raise _Missing(key)
        if isinstance(found, str):
            raise spf.TempError(f"DNS {found}")
        return found


_TABLE: contextvars.ContextVar[_Table | None] = contextvars.ContextVar("spf_table", default=None)
_PYSPF_LOOKUP = spf.DNSLookup


def _lookup(name: str, qtype: str, strict: Any = True, timeout: Any = 30) -> list[Any]:
    table = _TABLE.get()
    if table is None:
        return list(_PYSPF_LOOKUP(name, qtype, strict, timeout))
    return table.answer(name, qtype)


spf.DNSLookup = _lookup


@dataclass(frozen=True)
class SpfResult:
    result: str          # pass fail softfail neutral none permerror temperror
    identity: str        # "mailfrom" or "helo": which identity was checked
    domain: str          # that identity's domain
    reason: str = ""


async def _fetch(lookups: Lookups, table: _Table, key: Key) -> None:
    name, qtype = key
    try:
        rdatas = await lookups.records(name, qtype)
    except DnsTemporary as error:
        table.answers[key] = error.reason
        return
    answer: list[Any] = []
    for rdata in rdatas:
        if qtype in ("A", "AAAA"):
            answer.append(((name, qtype), rdata.address))
        elif qtype == "MX":
            answer.append(((name, qtype), (int(rdata.preference), rdata.exchange.to_text(omit_final_dot=True))))
        elif qtype == "PTR":
            answer.append(((name, qtype), rdata.target.to_text(omit_final_dot=True)))
        elif qtype in ("TXT", "SPF"):
            answer.append(((name, qtype), list(rdata.strings)))
    table.answers[key] = answer
    if qtype == "MX":           # the mx mechanism asks for the hosts' addresses next
        hosts = {value[1].lower() for _, value in answer if value[1]}
        await asyncio.gather(*(_fetch(lookups, table, (host, rtype)) for host in hosts for rtype in ("A", "AAAA")
                               if (host, rtype) not in table.answers))


def _evaluate(table: _Table, ip: str, sender: str, helo: str) -> tuple[str, str]:
    token = _TABLE.set(table)
    try:
        result, _code, explanation = spf.query(i=ip, s=sender, h=helo, timeout=60).check()
        return str(result), str(explanation)
    except _Missing:
        return "", ""
    finally:
        _TABLE.reset(token)


async def check_spf(lookups: Lookups, ip: str, mail_from: str, helo: str) -> SpfResult:
    """SPF for the MAIL FROM identity, or HELO's for the null sender (RFC 7208 2.3, 2.4)."""
    sender = "" if mail_from in ("", "<>") else mail_from
    identity = "mailfrom" if sender else "helo"
    domain = (sender.rpartition("@")[2] if sender else helo).lower().rstrip(".")
    if not ip or not domain or domain.startswith("["):
        return SpfResult("none", identity, domain, "no identity to check")
    table = _Table()
    for _ in range(MAX_ROUNDS):
        result, explanation = _evaluate(table, ip, sender, helo)
        if not table.missing:
            return SpfResult(result or "permerror", identity, domain, explanation)
        missing, table.missing = table.missing, set()
        await asyncio.gather(*(_fetch(lookups, table, key) for key in missing))
    return SpfResult("permerror", identity, domain, "too many DNS lookups")
