"""DMARC policy (RFC 7489), pure: the record, the organizational domain, identifier
alignment, and the disposition of one message. No DNS here (``auth`` fetches the records).

- **Organizational domain** (RFC 7489 3.2): the public suffix list's registrable domain
  (``publicsuffixlist``, the list the package ships; an unlisted TLD such as ``.test`` is one
  label, so ``mail.example.test`` -> ``example.test``); a name that is itself a public suffix
  is its own organizational domain.
- **Policy discovery** (6.6.3): the ``_dmarc`` TXT record of the From domain, else of its
  organizational domain; exactly one ``v=DMARC1`` record counts, more than one is none.
  A record found at the organizational domain for a subdomain applies ``sp=`` (else ``p=``).
- **Alignment** (3.1): relaxed compares organizational domains, strict the names themselves;
  SPF's identifier is the MAIL FROM domain (HELO for the null sender), DKIM's each valid d=.
- **pct=** (6.6.4): a failing message is subject to the policy with probability pct/100;
  otherwise one step milder (reject -> quarantine, quarantine -> none).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from publicsuffixlist import PublicSuffixList

POLICIES = ("none", "quarantine", "reject")
_MILDER = {"reject": "quarantine", "quarantine": "none", "none": "none"}
_PSL = PublicSuffixList()


@dataclass(frozen=True)
class DmarcRecord:
    policy: str                     # p=
    subdomain_policy: str | None    # sp=
    pct: int = 100
    adkim: str = "r"                # r relaxed, s strict
    aspf: str = "r"


@dataclass(frozen=True)
class Outcome:
    result: str                     # pass, fail, none (no record)
    policy: str = "none"            # the published policy that applies (p= or sp=)
    disposition: str = "none"       # what to do: none, quarantine, reject (pct applied)
    aligned_domain: str = ""        # the From domain when an aligned identifier passed
    via: str = ""                   # "spf" or "dkim": which aligned identifier passed


def parse_record(text: str) -> DmarcRecord | None:
    """A ``v=DMARC1`` record's tags, or None when ``text`` is not a usable DMARC record.

    An unknown or missing ``p=`` in a record with ``rua=`` is ``p=none`` (6.6.3 step 6);
    without ``rua=`` the record is ignored. Unknown tags are ignored; bad values fall back to
    the defaults."""
    parts = [part.strip() for part in text.split(";")]
    if not parts or parts[0].replace(" ", "") != "v=DMARC1":
        return None
    tags: dict[str, str] = {}
    for part in parts[1:]:
        name, sep, value = part.partition("=")
        if sep:
            tags.setdefault(name.strip().lower(), value.strip().lower())
    policy = tags.get("p", "")
    if policy not in POLICIES:
        if "rua" not in tags:
            return None
        policy = "none"
    subdomain = tags.get("sp")
    pct_text = tags.get("pct", "100")
    pct = int(pct_text) if pct_text.isascii() and pct_text.isdigit() else 100   # "²".isdigit(), int("²") fails
    return DmarcRecord(policy=policy, subdomain_policy=subdomain if subdomain in POLICIES else None,
                       pct=min(pct, 100), adkim="s" if tags.get("adkim") == "s" else "r",
                       aspf="s" if tags.get("aspf") == "s" else "r")


def select_record(texts: Sequence[str]) -> DmarcRecord | None:
    """The one DMARC record among a name's TXT records (none when zero or several)."""
    records = [text for text in texts if text.replace(" ", "").lower().startswith("v=dmarc1")]
    return parse_record(records[0]) if len(records) == 1 else None


@lru_cache(maxsize=65536)
def organizational_domain(domain: str) -> str:
    domain = domain.lower().rstrip(".")
    return _PSL.privatesuffix(domain) or domain


def aligned(identifier: str, from_domain: str, mode: str) -> bool:
    identifier, from_domain = identifier.lower().rstrip("."), from_domain.lower().rstrip(".")
    if not identifier or not from_domain:
        return False
    if mode == "s":
        return identifier == from_domain
    return organizational_domain(identifier) == organizational_domain(from_domain)


def evaluate(from_domain: str, at_from: DmarcRecord | None, at_org: DmarcRecord | None, *,
             spf_domain: str | None, dkim_domains: Sequence[str], sample: float) -> Outcome:
    """The DMARC outcome for ``from_domain``: ``at_from`` is its own record, ``at_org`` its
    organizational domain's (looked at only when it has none); ``spf_domain`` the domain SPF
    passed for (None: SPF did not pass), ``dkim_domains`` the d= of valid signatures;
    ``sample`` in [0, 1) decides pct=."""
    record, policy = at_from, at_from.policy if at_from else "none"
    if record is None and at_org is not None and organizational_domain(from_domain) != from_domain:
        record = at_org
        policy = at_org.subdomain_policy or at_org.policy
    if record is None:
        return Outcome("none")
    for domain in dkim_domains:
        if aligned(domain, from_domain, record.adkim):
            return Outcome("pass", policy, "none", from_domain, "dkim")
    if spf_domain is not None and aligned(spf_domain, from_domain, record.aspf):
        return Outcome("pass", policy, "none", from_domain, "spf")
    disposition = policy if sample * 100 < record.pct else _MILDER[policy]
    return Outcome("fail", policy, disposition)
