"""Port 2525 (MX role) over a real socket with smtplib.

The router is the ``fake_router`` test double of the ``tidings.v1.Mail``
contract (see conftest.py); the cluster tests cover the real router.
"""
from __future__ import annotations

import os
import re
import smtplib
from concurrent.futures import ThreadPoolExecutor
from email import message_from_bytes, policy
from email.message import EmailMessage

import grpc
import pytest
from prometheus_client import REGISTRY

from smtp_edge.server import SmtpEdge

ALICE = "alice@example.test"
ENTRY_ID = re.compile(r"^2\.0\.0 OK ([0-9a-f]{32})$")


def connect(edge: SmtpEdge) -> smtplib.SMTP:
    client = smtplib.SMTP("127.0.0.1", edge.mx_port, timeout=10)
    client.ehlo("client.example.org")
    return client


def simple_message(subject: str = "hello", to: str = ALICE) -> bytes:
    return (f"From: carol@example.org\r\nTo: {to}\r\nSubject: {subject}\r\n"
            "Message-ID: <1@example.org>\r\n\r\nHi there.\r\n").encode()


def send(client: smtplib.SMTP, recipients: list[str], raw: bytes,
         sender: str = "carol@example.org") -> tuple[int, bytes]:
    """MAIL, RCPT each, DATA: the DATA reply (or the first failing step's reply)."""
    code, reply = client.mail(sender)
    if code != 250:
        return code, reply
    for recipient in recipients:
        client.rcpt(recipient)
    return client.data(raw)


def test_ehlo_advertises_size_8bitmime_enhanced_codes_and_no_auth(edge: SmtpEdge) -> None:
    with connect(edge) as client:
        assert client.esmtp_features["size"] == str(25 * 1024 * 1024)
        assert "8bitmime" in client.esmtp_features
        assert "enhancedstatuscodes" in client.esmtp_features
        assert "auth" not in client.esmtp_features
        assert "starttls" not in client.esmtp_features


def test_accepted_message_is_delivered_before_250(edge: SmtpEdge, fake_router) -> None:
    raw = simple_message()
    with connect(edge) as client:
        code, reply = send(client, [ALICE], raw)
    assert code == 250
    entry_id = ENTRY_ID.match(reply.decode()).group(1)
    [request] = fake_router.delivered
    assert request.entry_id == entry_id
    assert list(request.recipients) == [ALICE]
    assert request.sender_user_id == ""
    assert request.raw.startswith(b"Received: from client.example.org ([127.0.0.1])\r\n")
    assert f"with ESMTP id {entry_id}\r\n\tfor <{ALICE}>;".encode() in request.raw
    assert request.raw.endswith(raw)


def test_binary_attachment_bytes_survive(edge: SmtpEdge, fake_router) -> None:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "carol@example.org", ALICE, "pdf"
    message.set_content("see attached")
    payload = os.urandom(50_000) + b"\r\n.\r\n\x00\xff"
    message.add_attachment(payload, maintype="application", subtype="octet-stream",
                           filename="blob.bin")
    with connect(edge) as client:
        client.send_message(message)
    [request] = fake_router.delivered
    stored = message_from_bytes(request.raw, policy=policy.default)
    [attachment] = list(stored.iter_attachments())
    assert attachment.get_content() == payload


def test_dot_stuffed_and_8bit_lines_are_kept(edge: SmtpEdge, fake_router) -> None:
    raw = ("Subject: dots\r\n\r\n.leading dot\r\n..two dots\r\nnaïve café\r\n").encode()
    with connect(edge) as client:
        code, _ = send(client, [ALICE], raw)
    assert code == 250
    assert fake_router.delivered[0].raw.endswith(raw)


def test_unknown_user_is_550_511(edge: SmtpEdge) -> None:
    with connect(edge) as client:
        client.mail("carol@example.org")
        assert client.rcpt("nobody@example.test") == (
            550, b"5.1.1 <nobody@example.test>: no such user here")


