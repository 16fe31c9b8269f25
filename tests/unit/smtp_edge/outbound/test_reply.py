"""Replies: verdicts and RFC 3463 status codes, read back from what is stored."""
from __future__ import annotations

import pytest

from smtp_edge.outbound import reply
from smtp_edge.outbound.reply import Reply, status_of
from smtp_edge.outbound.retry import Verdict


@pytest.mark.parametrize(("code", "verdict"), [(250, Verdict.DELIVERED), (451, Verdict.TEMPORARY),
                                                (421, Verdict.TEMPORARY), (550, Verdict.PERMANENT)])
def test_verdict_by_code_class(code: int, verdict: Verdict) -> None:
    assert Reply(code, "x").verdict is verdict


@pytest.mark.parametrize(("stored", "status"), [
    ("550 5.1.1 no such user", "5.1.1"),
    ("550 no such user", "5.0.0"),
    ("451 4.7.1 greylisted", "4.7.1"),
    ("452 too many", "4.0.0"),
    ("556 5.1.10 null MX", "5.1.10"),
    ("4.4.7 delivery time expired after 5d; last reply: 451 4.7.1 later", "4.4.7"),
    ("dropped by the operator", "5.0.0"),
])
def test_status_from_the_stored_reply(stored: str, status: str) -> None:
    assert status_of(stored) == status


def test_text_is_one_line() -> None:
    assert Reply(550, "5.1.1 <bob@x.org>:\nno such\n user", "mx.x.org").text() == "550 5.1.1 <bob@x.org>: no such user"


def test_our_own_reasons_carry_no_remote_mta() -> None:
    failure = reply.null_mx("nomail.example")
    assert failure.verdict is Verdict.PERMANENT and failure.status == "5.1.10" and failure.remote_mta == ""
    assert reply.no_route("mx[127.0.0.1]:25", "Connection refused").status == "4.4.1"
    assert reply.dns_temporary("x.example", "timed out").verdict is Verdict.TEMPORARY
