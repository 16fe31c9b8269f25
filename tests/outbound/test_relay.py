"""No open relay: only a user who authenticated on submission (port 2587 of the contract)
reaches other domains, and only as themself. Port 2525 (the MX role) takes mail for hosted
domains only; what it refuses is never queued. The target is steady.test, a far end that
takes anything, so mail let through would show there."""
from __future__ import annotations

import smtplib
import ssl
import time
import uuid

from tests.cluster.grid import PASSWORD
from tests.outbound.conftest import ALICE, Net, eventually
from tidings.v1 import queue_pb2


def queued_for(net: Net, address: str) -> list[str]:
    """Ids of every item of A's queue (done ones too) with `address` among its recipients."""
    items = net.a.queue.ListItems(queue_pb2.ListQueueRequest(limit=10_000, include_done=True), timeout=30).items
    return [i.id for i in items if any(r.address.lower() == address.lower() for r in i.recipients)]


def received_for(net: Net, address: str) -> int:
    return sum(address in r.rcpt_tos for r in net.steady.received)


def tls() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    return context


def message(sender: str, to: str) -> bytes:
    return (f"From: {sender}\r\nTo: {to}\r\nSubject: relay? {uuid.uuid4().hex[:8]}\r\n"
            f"Message-ID: <{uuid.uuid4().hex}@example.test>\r\n\r\nPlease pass this on.\r\n").encode()


def test_port_2525_refuses_other_domains_and_queues_nothing(net: Net) -> None:
    target = f"x{uuid.uuid4().hex[:6]}@steady.test"
    with smtplib.SMTP(net.a.host, net.a.smtp_port, timeout=30) as client:
        client.ehlo("spammer.example")
        for sender in ("someone@elsewhere.example", ALICE, ""):     # a local sender changes nothing
            assert client.mail(sender)[0] == 250
            code, text = client.rcpt(target)
            assert (code, text[:5]) == (550, b"5.7.1"), (sender, code, text)
            assert client.rset()[0] == 250
        assert client.mail("someone@elsewhere.example")[0] == 250
        assert client.rcpt(target)[0] == 550
        assert client.docmd("DATA")[0] == 503       # no recipient was taken: no data
    time.sleep(1.5)
    assert queued_for(net, target) == [] and received_for(net, target) == 0


def test_port_2587_refuses_mail_before_auth_and_senders_the_user_does_not_own(net: Net) -> None:
    target = f"y{uuid.uuid4().hex[:6]}@steady.test"
    with smtplib.SMTP(net.a.host, net.a.submission_port, timeout=30) as client:
        client.ehlo("laptop.example.test")
        assert client.docmd(f"MAIL FROM:<{ALICE}>")[0] == 530                          # before STARTTLS
        client.starttls(context=tls())
        client.ehlo("laptop.example.test")
        assert client.docmd(f"MAIL FROM:<{ALICE}>") == (530, b"5.7.0 Authentication required")
        client.login(ALICE, PASSWORD)
        for stranger in ("mallory@example.test", "bob@other.test"):
            code, text = client.docmd(f"MAIL FROM:<{stranger}>")
            assert (code, text[:5]) == (553, b"5.7.1"), (stranger, code, text)
            client.rset()
        # The envelope is alice's, the From header someone else's: refused after DATA.
        refused = None
        try:
            client.sendmail(ALICE, [target], message("Mallory <mallory@example.test>", target))
        except smtplib.SMTPDataError as exc:
            refused = exc
        assert refused is not None and refused.smtp_code == 553, refused
        error = refused.smtp_error
        assert (error if isinstance(error, bytes) else error.encode()).startswith(b"5.7.1"), error
        time.sleep(1.5)
        assert queued_for(net, target) == [] and received_for(net, target) == 0

        # The same session, as alice herself: queued and delivered, once.
        assert client.sendmail(ALICE, [target], message(f"Alice <{ALICE}>", target)) == {}
    assert len(queued_for(net, target)) == 1
    eventually(lambda: received_for(net, target) == 1, f"{target} got alice's message")
