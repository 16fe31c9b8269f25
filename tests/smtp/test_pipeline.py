"""The pre-delivery pipeline, without any server (address rules: tests/unit/runtime/test_addresses.py)."""
from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from smtp_edge import replies
from smtp_edge.model import Account
from smtp_edge.pipeline import INBOUND, SUBMISSION, InboundMessage, screen
from smtp_edge.pipeline.trace import Trace, received_header
from tidings_runtime.headers import read_header_section

ALICE = Account(user_id="00000000000000a1", email="alice@example.test")


def verdict(raw: bytes, *, account: Account | None = None, max_size: int = 10_000) -> str | None:
    message = InboundMessage(raw=raw, mail_from="x@example.org", recipients=("alice@example.test",),
                             max_size=max_size, account=account)
    return asyncio.run(screen(message, SUBMISSION if account else INBOUND))


def test_header_section_unfolds_and_stops_at_the_blank_line() -> None:
    raw = b"Subject: one\r\n two\r\nX-A:b\r\n\r\nFrom: not-a-header@body\r\n"
    section = read_header_section(raw)
    assert section.fields == (("subject", b"one two"), ("x-a", b"b"))
    assert section.size == len(b"Subject: one\r\n two\r\nX-A:b\r\n")
    assert section.values("FROM") == []


def test_a_message_without_headers_has_an_empty_section() -> None:
    assert read_header_section(b"just text\r\nmore\r\n").fields == ()


@pytest.mark.parametrize("raw, expected", [
    (b"Subject: a\r\n\r\nbody\r\n", None),
    (b"just a body, no headers\r\n", None),
    (b"Subject: a\0b\r\n\r\nbody\r\n", replies.malformed_message("NUL byte in header section")),
    (b"Subject: a\r\n\r\nNUL in body is allowed \0\r\n", None),
    (b"Subject: a\r\nsubject: b\r\n\r\n", replies.malformed_message("more than one Subject header field")),
    (b"Received: a\r\nReceived: b\r\n\r\n", None),
    (b"X: y\r\n" * 1001 + b"\r\n", replies.malformed_message("header section too large")),
    (b"Subject: a\r\n\r\n" + b"x" * 10_001, replies.MESSAGE_TOO_BIG),
])
def test_inbound_checks(raw: bytes, expected: str | None) -> None:
    assert verdict(raw) == expected


@pytest.mark.parametrize("from_header, expected", [
    (b"Alice <alice@example.test>", None),
    (b"=?utf-8?q?Al=C3=AFce?= <Alice@Example.Test>", None),
    (b"alice@example.test, bob@example.test", replies.sender_not_owned("bob@example.test")),
    (b"", replies.malformed_message("From header field has no address")),
])
def test_submission_from_must_be_owned(from_header: bytes, expected: str | None) -> None:
    assert verdict(b"From: " + from_header + b"\r\n\r\nhi\r\n", account=ALICE) == expected


def test_submission_without_from_is_refused() -> None:
    assert verdict(b"Subject: x\r\n\r\nhi\r\n", account=ALICE) == replies.malformed_message(
        "message has no From header field")


def test_received_header_is_safe_and_folded() -> None:
    trace = Trace(helo="evil\x7f(host);", peer="192.0.2.1", by="mx.example.test",
                  protocol="ESMTP", entry_id="e" * 32, recipient="alice@example.test")
    header = received_header(trace, datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))
    assert header == (b"Received: from evil??host?? ([192.0.2.1])\r\n"
                      b"\tby mx.example.test (Tidings) with ESMTP id " + b"e" * 32 +
                      b"\r\n\tfor <alice@example.test>; Fri, 02 Jan 2026 03:04:05 +0000\r\n")
