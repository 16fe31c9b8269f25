"""The pure parts of the content checks: clamd addresses and INSTREAM replies, the GTUBE
search, rspamd's request headers and action mapping (the daemons themselves are tested in
tests/smtp/test_virus.py and test_rspamd.py)."""
from __future__ import annotations

import asyncio

import pytest

from smtp_edge.pipeline.content import GTUBE, check_gtube
from smtp_edge.pipeline.message import InboundMessage
from smtp_edge.pipeline.rspamd import RspamdVerdict, reply_for, request_headers
from smtp_edge.pipeline.virus import ScannerUnavailable, parse_clamd_address, parse_reply


@pytest.mark.parametrize("address", ["unix:/run/clamav/clamd.ctl", "tcp:127.0.0.1:3310", "tcp:[::1]:3310"])
def test_clamd_addresses(address: str) -> None:
    assert parse_clamd_address(address) == address


@pytest.mark.parametrize("address", ["", "unix:", "tcp:127.0.0.1", "tcp:127.0.0.1:0", "tcp:host:99999",
                                     "/run/clamd.sock", "http://127.0.0.1:3310"])
def test_bad_clamd_addresses(address: str) -> None:
    with pytest.raises(ValueError, match="unix:/path/to/clamd.sock or tcp:HOST:PORT"):
        parse_clamd_address(address)


def test_instream_replies() -> None:
    assert parse_reply("stream: OK").signature is None
    assert parse_reply("stream: Eicar-Test-Signature.UNOFFICIAL FOUND").signature == "Eicar-Test-Signature.UNOFFICIAL"
    for reply in ("INSTREAM size limit exceeded. ERROR", "stream: Can't allocate memory ERROR", "", "PONG",
                  "stream: something else"):
        with pytest.raises(ScannerUnavailable):
            parse_reply(reply)


def inbound(raw: bytes, recipients: tuple[str, ...] = ("alice@example.test",), mail_from: str = "carol@example.org",
            ) -> InboundMessage:
    return InboundMessage(raw=raw, mail_from=mail_from, recipients=recipients, max_size=10**6,
                          client_ip="192.0.2.7", helo="client.example.org")


def test_gtube_anywhere_in_the_message() -> None:
    assert asyncio.run(check_gtube(inbound(b"Subject: x\r\n\r\n" + GTUBE + b"\r\n"))) == \
        "550 5.7.1 message refused as spam (GTUBE test string)"
    assert asyncio.run(check_gtube(inbound(b"Subject: x\r\n\r\nXJS*C4JDBQADN1 almost\r\n"))) is None


def test_rspamd_request_headers_one_rcpt_each() -> None:
    headers = request_headers(inbound(b"x", ("alice@example.test", "bob@example.test")))
    assert headers == [("From", "carol@example.org"), ("Rcpt", "alice@example.test"), ("Rcpt", "bob@example.test"),
                       ("IP", "192.0.2.7"), ("Helo", "client.example.org")]
    assert ("From", "<>") not in request_headers(inbound(b"x", mail_from="<>"))


@pytest.mark.parametrize(("action", "reply"), [
    ("reject", "550 5.7.1"), ("soft reject", "451 4.7.1"), ("greylist", "451 4.7.1"),
    ("add header", None), ("rewrite subject", None), ("no action", None),
])
def test_rspamd_actions(action: str, reply: str | None) -> None:
    got = reply_for(RspamdVerdict(action=action, score=7.0))
    assert (got[:9] if got else None) == reply