def test_unhosted_domain_is_550_571_never_relay(edge: SmtpEdge, fake_router) -> None:
    with connect(edge) as client:
        client.mail("carol@example.org")
        assert client.rcpt("dave@elsewhere.example") == (
            550, b"5.7.1 <dave@elsewhere.example>: relay access denied")
        assert client.docmd("DATA") == (503, b"5.5.1 need RCPT command")
    assert fake_router.delivered == []


def test_only_accepted_recipients_are_delivered_once_each(edge: SmtpEdge, fake_router) -> None:
    with connect(edge) as client:
        client.mail("carol@example.org")
        assert client.rcpt(ALICE)[0] == 250
        assert client.rcpt("nobody@example.test")[0] == 550
        assert client.rcpt("bob@EXAMPLE.test")[0] == 250
        assert client.rcpt(ALICE)[0] == 250                # duplicate: accepted, kept once
        assert client.data(simple_message())[0] == 250
    assert list(fake_router.delivered[0].recipients) == [ALICE, "bob@example.test"]
    assert "bob@example.test" in fake_router.checked       # domain lower-cased before asking


@pytest.mark.parametrize("command, expected", [
    ("RCPT TO:<bob>", b"5.1.3 <bob>: An email address must have an @-sign."),
    ("RCPT TO:<bob@[127.0.0.1]>",
     b"5.1.3 <bob@[127.0.0.1]>: A bracketed IP address after the @-sign is not allowed here."),
    ("RCPT TO:<bob@exa_mple.test>",
     b"5.1.3 <bob@exa_mple.test>: The part after the @-sign contains invalid characters: '_'."),
    ("RCPT TO:<a..b@example.test>",
     b"5.1.3 <a..b@example.test>: An email address cannot have two periods in a row."),
    ("RCPT TO:<<<a@b>", b"5.1.3 malformed address"),
])
def test_malformed_recipient_is_553_513(edge: SmtpEdge, command: str, expected: bytes) -> None:
    with connect(edge) as client:
        client.mail("carol@example.org")
        assert client.docmd(command) == (553, expected)


def test_malformed_sender_is_553_517_and_null_sender_is_fine(edge: SmtpEdge) -> None:
    with connect(edge) as client:
        assert client.docmd("MAIL FROM:<carol>") == (
            553, b"5.1.7 <carol>: An email address must have an @-sign.")
        assert client.docmd("MAIL FROM:<>")[0] == 250
        assert client.rcpt(ALICE)[0] == 250


def test_too_many_recipients_is_452(start_edge, fake_router) -> None:
    edge = start_edge(max_recipients=1)
    with connect(edge) as client:
        client.mail("carol@example.org")
        assert client.rcpt(ALICE)[0] == 250
        assert client.rcpt("bob@example.test") == (452, b"4.5.3 too many recipients")


def test_size_parameter_over_limit_is_552_534(start_edge) -> None:
    edge = start_edge(max_size=10_000)
    with connect(edge) as client:
        assert client.esmtp_features["size"] == "10000"
        assert client.mail("carol@example.org", ["SIZE=10001"]) == (552, b"5.3.4 message too big")
        assert client.mail("carol@example.org", ["SIZE=9000"])[0] == 250


def test_data_over_limit_is_552_534_and_not_delivered(start_edge, fake_router) -> None:
    edge = start_edge(max_size=10_000)
    raw = simple_message() + b"".join(b"z" * 78 + b"\r\n" for _ in range(200))
    with connect(edge) as client:
        assert send(client, [ALICE], raw) == (552, b"5.3.4 message too big")
        # the session goes on: a small message right after is accepted
        assert send(client, [ALICE], simple_message())[0] == 250
    assert len(fake_router.delivered) == 1


def test_duplicate_from_header_is_554_560(edge: SmtpEdge, fake_router) -> None:
    raw = b"From: a@example.org\r\nFrom: b@example.org\r\nSubject: x\r\n\r\nbody\r\n"
    with connect(edge) as client:
        assert send(client, [ALICE], raw) == (554, b"5.6.0 more than one From header field")
    assert fake_router.delivered == []


