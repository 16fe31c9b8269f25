"""Sender authentication on port 2525: SPF, DKIM and DMARC, one check.

:class:`SenderAuth` is a pipeline check. Its DNS work runs concurrently: the SPF
evaluation (:mod:`.spf_check`), the DKIM keys and verification (:mod:`.dkim_check`) and
the DMARC records of each From domain and its organizational domain; then the DMARC
outcome (:mod:`.dmarc`) decides:

- a DNS timeout or SERVFAIL in any of them: ``451 4.7.0`` (never a pass);
- DMARC ``p=reject`` failing (after pct=): ``550 5.7.1``;
- ``p=quarantine`` failing: delivered with ``quarantine`` set (the router files it to Spam);
- otherwise scored rules (:data:`SCORES`), and ``authenticated_domain``: the From domain when
  DMARC passed, else the first valid DKIM d=, else the SPF-passing MAIL FROM domain.

Accepted mail gets ``Authentication-Results: <authserv-id>; spf=... dkim=... dmarc=...``
(RFC 8601) in front; any that arrived claiming our authserv-id is removed (section 5),
other hosts' stay.
"""
from __future__ import annotations

import asyncio
import random
import re
from collections.abc import Callable, Sequence
from typing import cast

import dns.asyncresolver

from smtp_edge import replies
from smtp_edge.pipeline import dmarc
from smtp_edge.pipeline.auth_dns import DnsTemporary, Lookups
from smtp_edge.pipeline.dkim_check import DkimResult, check_dkim
from smtp_edge.pipeline.message import InboundMessage
from smtp_edge.pipeline.spf_check import SpfResult, check_spf

MAX_FROM_DOMAINS = 5
Records = tuple[dmarc.DmarcRecord | None, dmarc.DmarcRecord | None]   # at the From domain, at its org domain

# rule name -> score (positive: spammy); SPF_NONE, DKIM_NONE and DMARC_NONE score nothing
SCORES: dict[str, float] = {
    "SPF_PASS": -0.5, "SPF_FAIL": 2.0, "SPF_SOFTFAIL": 1.0, "SPF_NEUTRAL": 0.0, "SPF_PERMERROR": 1.0,
    "DKIM_VALID": -0.5, "DKIM_INVALID": 1.5,
    "DMARC_PASS": -1.0, "DMARC_FAIL": 3.0,
    "AUTH_NONE": 0.5,
}
_SPF_RULES = {"pass": "SPF_PASS", "fail": "SPF_FAIL", "softfail": "SPF_SOFTFAIL", "neutral": "SPF_NEUTRAL",
              "permerror": "SPF_PERMERROR", "ambiguous": "SPF_PERMERROR"}
_AUTHSERV = re.compile(rb"^\s*(?:\([^)]*\)\s*)*([^\s;()]+)")
_SAFE = re.compile(r"[^A-Za-z0-9.\-_@+=/]")


def authserv_id_of(value: bytes) -> str:
    """The authserv-id an ``Authentication-Results`` value names (RFC 8601 2.2), lower-cased."""
    match = _AUTHSERV.match(value)
    return match.group(1).decode("ascii", "replace").lower() if match else ""


def claims(authserv_id: str) -> Callable[[str, bytes], bool]:
    """A header filter: the ``Authentication-Results`` fields naming ``authserv_id``."""
    ours = authserv_id.lower()
    return lambda name, value: name == "authentication-results" and authserv_id_of(value) == ours


def results_header(authserv_id: str, spf: SpfResult, signatures: Sequence[DkimResult],
                   outcomes: Sequence[tuple[str, dmarc.Outcome]]) -> bytes:
    """``Authentication-Results:`` for one message, folded one method a line."""
    def clean(text: str) -> str:
        return _SAFE.sub("", text)[:255] or "unknown"

    prop = "smtp.mailfrom" if spf.identity == "mailfrom" else "smtp.helo"
    parts = [f"spf={spf.result} {prop}={clean(spf.domain)}"]
    parts += [f"dkim={s.result} header.d={clean(s.domain)} header.s={clean(s.selector)}"
              + (f" header.b={clean(s.b)}" if s.b else "") for s in signatures] or ["dkim=none"]
    for domain, outcome in outcomes:
        comment = f" (p={outcome.policy} dis={outcome.disposition})" if outcome.result != "none" else ""
        parts.append(f"dmarc={outcome.result}{comment} header.from={clean(domain)}")
    if not outcomes:
        parts.append("dmarc=none")
    return (f"Authentication-Results: {clean(authserv_id)};\r\n\t" + ";\r\n\t".join(parts) + "\r\n").encode("ascii")


