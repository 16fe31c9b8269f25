"""The SMTP edge against a real cluster: 3 storage nodes, the router, ``python -m smtp_edge``.

The module starts its own cluster (without the HTTP edge, which it does not
need) because its fault test kills storage nodes. Messages are read back
through the router's Mail API to see what was stored.
"""
from __future__ import annotations

import os
import smtplib
import ssl
from collections.abc import Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest

from tests.cluster.grid import PASSWORD, Grid, running
from tidings.v1 import mail_pb2
from tidings_cli.cluster import HOST


@pytest.fixture(scope="module")
def mail_grid(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Grid]:
    with running(tmp_path_factory.mktemp("smtp-grid"), edges=("smtp",)) as grid:
        yield grid


@pytest.fixture(scope="module")
def users(mail_grid: Grid) -> dict[str, str]:
    """email -> user id."""
    return {email: mail_grid.add_user(email, PASSWORD).user_id
            for email in ("alice@example.test", "bob@example.test")}


def mx(grid: Grid) -> smtplib.SMTP:
    client = smtplib.SMTP(HOST, grid.smtp_port, timeout=30)
    client.ehlo("client.example.org")
    return client


def stored_raw(grid: Grid, user_id: str, folder: str, subject: str) -> bytes:
    page = grid.mail.ListMessages(mail_pb2.ListMessagesRequest(user_id=user_id, folder_id=folder),
                                  timeout=10)
    [summary] = [m for m in page.messages if m.subject == subject]
    return grid.mail.GetRawMessage(mail_pb2.MessageRef(user_id=user_id, id=summary.id),
                                   timeout=10).raw


def test_accepted_mail_is_stored_byte_for_byte(mail_grid: Grid, users: dict[str, str]) -> None:
    payload = os.urandom(200_000)
    message = EmailMessage()
    message["From"], message["To"] = "carol@example.org", "alice@example.test"
    message["Subject"] = "cluster attachment"
    message.set_content("see attached")
    message.add_attachment(payload, maintype="application", subtype="octet-stream",
                           filename="blob.bin")
    raw = message.as_bytes(policy=policy.SMTP)
    with mx(mail_grid) as client:
        client.mail("carol@example.org")
        assert client.rcpt("alice@example.test")[0] == 250
        code, reply = client.data(raw)
    assert code == 250 and reply.startswith(b"2.0.0 OK ")
    stored = stored_raw(mail_grid, users["alice@example.test"], "inbox", "cluster attachment")
    assert stored.startswith(b"Received: from client.example.org")
    assert stored.endswith(raw)
    [attachment] = message_from_bytes(stored, policy=policy.default).iter_attachments()
    assert attachment.get_content() == payload


def test_unknown_user_and_unhosted_domain(mail_grid: Grid, users: dict[str, str]) -> None:
    with mx(mail_grid) as client:
        client.mail("carol@example.org")
        assert client.rcpt("nobody@example.test") == (
            550, b"5.1.1 <nobody@example.test>: no such user here")
        assert client.rcpt("dave@elsewhere.example") == (
            550, b"5.7.1 <dave@elsewhere.example>: relay access denied")


def test_oversize_is_552(mail_grid: Grid) -> None:
    with mx(mail_grid) as client:
        limit = int(client.esmtp_features["size"])
        assert limit == 25 * 1024 * 1024
        assert client.mail("carol@example.org", [f"SIZE={limit + 1}"]) == (
            552, b"5.3.4 message too big")


def test_submission_delivers_locally_with_sent_copy(mail_grid: Grid, users: dict[str, str]) -> None:
    raw = (b"From: Alice <alice@example.test>\r\nTo: bob@example.test\r\n"
           b"Subject: submitted\r\nMessage-ID: <sub1@example.test>\r\n\r\nHi Bob.\r\n")
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    with smtplib.SMTP(HOST, mail_grid.submission_port, timeout=30) as client:
        client.ehlo("laptop")
        assert client.docmd("MAIL FROM:<alice@example.test>")[0] == 530
        client.starttls(context=context)
        client.login("alice@example.test", PASSWORD)
        assert client.mail("bob@example.test")[0] == 553
        client.mail("alice@example.test")
        assert client.rcpt("bob@example.test")[0] == 250
        assert client.data(raw)[0] == 250
    assert stored_raw(mail_grid, users["bob@example.test"], "inbox", "submitted").endswith(raw)
    assert stored_raw(mail_grid, users["alice@example.test"], "sent", "submitted").endswith(raw)


def test_451_without_a_write_quorum_then_250_again(mail_grid: Grid, users: dict[str, str]) -> None:
    raw = b"From: carol@example.org\r\nSubject: quorum\r\n\r\nbody\r\n"
    mail_grid.kill_storage(1)
    with mx(mail_grid) as client:            # W=2 of 3 still holds
        assert client.sendmail("carol@example.org", ["alice@example.test"], raw) == {}
    mail_grid.kill_storage(2)
    try:
        with mx(mail_grid) as client:        # one replica left: never 250
            client.mail("carol@example.org")
            code, reply = client.rcpt("alice@example.test")
            if code == 250:                  # the directory read may still succeed
                code, reply = client.data(raw)
            assert code == 451 and reply.startswith(b"4.3.0 "), (code, reply)
    finally:
        mail_grid.start_storage(1)
        mail_grid.start_storage(2)
    with mx(mail_grid) as client:
        assert client.sendmail("carol@example.org", ["alice@example.test"], raw) == {}
