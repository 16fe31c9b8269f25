"""Building the MIME message of POST /v1/messages (no router involved)."""
from __future__ import annotations

import base64
import os
import re
from email import message_from_bytes, policy

import pytest

from http_edge.compose import (
    AttachmentData,
    ComposeError,
    Draft,
    Mailbox,
    MessageTooLarge,
    compose,
    parse_mailbox,
)
from tidings_runtime.addresses import AddressError

ANN = Mailbox("ann@example.test")
BOB = Mailbox("bob@example.test", "Bob Lee")
CAT = Mailbox("cat@example.test")
DAN = Mailbox("dan@example.test")
LIMIT = 25 * 1024 * 1024


def parse(raw: bytes):
    return message_from_bytes(raw, policy=policy.default)


def test_headers_and_bcc_only_in_envelope() -> None:
    out = compose(Draft(sender=ANN, to=[BOB], cc=[CAT], bcc=[DAN, Mailbox("BOB@example.test")],
                        subject="Grüße", text="hello"), max_bytes=LIMIT)
    msg = parse(out.raw)
    assert msg["From"] == "ann@example.test"
    assert msg["To"] == "Bob Lee <bob@example.test>"
    assert msg["Cc"] == "cat@example.test"
    assert msg["Bcc"] is None and b"dan@" not in out.raw
    assert msg["Subject"] == "Grüße"
    assert msg["Message-ID"] == out.message_id and out.message_id.endswith("@example.test>")
    assert msg["Date"] is not None and msg["In-Reply-To"] is None
    # to, cc, bcc once each (a bcc repeating a to address is not sent twice)
    assert out.envelope_recipients == ["bob@example.test", "cat@example.test", "dan@example.test"]
    assert msg.get_content().rstrip("\r\n") == "hello"


def test_crlf_line_ends_only() -> None:
    out = compose(Draft(sender=ANN, to=[BOB], text="a\nb\n", html="<p>a</p>",
                        attachments=[AttachmentData("x.bin", "application/pdf",
                                                    base64.b64encode(b"z" * 5000).decode())]), max_bytes=LIMIT)
    assert re.search(rb"[^\r]\n", out.raw) is None


def test_attachments_round_trip_with_alternative() -> None:
    blobs = {"a.bin": os.urandom(70_000), "résumé.pdf": os.urandom(1000), "n.txt": b"line\r\n"}
    types = {"a.bin": "application/octet-stream", "résumé.pdf": "application/pdf", "n.txt": "text/plain"}
    wrapped = "\n".join(re.findall(".{1,76}", base64.b64encode(blobs["a.bin"]).decode()))  # MIME-style wrapping
    atts = [AttachmentData("a.bin", types["a.bin"], wrapped)] + [
        AttachmentData(name, types[name], base64.b64encode(blobs[name]).decode()) for name in ("résumé.pdf", "n.txt")
    ]
    msg = parse(compose(Draft(sender=ANN, to=[BOB], text="see attached", html="<b>see</b>", attachments=atts),
                        max_bytes=LIMIT).raw)
    assert msg.get_content_type() == "multipart/mixed"
    body = msg.get_body(("html",))
    assert body is not None and "<b>see</b>" in body.get_content()
    got = {part.get_filename(): (part.get_content_type(), part.get_payload(decode=True))
           for part in msg.iter_attachments()}
    assert got == {name: (types[name], data) for name, data in blobs.items()}


def test_reply_headers() -> None:
    msg = parse(compose(Draft(sender=ANN, to=[BOB], in_reply_to="<p@x>", references=["<r@x>"]),
                        max_bytes=LIMIT).raw)
    assert msg["In-Reply-To"] == "<p@x>"
    assert str(msg["References"]).split() == ["<r@x>", "<p@x>"]


def test_bad_base64_and_size_limit() -> None:
    with pytest.raises(ComposeError, match="base64"):
        compose(Draft(sender=ANN, to=[BOB], attachments=[AttachmentData("a", "text/plain", "@@@")]), max_bytes=LIMIT)
    with pytest.raises(MessageTooLarge):
        compose(Draft(sender=ANN, to=[BOB], text="x" * 5000), max_bytes=1000)
    big = base64.b64encode(b"x" * 3000).decode()
    with pytest.raises(MessageTooLarge):
        compose(Draft(sender=ANN, to=[BOB], attachments=[AttachmentData("a", "text/plain", big)]), max_bytes=2000)
    with pytest.raises(ComposeError, match="recipient"):
        compose(Draft(sender=ANN, to=[]), max_bytes=LIMIT)


@pytest.mark.parametrize(
    ("text", "mailbox"),
    [
        ("ann@example.test", Mailbox("ann@example.test")),
        ("  Ann@EXAMPLE.Test ", Mailbox("Ann@example.test")),
        ("Ann Lee <ann@example.test>", Mailbox("ann@example.test", "Ann Lee")),
        ('"Lee, Ann" <ann@example.test>', Mailbox("ann@example.test", "Lee, Ann")),
    ],
)
def test_parse_mailbox(text: str, mailbox: Mailbox) -> None:
    assert parse_mailbox(text) == mailbox


@pytest.mark.parametrize("text", ["", "ann", "ann@", "@example.test", "ann@localhost", "a b@example.test",
                                  "Ann <ann@example.test", "ann@exa_mple.test", "Evil\r\nBcc: x <a@example.test>"])
def test_parse_mailbox_rejects(text: str) -> None:
    with pytest.raises((ComposeError, AddressError)):
        parse_mailbox(text)
