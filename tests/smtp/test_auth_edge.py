"""Sender authentication on port 2525, over real sockets: the edge (SmtpEdge) with its checks on,
a dnslib DNS server on loopback (tests/mailnet.py) serving SPF, DKIM keys and DMARC records,
and the fake router (tests/fake_mail.py) recording what `Mail.Deliver` receives."""
from __future__ import annotations

import base64
import smtplib
import time
from collections.abc import Iterator
from email.parser import BytesHeaderParser

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from dnslib import A

from tests.fake_mail import FakeMail
from tests.mailnet import Zone, serving, silent_dns
from tests.smtp.conftest import EdgeFactory
from tidings.v1 import mail_pb2

RCPT = "alice@example.test"
AUTHSERV = "mx.example.test"      # start_edge's hostname, the default authserv-id
KEY = rsa.generate_private_key(public_exponent=65537, key_size=1024)
KEY_PEM = KEY.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
KEY_RECORD = "v=DKIM1; k=rsa; p=" + base64.b64encode(KEY.public_key().public_bytes(
    serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).decode()


@pytest.fixture(scope="module")
def zone() -> Iterator[Zone]:
    zone = Zone()
    zone.spf("spf-pass.test", "v=spf1 ip4:127.0.0.0/8 -all")
    zone.spf("spf-fail.test", "v=spf1 ip4:192.0.2.0/24 -all")
    zone.spf("spf-soft.test", "v=spf1 ip4:192.0.2.0/24 ~all")
    zone.add("spf-none.test", "A", A("192.0.2.9"))     # exists, publishes no SPF
    zone.spf("mx-spf.test", "v=spf1 mx include:spf-pass.test -all")
    zone.mx("mx-spf.test", (10, "mx.mx-spf.test", "127.0.0.1"))
    zone.txt("sel._domainkey.signed.test", KEY_RECORD)
    zone.spf("signed.test", "v=spf1 -all")
    zone.dmarc("signed.test", "v=DMARC1; p=reject")
    zone.dmarc("spf-pass.test", "v=DMARC1; p=reject; aspf=r")
    zone.dmarc("reject.test", "v=DMARC1; p=reject")
    zone.dmarc("quarantine.test", "v=DMARC1; p=quarantine")
    zone.dmarc("monitor.test", "v=DMARC1; p=none")
    zone.broken.update({"servfail.test", "_dmarc.dmarc-servfail.test"})
    with serving(zone):
        yield zone


@pytest.fixture
def auth_edge(start_edge: EdgeFactory, zone: Zone) -> int:
    return start_edge(auth_checks=True, dns=zone.address, dns_timeout=1.0).mx_port


def message(sender: str, *, extra: bytes = b"", body: bytes = b"Hello Alice\r\n") -> bytes:
    return (extra + f"From: <{sender}>\r\nTo: <{RCPT}>\r\nSubject: auth test\r\n"
            f"Message-ID: <{time.monotonic_ns()}@test>\r\n\r\n".encode() + body)


def signed(sender: str, body: bytes = b"Hello Alice\r\n") -> bytes:
    raw = message(sender, body=body)
    return dkim.sign(raw, b"sel", b"signed.test", KEY_PEM, include_headers=[b"from", b"to", b"subject"]) + raw


def send(port: int, raw: bytes, mail_from: str) -> tuple[int, str]:
    """The DATA reply (code, text) for one transaction from 127.0.0.1."""
    with smtplib.SMTP("127.0.0.1", port, local_hostname="client.test") as client:
        client.ehlo()
        client.mail(mail_from)
        assert client.rcpt(RCPT)[0] == 250
        code, text = client.data(raw)
        return code, text.decode()


def delivered(fake: FakeMail) -> mail_pb2.DeliverRequest:
    assert len(fake.delivered) == 1, fake.delivered
    return fake.delivered[0]


def results(request: mail_pb2.DeliverRequest) -> list[str]:
    """The Authentication-Results fields as stored, top first, unfolded."""
    headers = BytesHeaderParser().parsebytes(request.raw)
    return [" ".join(str(value).split()) for value in headers.get_all("Authentication-Results") or []]


def rules(request: mail_pb2.DeliverRequest) -> dict[str, float]:
    return {rule.name: rule.score for rule in request.screening.rules}


@pytest.mark.parametrize("sender, spf, rule", [
    ("bob@spf-pass.test", "pass", "SPF_PASS"),
    ("bob@mx-spf.test", "pass", "SPF_PASS"),          # mx mechanism: MX then its A record
    ("bob@spf-fail.test", "fail", "SPF_FAIL"),
    ("bob@spf-soft.test", "softfail", "SPF_SOFTFAIL"),
    ("bob@spf-none.test", "none", None),
])
def test_spf_result_header_and_rule(auth_edge: int, fake_router: FakeMail, sender: str, spf: str,
                                    rule: str | None) -> None:
    code, _ = send(auth_edge, message(sender), sender)
    assert code == 250
    request = delivered(fake_router)
    domain = sender.partition("@")[2]
    assert results(request)[0].startswith(f"{AUTHSERV}; spf={spf} smtp.mailfrom={domain}; dkim=none;")
    found = rules(request)
    assert request.screening.screened and request.screening.client_ip == "127.0.0.1"
    assert request.screening.sender_domain == domain
    if rule is not None:
        assert rule in found
    assert ("AUTH_NONE" in found) == (spf != "pass")
    if spf == "fail":
        assert found["SPF_FAIL"] == 2.0
    # stored order: our Received, our Authentication-Results, then the message as sent
    assert request.raw.startswith(b"Received: from client.test ([127.0.0.1])")
    assert request.raw.index(b"Authentication-Results:") < request.raw.index(b"From: ")


def test_dmarc_pass_through_aligned_spf(auth_edge: int, fake_router: FakeMail) -> None:
    code, _ = send(auth_edge, message("bob@spf-pass.test"), "bounces@spf-pass.test")
    assert code == 250
    request = delivered(fake_router)
    assert results(request) == [f"{AUTHSERV}; spf=pass smtp.mailfrom=spf-pass.test; dkim=none; "
                                "dmarc=pass (p=reject dis=none) header.from=spf-pass.test"]
    assert request.screening.authenticated_domain == "spf-pass.test"
    assert rules(request)["DMARC_PASS"] < 0 and not request.screening.quarantine


def test_dkim_signature_verifies(auth_edge: int, fake_router: FakeMail) -> None:
    # SPF fails for signed.test (-all), DKIM passes aligned: DMARC passes despite p=reject
    code, text = send(auth_edge, signed("news@signed.test"), "news@signed.test")
    assert code == 250, text
    request = delivered(fake_router)
    header = results(request)[0]
    assert "spf=fail smtp.mailfrom=signed.test" in header
    assert "dkim=pass header.d=signed.test header.s=sel header.b=" in header
    assert "dmarc=pass (p=reject dis=none) header.from=signed.test" in header
    assert request.screening.authenticated_domain == "signed.test"
    assert {"DKIM_VALID", "DMARC_PASS", "SPF_FAIL"} <= set(rules(request))


def test_dkim_broken_by_a_changed_body_fails_and_dmarc_rejects(auth_edge: int, fake_router: FakeMail) -> None:
    raw = signed("news@signed.test").replace(b"Hello Alice", b"Hello Mallory")
    code, text = send(auth_edge, raw, "news@signed.test")
    assert code == 550 and text.startswith("5.7.1") and "signed.test" in text and "DMARC" in text
    assert fake_router.delivered == []


def test_dkim_invalid_with_dmarc_none_is_delivered_scored(auth_edge: int, fake_router: FakeMail) -> None:
    raw = signed("news@signed.test").replace(b"Hello Alice", b"Hello Mallory")
    code, _ = send(auth_edge, raw.replace(b"From: <news@signed.test>", b"From: <news@monitor.test>"),
                   "news@monitor.test")
    assert code == 250
    request = delivered(fake_router)
    header = results(request)[0]
    assert "dkim=fail header.d=signed.test" in header and "dmarc=fail (p=none dis=none) header.from=monitor.test" in header
    assert rules(request)["DKIM_INVALID"] == 1.5 and rules(request)["DMARC_FAIL"] == 3.0
    assert request.screening.authenticated_domain == "" and not request.screening.quarantine


def test_dmarc_reject_refuses_at_data(auth_edge: int, fake_router: FakeMail) -> None:
    code, text = send(auth_edge, message("ceo@reject.test"), "bob@spf-pass.test")   # SPF passes, unaligned
    assert (code, text.split()[0]) == (550, "5.7.1") and "reject.test" in text
    assert fake_router.delivered == []


def test_dmarc_quarantine_reaches_the_router(auth_edge: int, fake_router: FakeMail) -> None:
    code, _ = send(auth_edge, message("ceo@quarantine.test"), "bob@spf-pass.test")
    assert code == 250
    request = delivered(fake_router)
    assert request.screening.quarantine
    assert request.screening.sender_domain == "quarantine.test"
    assert request.screening.authenticated_domain == "spf-pass.test"      # SPF passed, for another domain
    assert "dmarc=fail (p=quarantine dis=quarantine) header.from=quarantine.test" in results(request)[0]


def test_forged_results_for_our_authserv_id_are_removed_others_kept(auth_edge: int, fake_router: FakeMail) -> None:
    forged = (b"Authentication-Results: MX.example.test;\r\n\tdmarc=pass header.from=reject.test\r\n"
              b"Authentication-Results: (comment) mx.example.test; spf=pass\r\n"
              b"Authentication-Results: relay.other.test; dkim=pass header.d=other.test\r\n")
    code, _ = send(auth_edge, message("bob@spf-pass.test", extra=forged), "bob@spf-pass.test")
    assert code == 250
    stored = results(delivered(fake_router))
    assert len(stored) == 2
    assert stored[0].startswith(f"{AUTHSERV}; spf=pass")
    assert stored[1] == "relay.other.test; dkim=pass header.d=other.test"


@pytest.mark.parametrize("sender, author", [("bob@servfail.test", "bob@spf-pass.test"),     # SPF's lookup
                                            ("bob@spf-pass.test", "bob@dmarc-servfail.test")])  # DMARC's
def test_servfail_is_temporary(auth_edge: int, fake_router: FakeMail, sender: str, author: str) -> None:
    code, text = send(auth_edge, message(author), sender)
    assert (code, text.split()[0]) == (451, "4.7.0"), text
    assert fake_router.delivered == []


def test_dns_timeout_is_451_never_a_pass(start_edge: EdgeFactory, fake_router: FakeMail) -> None:
    with silent_dns() as address:
        port = start_edge(auth_checks=True, dns=address, dns_timeout=0.2).mx_port
        started = time.monotonic()
        code, text = send(port, message("bob@spf-pass.test"), "bob@spf-pass.test")
    assert (code, text.split()[0]) == (451, "4.7.0"), text
    assert time.monotonic() - started < 5
    assert fake_router.delivered == []


def test_checks_off_add_nothing(start_edge: EdgeFactory, fake_router: FakeMail) -> None:
    port = start_edge().mx_port          # the fixtures' default: --no-auth-checks
    forged = b"Authentication-Results: mx.example.test; spf=pass\r\n"
    assert send(port, message("ceo@reject.test", extra=forged), "bob@spf-fail.test")[0] == 250
    request = delivered(fake_router)
    auth_rules = {n for n in rules(request) if n.startswith(("SPF_", "DKIM_", "DMARC_", "AUTH_"))}
    assert auth_rules == set() and request.screening.screened
    assert results(request) == ["mx.example.test; spf=pass"]     # nothing checked, nothing removed
