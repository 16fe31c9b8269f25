"""Port 2587 (submission) over a real socket with smtplib: STARTTLS, AUTH, sender rules.

The router is the ``fake_router`` test double of the ``tidings.v1.Mail``
contract (see conftest.py); the cluster tests cover the real router.
"""
from __future__ import annotations

import base64
import smtplib
import ssl

import grpc
import pytest

from smtp_edge.server import SmtpEdge

ALICE, ALICE_PASSWORD, ALICE_ID = "alice@example.test", "alice-secret", "00000000000000a1"
BOB = "bob@example.test"


def message(sender: str = ALICE, to: str = BOB) -> bytes:
    return (f"From: Alice <{sender}>\r\nTo: {to}\r\nSubject: hi\r\n"
            "Message-ID: <s1@example.test>\r\n\r\nHello Bob.\r\n").encode()


def connect(edge: SmtpEdge, *, tls: bool = True) -> smtplib.SMTP:
    client = smtplib.SMTP("127.0.0.1", edge.submission_port, timeout=10)
    client.ehlo("laptop.example.test")
    if tls:
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        client.starttls(context=context)
        client.ehlo("laptop.example.test")
    return client


def logged_in(edge: SmtpEdge) -> smtplib.SMTP:
    client = connect(edge)
    client.login(ALICE, ALICE_PASSWORD)
    return client


def test_plaintext_offers_starttls_only_and_refuses_mail_with_530(edge: SmtpEdge) -> None:
    with connect(edge, tls=False) as client:
        assert "starttls" in client.esmtp_features
        assert "auth" not in client.esmtp_features
        assert client.docmd("MAIL FROM:<alice@example.test>") == (
            530, b"5.7.0 Must issue a STARTTLS command first")
        assert client.docmd("AUTH PLAIN " + base64.b64encode(b"\0a\0b").decode())[0] == 530


def test_tls_without_auth_refuses_mail_with_530(edge: SmtpEdge) -> None:
    with connect(edge) as client:
        assert client.esmtp_features["auth"].split() == ["LOGIN", "PLAIN"]
        assert client.docmd("MAIL FROM:<alice@example.test>") == (
            530, b"5.7.0 Authentication required")


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_auth_with_router_credentials(edge: SmtpEdge, mechanism: str) -> None:
    with connect(edge) as client:
        client.user, client.password = ALICE, "wrong"
        method = getattr(client, "auth_" + mechanism.lower())
        with pytest.raises(smtplib.SMTPAuthenticationError) as refused:
            client.auth(mechanism, method)
        assert refused.value.smtp_code == 535
        client.password = ALICE_PASSWORD
        assert client.auth(mechanism, method)[0] == 235


def test_auth_when_router_is_down_is_454(edge: SmtpEdge, fake_router) -> None:
    fake_router.fail_authenticate = grpc.StatusCode.UNAVAILABLE
    with connect(edge) as client:
        with pytest.raises(smtplib.SMTPAuthenticationError) as refused:
            client.login(ALICE, ALICE_PASSWORD)
    assert refused.value.smtp_code == 454


def test_malformed_auth_is_refused_without_asking_the_router(edge: SmtpEdge) -> None:
    with connect(edge) as client:
        assert client.docmd("AUTH PLAIN !!notbase64")[0] == 501
        assert client.docmd("AUTH PLAIN " + base64.b64encode(b"no-nul-bytes").decode())[0] == 501


def test_sender_must_be_the_authenticated_user(edge: SmtpEdge) -> None:
    with logged_in(edge) as client:
        assert client.mail(BOB) == (
            553, b"5.7.1 <bob@example.test>: sender address not owned by authenticated user")
        assert client.docmd("MAIL FROM:<>")[0] == 553
        assert client.mail("ALICE@example.test")[0] == 250


def test_from_header_must_be_the_authenticated_user(edge: SmtpEdge, fake_router) -> None:
    with logged_in(edge) as client:
        client.mail(ALICE)
        client.rcpt(BOB)
        assert client.data(message(sender=BOB)) == (
            553, b"5.7.1 <bob@example.test>: sender address not owned by authenticated user")
    assert fake_router.delivered == []


def test_local_recipients_are_delivered_with_a_sent_copy(edge: SmtpEdge, fake_router) -> None:
    with logged_in(edge) as client:
        client.mail(ALICE)
        assert client.rcpt(BOB)[0] == 250
        assert client.rcpt("nobody@example.test")[0] == 550
        code, reply = client.data(message())
    assert code == 250 and reply.startswith(b"2.0.0 OK ")
    [request] = fake_router.delivered
    assert list(request.recipients) == [BOB]
    assert request.sender_user_id == ALICE_ID
    assert b"with ESMTPSA id " in request.raw
    assert request.raw.endswith(message())


def test_external_recipients_go_to_the_router_with_the_envelope_sender(edge: SmtpEdge, fake_router) -> None:
    with logged_in(edge) as client:
        client.mail(ALICE)
        assert client.rcpt("Dave@elsewhere.example")[0] == 250
        assert client.rcpt(BOB)[0] == 250
        code, _ = client.data(message())
    assert code == 250
    [request] = fake_router.delivered
    assert list(request.recipients) == ["Dave@elsewhere.example", BOB]   # the far end's local part keeps its case
    assert request.mail_from == ALICE and request.sender_user_id == ALICE_ID


def test_dev_certificate_is_made_once_and_reused(start_edge, tmp_path) -> None:
    start_edge()
    cert = tmp_path / "smtp" / "tls" / "cert.pem"
    key = tmp_path / "smtp" / "tls" / "key.pem"
    first = cert.read_bytes()
    assert key.stat().st_mode & 0o777 == 0o600
    start_edge()
    assert cert.read_bytes() == first
