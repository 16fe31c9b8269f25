"""DMARC policy logic (smtp_edge/pipeline/dmarc.py), the Authentication-Results helpers and the
header filter, without DNS."""
from __future__ import annotations

import pytest

from smtp_edge.pipeline import dmarc
from smtp_edge.pipeline.auth import authserv_id_of, claims
from smtp_edge.pipeline.dmarc import DmarcRecord, evaluate, parse_record
from tidings_runtime.headers import remove_fields

REJECT = DmarcRecord("reject", None)


def test_record_tags() -> None:
    assert parse_record("v=DMARC1; p=Quarantine; sp=reject; pct=20; adkim=s; aspf=s; rua=mailto:x@y") == \
        DmarcRecord("quarantine", "reject", 20, "s", "s")
    assert parse_record("v=DMARC1;p=none") == DmarcRecord("none", None)
    assert parse_record("v=DMARC1; p=bogus; rua=mailto:a@b") == DmarcRecord("none", None)   # 6.6.3 step 6
    assert parse_record("v=DMARC1; p=bogus") is None
    assert parse_record("v=spf1 -all") is None
    assert dmarc.select_record(["v=DMARC1; p=reject", "v=DMARC1; p=none"]) is None       # two records: none
    assert dmarc.select_record(["unrelated", "v=DMARC1; p=reject"]) == REJECT


@pytest.mark.parametrize("domain, organizational", [
    ("mail.example.test", "example.test"), ("a.b.example.co.uk", "example.co.uk"), ("example.org", "example.org"),
    ("co.uk", "co.uk"),
])
def test_organizational_domain_is_the_public_suffix_lists(domain: str, organizational: str) -> None:
    assert dmarc.organizational_domain(domain) == organizational


@pytest.mark.parametrize("identifier, mode, expected", [
    ("example.test", "r", True), ("bounce.example.test", "r", True), ("bounce.example.test", "s", False),
    ("example.test", "s", True), ("other.test", "r", False), ("example.co.uk", "r", False),
])
def test_alignment(identifier: str, mode: str, expected: bool) -> None:
    from_domain = "example.test" if not identifier.endswith("co.uk") else "other.co.uk"
    assert dmarc.aligned(identifier, from_domain, mode) is expected


def test_pass_needs_an_aligned_identifier() -> None:
    spf_only = evaluate("example.test", REJECT, None, spf_domain="bounce.example.test", dkim_domains=[], sample=0.5)
    assert (spf_only.result, spf_only.via, spf_only.aligned_domain) == ("pass", "spf", "example.test")
    strict = DmarcRecord("reject", None, aspf="s")
    assert evaluate("example.test", strict, None, spf_domain="bounce.example.test", dkim_domains=[],
                    sample=0.5).disposition == "reject"
    dkim = evaluate("example.test", strict, None, spf_domain=None, dkim_domains=["other.test", "example.test"],
                    sample=0.5)
    assert (dkim.result, dkim.via) == ("pass", "dkim")
    unaligned = evaluate("example.test", REJECT, None, spf_domain="other.test", dkim_domains=["other.test"], sample=0)
    assert (unaligned.result, unaligned.disposition) == ("fail", "reject")


def test_no_record_is_none() -> None:
    assert evaluate("example.test", None, None, spf_domain=None, dkim_domains=[], sample=0).result == "none"


def test_subdomain_uses_the_organizational_record_and_sp() -> None:
    org = DmarcRecord("reject", "quarantine")
    assert evaluate("mail.example.test", None, org, spf_domain=None, dkim_domains=[], sample=0).disposition == "quarantine"
    assert evaluate("mail.example.test", None, DmarcRecord("reject", None), spf_domain=None, dkim_domains=[],
                    sample=0).disposition == "reject"
    own = DmarcRecord("none", None)      # the subdomain's own record wins over the org's
    assert evaluate("mail.example.test", own, org, spf_domain=None, dkim_domains=[], sample=0).disposition == "none"


def test_pct_samples_else_one_step_milder() -> None:
    half = DmarcRecord("reject", None, pct=50)
    assert evaluate("example.test", half, None, spf_domain=None, dkim_domains=[], sample=0.49).disposition == "reject"
    assert evaluate("example.test", half, None, spf_domain=None, dkim_domains=[], sample=0.5).disposition == "quarantine"
    zero = DmarcRecord("quarantine", None, pct=0)
    assert evaluate("example.test", zero, None, spf_domain=None, dkim_domains=[], sample=0).disposition == "none"


def test_authserv_id_and_forged_field_removal() -> None:
    assert authserv_id_of(b"(c) MX.Example.Test 1; spf=pass") == "mx.example.test"
    assert authserv_id_of(b"mx.example.test;spf=pass") == "mx.example.test"
    raw = (b"Received: x\r\nAuthentication-Results: mx.example.test;\r\n spf=pass\r\n"
           b"Authentication-Results: mx.example.test.evil; spf=pass\r\nSubject: s\r\n\r\n"
           b"Authentication-Results: mx.example.test; in the body\r\n")
    assert remove_fields(raw, claims("mx.example.test")) == (
        b"Received: x\r\nAuthentication-Results: mx.example.test.evil; spf=pass\r\nSubject: s\r\n\r\n"
        b"Authentication-Results: mx.example.test; in the body\r\n")
    assert remove_fields(raw, claims("other.test")) is raw
