"""A parse shipped to the replicas comes back as the parse they would have made of the bytes."""
from __future__ import annotations

import dataclasses

import pytest

from bench.ingest_vs_postfix import make_message as peer_message
from bench.mail_flow import make_message as flow_message
from tests.unit.runtime.test_mime import rich_message
from tidings_runtime.mime import parse_mail
from tidings_runtime.parsed_wire import from_wire, to_wire


def _rich() -> bytes:
    m = rich_message()
    m["Cc"] = "c@x.test"
    m["Bcc"] = "b@x.test"
    m["In-Reply-To"] = "<parent@x.test>"
    m["References"] = "<root@x.test> <parent@x.test>"
    return m.as_bytes()


MESSAGES = [
    _rich(),
    "From: Zoë <zoe@exämple.test>\r\nSubject: Grüße\r\n\r\nNachricht ä\r\n".encode(),
    b"garbage without headers",
    b"Subject: html only\r\nContent-Type: text/html\r\n\r\n<p>only <b>html</b></p>\r\n",
    flow_message(7, 4000),
    peer_message(3)[1],
]


@pytest.mark.parametrize("raw", MESSAGES, ids=range(len(MESSAGES)))
def test_the_shipped_parse_is_the_replicas_own(raw: bytes) -> None:
    parsed = parse_mail(raw)
    wire = to_wire(parsed)
    assert wire is not None
    assert from_wire(type(wire).FromString(wire.SerializeToString())) == parsed


def test_a_parse_protobuf_cannot_carry_is_not_shipped() -> None:
    # a lone surrogate (what undecodable bytes become under surrogateescape) is not UTF-8
    parsed = dataclasses.replace(parse_mail(MESSAGES[0]), subject="caf\udce9")
    assert to_wire(parsed) is None                     # the replica parses the bytes itself
