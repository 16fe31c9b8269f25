"""The header fields kept beside the summary (tidings_runtime/kept_headers.py) answer ENVELOPE and
HEADER.FIELDS of kept names byte for byte as the whole message does, and are not kept where the
parsers could read the header differently."""
from __future__ import annotations

import pytest

from imap_edge import message as mime
from imap_edge.protocol.fetch import Section
from imap_edge.responses import Encoder
from tidings_runtime.kept_headers import KEPT, LIMIT, covers, kept

MUTT = ("DATE", "FROM", "SENDER", "SUBJECT", "TO", "CC", "MESSAGE-ID", "REFERENCES", "CONTENT-TYPE",
        "CONTENT-DESCRIPTION", "IN-REPLY-TO", "REPLY-TO", "LINES", "LIST-POST", "X-LABEL")
THUNDERBIRD = ("From", "To", "Cc", "Bcc", "Subject", "Date", "Message-ID", "Priority", "X-Priority", "References",
               "Newsgroups", "In-Reply-To", "Content-Type", "Reply-To")

MESSAGES = [
    b"Received: from a by b; Mon, 1 Dec 2026 10:00:00 +0000\r\nDate: Mon, 1 Dec 2026 10:00:00 +0000\r\n"
    b"From: Ann Example <ann@example.org>\r\nTo: bob@example.test,\r\n\tcarol@example.test\r\n"
    b"Subject: =?utf-8?q?caf=C3=A9?= and\r\n more\r\nMessage-ID: <1@example.org>\r\nX-Spam: no\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n\r\nbody\r\n",
    b"From: a@example.org\nTo: b@example.test\nCc: c@example.test\nCc: d@example.test\nSubject: lf only\n"
    b"In-Reply-To: <0@example.org>\nReferences: <0@example.org>\n <00@example.org>\n\nbody\n",
    b"DKIM-Signature: v=1; a=rsa-sha256;\r\n b=abc\r\nSender: list@example.org\r\nReply-To: r@example.org\r\n"
    b"From: \"Last, First\" <f@example.org>\r\nSubject: no body\r\n",
    b"\r\nno header at all\r\n",
    b"Subject: \xe9t\xe9 8-bit\r\nFrom: x@example.org\r\nX-Label: one\r\nList-Post: <mailto:l@example.org>\r\n\r\n",
]


@pytest.mark.parametrize("raw", MESSAGES)
def test_kept_fields_answer_as_the_whole_message(raw: bytes) -> None:
    block = kept(raw)
    assert block is not None
    whole, headers = mime.parse(raw), mime.parse(block + b"\r\n")
    encoder = Encoder()
    assert encoder.envelope(mime.envelope(headers.headers)) == encoder.envelope(mime.envelope(whole.headers))
    for names in (MUTT, THUNDERBIRD, ("subject",), ("X-LABEL", "Lines")):
        spec = Section((), "HEADER.FIELDS", names)
        assert covers(names)
        assert mime.section(headers, block, spec) == mime.section(whole, raw, spec)


def test_only_kept_fields_are_kept_in_their_order() -> None:
    block = kept(MESSAGES[0])
    assert block is not None
    assert b"Received:" not in block and b"X-Spam" not in block
    assert block.startswith(b"Date: ") and b"To: bob@example.test,\r\n\tcarol@example.test\r\n" in block
    assert not covers(("Subject", "X-Spam")) and "x-spam" not in KEPT


@pytest.mark.parametrize("raw", [
    b"Subject: a\r\nthis line is no field\r\nFrom: b@example.org\r\n\r\nbody",   # the parsers stop differently
    b"Subject : spaced\r\nFrom: b@example.org\r\n\r\n",                            # Python's parser takes no space
    b"From x@example.org Mon Dec  1 10:00:00 2026\r\nSubject: mbox\r\n\r\n",     # an mbox From_ line
    b"Subject: bare\rCR\r\n\r\n",
    b"Subject: no line end",
    b"To: " + b"a@example.org, " * (LIMIT // 15 + 1) + b"\r\n\r\n",            # too large to keep
])
def test_not_kept_where_the_readers_could_differ(raw: bytes) -> None:
    assert kept(raw) is None
