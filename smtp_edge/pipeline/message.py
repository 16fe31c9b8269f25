"""The unit the pipeline works on: raw bytes plus envelope and session facts, and the
:class:`~smtp_edge.pipeline.findings.Findings` its checks collect."""
from __future__ import annotations

from dataclasses import dataclass, field
from email.utils import getaddresses
from functools import cached_property

from smtp_edge.model import Account
from smtp_edge.pipeline.findings import Findings, Screening
from tidings_runtime.addresses import AddressError, parse_address
from tidings_runtime.headers import HeaderSection, read_header_section


@dataclass(frozen=True)
class InboundMessage:
    raw: bytes                      # exactly what the client sent (dot-unstuffed)
    mail_from: str                  # "<>" for the null sender
    recipients: tuple[str, ...]     # accepted RCPT TO, in order, no duplicates
    max_size: int
    account: Account | None = None  # the authenticated author (submission only)
    client_ip: str = ""             # the connecting client (session.peer)
    helo: str = ""                  # what it said in HELO/EHLO
    findings: Findings = field(default_factory=Findings, compare=False)

    @cached_property
    def headers(self) -> HeaderSection:
        return read_header_section(self.raw)

    @cached_property
    def from_domains(self) -> tuple[str, ...]:
        """The domains of the ``From:`` addresses (RFC 5322.From, DMARC's identifier), in their
        canonical form, without duplicates; unparsable addresses are left out."""
        values = self.headers.values("from")
        text = values[0].decode("utf-8", errors="replace") if values else ""
        domains: list[str] = []
        for _, address in getaddresses([text]):
            try:
                domain = parse_address(address).domain.lower()
            except AddressError:
                continue
            if domain not in domains:
                domains.append(domain)
        return tuple(domains)

    @property
    def mail_from_domain(self) -> str:
        """The envelope sender's domain ("" for the null sender or a malformed one)."""
        if self.mail_from in ("", "<>"):
            return ""
        try:
            return parse_address(self.mail_from).domain.lower()
        except AddressError:
            return self.mail_from.rpartition("@")[2].lower()

    def screening(self) -> Screening:
        """The findings as ``Mail.Deliver`` takes them (port 2525)."""
        findings = self.findings
        return Screening(screened=True, rules=tuple(findings.rules),
                         authenticated_domain=findings.authenticated_domain, client_ip=self.client_ip,
                         quarantine=findings.quarantine,
                         sender_domain=self.from_domains[0] if self.from_domains else "")