def test_router_unreachable_is_451_430(start_edge, down_router_address) -> None:
    edge = start_edge(router=down_router_address)
    with connect(edge) as client:
        client.mail("carol@example.org")
        code, reply = client.rcpt(ALICE)
    assert code == 451
    assert reply.startswith(b"4.3.0 ") and reply.endswith(b", try again later")


@pytest.mark.parametrize("status", [grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INTERNAL])
def test_recipient_check_failure_is_451(edge: SmtpEdge, fake_router, status) -> None:
    fake_router.fail_check = status
    with connect(edge) as client:
        client.mail("carol@example.org")
        assert client.rcpt(ALICE)[0] == 451


@pytest.mark.parametrize("status, reason", [
    (grpc.StatusCode.UNAVAILABLE, b"mail store unavailable"),
    (grpc.StatusCode.DEADLINE_EXCEEDED, b"mail store timed out"),
    (grpc.StatusCode.INTERNAL, b"mail store failed"),
])
def test_delivery_failure_is_451_never_250(edge: SmtpEdge, fake_router, status, reason) -> None:
    with connect(edge) as client:
        client.mail("carol@example.org")
        client.rcpt(ALICE)
        fake_router.fail_deliver = status
        assert client.data(simple_message()) == (451, b"4.3.0 " + reason + b", try again later")
    assert fake_router.delivered == []


def test_unexpected_error_is_451_and_the_session_goes_on(edge: SmtpEdge, monkeypatch) -> None:
    async def broken(address: str) -> None:
        raise RuntimeError("bug")

    with connect(edge) as client:
        client.mail("carol@example.org")
        monkeypatch.setattr(edge.api, "check_recipient", broken)
        assert client.rcpt(ALICE) == (451, b"4.3.0 local error in processing, try again later")
        monkeypatch.undo()
        assert client.rcpt(ALICE)[0] == 250


def test_slow_delivery_past_deadline_is_451(start_edge, fake_router) -> None:
    edge = start_edge(deliver_timeout=0.3)
    fake_router.delays["Deliver"] = 1.0
    with connect(edge) as client:
        assert send(client, [ALICE], simple_message()) == (
            451, b"4.3.0 mail store timed out, try again later")


def test_stop_lets_a_delivery_in_flight_finish_with_250(edge: SmtpEdge, fake_router,
                                                        loop_thread) -> None:
    fake_router.delays["Deliver"] = 0.5
    with connect(edge) as client:
        client.mail("carol@example.org")
        client.rcpt(ALICE)
        with ThreadPoolExecutor(1) as pool:
            reply = pool.submit(client.data, simple_message())
            assert fake_router.entered("Deliver").wait(5)
            loop_thread.run(edge.stop(grace=5))
            assert reply.result(5)[0] == 250
    assert len(fake_router.delivered) == 1
    with pytest.raises(OSError):
        connect(edge)


def test_metrics_count_sessions_accepts_and_rejections(edge: SmtpEdge) -> None:
    def value(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    before = (value("tidings_smtp_sessions_total", listener="mx"),
              value("tidings_smtp_messages_accepted_total", listener="mx"),
              value("tidings_smtp_rejections_total", listener="mx", code="550", enhanced="5.1.1"),
              value("tidings_smtp_delivery_seconds_count", listener="mx", outcome="ok"))
    with connect(edge) as client:
        client.mail("carol@example.org")
        client.rcpt("nobody@example.test")
        client.rcpt(ALICE)
        client.data(simple_message())
    after = (value("tidings_smtp_sessions_total", listener="mx"),
             value("tidings_smtp_messages_accepted_total", listener="mx"),
             value("tidings_smtp_rejections_total", listener="mx", code="550", enhanced="5.1.1"),
             value("tidings_smtp_delivery_seconds_count", listener="mx", outcome="ok"))
    assert [b - a for a, b in zip(before, after)] == [1, 1, 1, 1]


def test_reply_lines_all_come_from_the_catalogue() -> None:
    from smtp_edge import replies
    for ours in replies.BUILTIN.values():
        code, enhanced = replies.reply_code(ours)
        assert code.isdigit() and enhanced, ours
