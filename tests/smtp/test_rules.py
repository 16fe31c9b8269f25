"""Port 2525's scored rules reach the router: what a message lacks in its header section, and
a listing of the client in an optional DNS blocklist (a real DNS server on loopback)."""
from __future__ import annotations

import smtplib
from collections.abc import Callable

import pytest
from dnslib import A

from smtp_edge.pipeline.rules import query_name
from smtp_edge.server import SmtpEdge
from tests.fake_mail import FakeMail
from tests.mailnet import Zone, serving

ALICE = "alice@example.test"
PLAIN = (b"From: carol@example.org\r\nTo: alice@example.test\r\nSubject: hi\r\n"
         b"Date: Tue, 01 Dec 2026 10:00:00 +0000\r\nMessage-ID: <1@example.org>\r\n\r\nhello\r\n")
BARE = b"From: just a name\r\nTo: alice@example.test\r\n\r\nhello\r\n"


def send(edge: SmtpEdge, raw: bytes) -> None:
    with smtplib.SMTP("127.0.0.1", edge.mx_port, timeout=10) as client:
        client.sendmail("carol@example.org", [ALICE], raw)


def rules(fake: FakeMail) -> dict[str, float]:
    return {r.name: r.score for r in fake.delivered[-1].screening.rules}


def test_a_proper_header_scores_nothing_and_a_bare_one_does(edge: SmtpEdge, fake_router: FakeMail) -> None:
    send(edge, PLAIN)
    assert rules(fake_router) == {}
    send(edge, BARE)
    assert rules(fake_router) == {"MISSING_DATE": 1.0, "MISSING_MESSAGE_ID": 1.0, "MISSING_SUBJECT": 0.5,
                                  "FROM_NO_ADDRESS": 2.0}
    assert fake_router.delivered[-1].screening.screened


def test_blocklist_names() -> None:
    assert query_name("127.0.0.2", "bl.test") == "2.0.0.127.bl.test"
    assert query_name("::1", "bl.test").endswith(".0.0.0.0.bl.test")
    assert query_name("not an ip", "bl.test") is None


def test_a_client_listed_in_a_blocklist_scores_and_an_unlisted_one_does_not(
        start_edge: Callable[..., SmtpEdge], fake_router: FakeMail) -> None:
    zone = Zone()
    zone.add("1.0.0.127.bl.test", "A", A("127.0.0.2"))       # 127.0.0.1 is listed in bl.test only
    with serving(zone):
        edge = start_edge(dns=f"127.0.0.1:{zone.port}", dnsbl=("bl.test", "other-bl.test"))
        send(edge, PLAIN)
    assert [(r.name, r.score, r.detail) for r in fake_router.delivered[-1].screening.rules] == [
        ("DNSBL_LISTED", 5.0, "bl.test: 127.0.0.2")]


def test_a_blocklist_that_does_not_answer_scores_nothing_and_defers_nothing(
        start_edge: Callable[..., SmtpEdge], fake_router: FakeMail, caplog: pytest.LogCaptureFixture) -> None:
    zone = Zone()
    zone.broken.add("1.0.0.127.bl.test")                      # SERVFAIL
    with serving(zone):
        edge = start_edge(dns=f"127.0.0.1:{zone.port}", dnsbl=("bl.test",), dns_timeout=0.5)
        send(edge, PLAIN)
    assert rules(fake_router) == {}
    assert "blocklist bl.test did not answer for 127.0.0.1" in caplog.text
