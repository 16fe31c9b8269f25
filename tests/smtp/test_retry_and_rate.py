"""A retried SMTP transaction is stored once; submission over its rate is 451 4.7.0 (shared grid)."""
from __future__ import annotations

import smtplib
import ssl
import uuid
from collections.abc import Callable

from tests.cluster.grid import PASSWORD, Grid
from tidings.v1 import mail_pb2
from tidings_cli.cluster import HOST


def _inbox(grid: Grid, email: str, subject: str) -> list[str]:
    account = grid.mail.Authenticate(mail_pb2.AuthenticateRequest(email=email, password=PASSWORD), timeout=10)
    page = grid.mail.ListMessages(mail_pb2.ListMessagesRequest(user_id=account.user_id, folder_id="inbox", limit=200),
                                  timeout=10)
    return [m.id for m in page.messages if m.subject == subject]


def _raw(to: str, subject: str) -> bytes:
    return (f"From: carol@example.org\r\nTo: {to}\r\nSubject: {subject}\r\n"
            f"Message-ID: <{uuid.uuid4()}@example.org>\r\nDate: Tue, 1 Dec 2026 10:00:00 +0000\r\n\r\n"
            "body\r\n").encode()


def test_the_same_transaction_twice_is_one_message(grid: Grid, new_user: Callable[[str], str]) -> None:
    bob = new_user("retry")
    subject = f"retried {uuid.uuid4()}"
    raw = _raw(bob, subject)
    replies = []
    for _ in range(2):     # the client never saw the first 250 (a timeout): it sends again
        with smtplib.SMTP(HOST, grid.smtp_port, timeout=30) as client:
            client.ehlo("client.example.org")
            client.mail("carol@example.org")
            client.rcpt(bob)
            replies.append(client.data(raw))
    assert [code for code, _ in replies] == [250, 250]
    assert replies[0][1] == replies[1][1]          # "2.0.0 OK ENTRY-ID": the same entry id
    assert len(_inbox(grid, bob, subject)) == 1
    with smtplib.SMTP(HOST, grid.smtp_port, timeout=30) as client:    # other bytes: another message
        client.ehlo("client.example.org")
        client.sendmail("carol@example.org", [bob], raw.replace(b"body", b"other body"))
    assert len(_inbox(grid, bob, subject)) == 2


def test_submission_over_its_rate_is_451(grid: Grid, new_user: Callable[[str], str]) -> None:
    alice = new_user("subrate")
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    with smtplib.SMTP(HOST, grid.submission_port, timeout=30) as client:
        client.starttls(context=context)
        client.login(alice, PASSWORD)
        codes = []
        for _ in range(40):     # the default burst is 20, refilled at 1 a second
            code, text = client.mail(alice)
            codes.append(code)
            if code != 250:
                break
            client.rset()
        assert codes[:20] == [250] * 20
        assert codes[-1] == 451 and text.startswith(b"4.7.0 sending rate limit exceeded"), text
