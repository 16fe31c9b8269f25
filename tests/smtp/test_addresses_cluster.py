"""Envelope addresses over real SMTP against the shared grid: edge and router agree.

Whatever the edge takes, the router takes too, so a recipient is delivered, refused
for good (5xx), or deferred (4xx) only when the store is unavailable: never 451 for an
address the router finds malformed.
"""
from __future__ import annotations

import smtplib
import subprocess
import sys
import uuid

import grpc
import pytest

from tests.cluster.grid import Grid
from tidings.v1 import mail_pb2
from tidings_cli.cluster import HOST

SENDER = "carol@example.org"


def unique() -> str:
    return uuid.uuid4().hex[:8]


def mx(grid: Grid) -> smtplib.SMTP:
    client = smtplib.SMTP(HOST, grid.smtp_port, timeout=30)
    client.ehlo("client.example.org")
    return client


def rcpt(client: smtplib.SMTP, address: str, mail_options: str = "") -> tuple[int, bytes]:
    """``RCPT TO:<address>`` sent as is, in UTF-8 (smtplib's ``rcpt`` would re-quote it)."""
    client.rset()
    client.command_encoding = "utf-8"                      # after rset, which resets it
    assert client.docmd(f"MAIL FROM:<{SENDER}>{mail_options}")[0] == 250
    return client.docmd(f"RCPT TO:<{address}>")


def deliver(grid: Grid, address: str, subject: str, *, smtputf8: bool = False) -> tuple[int, bytes]:
    """Send one message to ``address``; the DATA reply."""
    raw = f"From: {SENDER}\r\nSubject: {subject}\r\n\r\nbody\r\n".encode()
    with mx(grid) as client:
        code, reply = rcpt(client, address, " SMTPUTF8" if smtputf8 else "")
        assert code == 250, (code, reply)
        return client.data(raw)


def inbox_subjects(grid: Grid, user_id: str) -> list[str]:
    page = grid.mail.ListMessages(mail_pb2.ListMessagesRequest(user_id=user_id, folder_id="inbox"),
                                  timeout=10)
    return [m.subject for m in page.messages]


@pytest.mark.parametrize("address, reply", [
    ('"no such person"@example.test', (550, "5.1.1")),   # valid syntax, unknown user
    ('"a\\"b"@example.test', (550, "5.1.1")),
    ("a/b=c@example.test", (550, "5.1.1")),
    ("user+tag@example.test", (550, "5.1.1")),
    ("nobody@example.t", (550, "5.7.1")),                  # valid syntax, not hosted
    ("nobody@[127.0.0.1]", (553, "5.1.3")),                # address literal: refused
    ("a..b@example.test", (553, "5.1.3")),
    ("x" * 65 + "@example.test", (553, "5.1.3")),
    ("user@localhost", (553, "5.1.3")),
    ("user@123.456", (553, "5.1.3")),
    ("user@-bad.example", (553, "5.1.3")),
])
def test_bad_or_unknown_recipient_is_refused_for_good(grid: Grid, address: str,
                                                      reply: tuple[int, str]) -> None:
    with mx(grid) as client:
        code, text = rcpt(client, address)
    assert (code, text.split(b" ")[0].decode()) == reply, (code, text)


def test_spellings_of_one_user_reach_one_inbox(grid: Grid, new_user) -> None:
    email = new_user("spelling")
    local, domain = email.split("@")
    user_id = grid.mail.CheckRecipient(mail_pb2.CheckRecipientRequest(address=email),
                                       timeout=10).account.user_id
    for spelling in (f"{local.title()}@{domain.upper()}", f'"{local}"@{domain}'):
        code, _ = deliver(grid, spelling, f"to {spelling}")
        assert code == 250
    assert set(inbox_subjects(grid, user_id)) == {f"to {local.title()}@{domain.upper()}",
                                                   f'to "{local}"@{domain}'}


def test_quoted_local_part_user_gets_mail(grid: Grid) -> None:
    email = f'"john doe {unique()}"@example.test'
    account = grid.add_user(email)
    assert account.email == email
    code, reply = deliver(grid, email, "quoted")
    assert code == 250, reply
    assert inbox_subjects(grid, account.user_id) == ["quoted"]


def test_smtputf8_user_gets_mail(grid: Grid) -> None:
    email = f"δοκιμή{unique()}@example.test"
    account = grid.add_user(email.upper())                 # one user, whatever the case
    assert account.email == email
    code, reply = deliver(grid, email, "utf8", smtputf8=True)
    assert code == 250, reply
    assert inbox_subjects(grid, account.user_id) == ["utf8"]
    with mx(grid) as client:                               # RFC 6531 3.5: not without SMTPUTF8
        code, text = rcpt(client, email)
    assert (code, text.split(b" ")[0]) == (553, b"5.6.7")


def test_router_classifies_a_malformed_recipient(grid: Grid) -> None:
    answer = grid.mail.CheckRecipient(mail_pb2.CheckRecipientRequest(address="no at sign"),
                                      timeout=10)
    assert answer.status == mail_pb2.CheckRecipientResponse.MALFORMED
    assert "@" in answer.reason


def test_admin_refuses_bad_addresses_and_domains_with_a_reason(grid: Grid) -> None:
    with pytest.raises(grpc.RpcError) as refused:
        grid.add_user("bad address@example.test")
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "bad address@example.test" in refused.value.details()
    with pytest.raises(grpc.RpcError) as refused:
        grid.admin.AddDomain(mail_pb2.AddDomainRequest(domain="bad..domain"), timeout=10)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "bad..domain" in refused.value.details()


def test_an_idna_domain_is_hosted_under_its_ascii_name(grid: Grid) -> None:
    name = f"bücher-{unique()}.example"
    added = grid.admin.AddDomain(mail_pb2.AddDomainRequest(domain=name.upper()), timeout=10)
    ascii_name = name.encode("idna").decode()
    assert added.domain == ascii_name and added.created
    account = grid.add_user(f"ann@{name}")
    assert account.email == f"ann@{ascii_name}"
    answer = grid.mail.CheckRecipient(
        mail_pb2.CheckRecipientRequest(address=f"ANN@{ascii_name.upper()}"), timeout=10)
    assert answer.status == mail_pb2.CheckRecipientResponse.LOCAL_USER
    assert answer.account.user_id == account.user_id


def test_cli_user_add_names_the_problem(grid: Grid) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tidings_cli", "--router", grid.router_address,
         "user", "add", "alice@[127.0.0.1]", "--password", "correct horse"],
        capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode != 0
    assert "INVALID_ARGUMENT" in done.stderr and "alice@[127.0.0.1]" in done.stderr
    assert "bracketed IP address" in done.stderr