class SenderAuth:
    """The check: ``await SenderAuth(resolver, authserv_id)(message)`` -> reply line or None."""

    def __init__(self, resolver: dns.asyncresolver.Resolver, authserv_id: str,
                 deadline: float = 30.0, sample: Callable[[], float] = random.random) -> None:
        self._lookups = Lookups(resolver)
        self._deadline = deadline
        self.authserv_id = authserv_id.lower()
        self._sample = sample

    async def __call__(self, message: InboundMessage) -> str | None:
        domains = message.from_domains[:MAX_FROM_DOMAINS]
        lookups = self._lookups
        try:
            found = await asyncio.wait_for(asyncio.gather(
                check_spf(lookups, message.client_ip, message.mail_from, message.helo),
                check_dkim(lookups, message.raw, message.headers.values("dkim-signature")),
                *(self._dmarc_records(domain) for domain in domains), return_exceptions=True), self._deadline)
        except TimeoutError:
            return replies.auth_temporary("", "DNS lookups took too long")
        for result in found:
            if isinstance(result, DnsTemporary):
                return replies.auth_temporary(result.name, result.reason)
            if isinstance(result, BaseException):
                raise result
        spf, signatures, records = cast(SpfResult, found[0]), cast(list[DkimResult], found[1]), cast(list[Records], found[2:])
        if spf.result == "temperror":
            return replies.auth_temporary(spf.domain, "SPF lookup failed")
        spf_domain = (spf.domain or None) if spf.result == "pass" else None
        valid = [s.domain for s in signatures if s.result == "pass"]
        outcomes = [(domain, dmarc.evaluate(domain, at_from, at_org, spf_domain=spf_domain, dkim_domains=valid,
                                            sample=self._sample()))
                    for domain, (at_from, at_org) in zip(domains, records)]
        for domain, outcome in outcomes:
            if outcome.disposition == "reject":
                return replies.dmarc_reject(domain)
        self._record(message, spf, signatures, outcomes)
        return None

    async def _dmarc_records(self, domain: str) -> Records:
        """The From domain's record and its organizational domain's, looked up together."""
        organizational = dmarc.organizational_domain(domain)
        names = [f"_dmarc.{domain}"] + ([f"_dmarc.{organizational}"] if organizational != domain else [])
        answers = await asyncio.gather(*(self._lookups.txt(name) for name in names))
        records = [dmarc.select_record([text.decode("utf-8", "replace") for text in texts]) for texts in answers]
        return records[0], records[1] if len(records) > 1 else None

    def _record(self, message: InboundMessage, spf: SpfResult, signatures: Sequence[DkimResult],
                outcomes: Sequence[tuple[str, dmarc.Outcome]]) -> None:
        findings = message.findings
        rule = _SPF_RULES.get(spf.result)
        if rule is not None:
            findings.add(rule, SCORES[rule], f"{spf.identity}={spf.domain}")
        valid = [s for s in signatures if s.result == "pass"]
        if valid:
            findings.add("DKIM_VALID", SCORES["DKIM_VALID"], ",".join(s.domain for s in valid))
        elif signatures:
            findings.add("DKIM_INVALID", SCORES["DKIM_INVALID"], ",".join(s.domain or "?" for s in signatures))
        for domain, outcome in outcomes:
            if outcome.result == "pass":
                findings.add("DMARC_PASS", SCORES["DMARC_PASS"], domain)
            elif outcome.result == "fail":
                findings.add("DMARC_FAIL", SCORES["DMARC_FAIL"], f"{domain} p={outcome.policy}")
                findings.quarantine = findings.quarantine or outcome.disposition == "quarantine"
        if not valid and spf.result != "pass":
            findings.add("AUTH_NONE", SCORES["AUTH_NONE"])
        passed = [domain for domain, outcome in outcomes if outcome.result == "pass"]
        findings.authenticated_domain = (passed[0] if passed else valid[0].domain if valid
                                         else spf.domain if spf.result == "pass" else "")
        findings.drop.append(claims(self.authserv_id))
        findings.headers.append(results_header(self.authserv_id, spf, signatures, outcomes))
