"""How the SMTP edge answers what the router refuses for good: a 5xx, never 451.

The edge's refusals come from two places: the router's verdict on a recipient
(``CheckRecipient`` answers ``MALFORMED``; checked against the real router of the shared
grid, since the edge's own check normally answers first) and a router that refuses a
call as invalid (``INVALID_ARGUMENT``, ``FAILED_PRECONDITION``: injected into the
test-double router, since a real one only does so when edge and router disagree).
"""
from __future__ import annotations

import asyncio
import smtplib

import grpc
import pytest

from smtp_edge.mail_api import MailApi
from smtp_edge.server import SmtpEdge
from tests.cluster.grid import Grid
from tidings_runtime.addresses import AddressError

ALICE = "alice@example.test"
RAW = b"From: carol@example.org\r\nSubject: hello\r\n\r\nHi.\r\n"


def connect(edge: SmtpEdge) -> smtplib.SMTP:
    client = smtplib.SMTP("127.0.0.1", edge.mx_port, timeout=10)
    client.ehlo("client.example.org")
    return client


def test_router_verdict_malformed_becomes_address_error(grid: Grid) -> None:
    async def check() -> None:
        api = MailApi(grid.router_address, rpc_timeout=10, deliver_timeout=10,
                      max_message_bytes=1024)
        await api.open()
        try:
            with pytest.raises(AddressError) as refused:
                await api.check_recipient("no at sign")
            assert refused.value.text == "no at sign" and "@" in refused.value.reason
        finally:
            await api.close()

    asyncio.run(check())


@pytest.mark.parametrize("status", [grpc.StatusCode.INVALID_ARGUMENT,
                                    grpc.StatusCode.FAILED_PRECONDITION])
def test_recipient_refused_as_invalid_is_5xx(edge: SmtpEdge, fake_router, status) -> None:
    fake_router.fail_check = status
    with connect(edge) as client:
        client.mail("carol@example.org")
        assert client.rcpt(ALICE) == (554, b"5.3.0 injected")


@pytest.mark.parametrize("status", [grpc.StatusCode.INVALID_ARGUMENT,
                                    grpc.StatusCode.FAILED_PRECONDITION])
def test_delivery_refused_as_invalid_is_5xx(edge: SmtpEdge, fake_router, status) -> None:
    with connect(edge) as client:
        client.mail("carol@example.org")
        assert client.rcpt(ALICE)[0] == 250
        fake_router.fail_deliver = status
        assert client.data(RAW) == (554, b"5.3.0 injected")
    assert fake_router.delivered == []


def test_undecodable_address_bytes_are_553_and_the_session_goes_on(edge: SmtpEdge) -> None:
    with connect(edge) as client:
        assert client.docmd("MAIL FROM:<carol@example.org> SMTPUTF8")[0] == 250
        client.send(b"RCPT TO:<bad\xff@example.test>\r\n")
        code, reply = client.getreply()
        assert code == 553 and reply.startswith(b"5.1.3 <bad\\udcff@example.test>: ")
        assert client.rcpt(ALICE)[0] == 250


def test_delivery_refused_by_the_spam_classifier_is_550_5_7_1(edge: SmtpEdge, fake_router) -> None:
    detail = "spam: score 11.00 is over the reject threshold 10 (BAYES_SPAM(6.00), DNSBL(5.00))"
    with connect(edge) as client:
        client.mail("carol@example.org")
        assert client.rcpt(ALICE)[0] == 250
        fake_router.fail("Deliver", grpc.StatusCode.FAILED_PRECONDITION, detail, times=1)
        code, reply = client.data(RAW)
    assert (code, reply.decode()) == (550, f"5.7.1 {detail}")
    assert fake_router.delivered == []
