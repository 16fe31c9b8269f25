"""MIME parsing: the fields the model and the index take from raw mail, for well-formed and broken input."""
from __future__ import annotations

from email.message import EmailMessage

from hypothesis import given
from hypothesis import strategies as st

from tidings_runtime.mime import (
    _SPACE,
    SNIPPET_CHARS,
    find_attachment,
    parse_mail,
    parse_with_candidates,
    snippet_of,
    thread_candidates,
)


def rich_message() -> EmailMessage:
    """Encoded words, a quoted display name, alternatives and two attachments."""
    m = EmailMessage()
    m["From"] = "=?utf-8?q?Ren=C3=A9e_D=C3=BCrr?= <renee@example.test>"
    m["To"] = 'a@x.test, "Smith, J" <j@x.test>'
    m["Subject"] = "=?utf-8?b?w4fDoCB2YQ==?= and more"
    m["Message-ID"] = "<abc@x.test>"
    m.set_content("héllo wörld")
    m.add_alternative("<p>html &amp; part</p>", subtype="html")
    m.add_attachment(b"%PDF-1.4 data", maintype="application", subtype="pdf", filename="rapport été.pdf")
    m.add_attachment("a,b\n1,2\n", subtype="csv", filename="t.csv")
    return m


def test_encoded_words_attachments_and_alternatives() -> None:
    m = rich_message()
    parsed = parse_mail(m.as_bytes())
    assert parsed.from_ == (("Renée Dürr", "renee@example.test"),)
    assert parsed.to == (("", "a@x.test"), ("Smith, J", "j@x.test"))
    assert parsed.subject == "Çà va and more"
    assert parsed.rfc822_msgid == "abc@x.test"
    assert parsed.text.strip() == "héllo wörld" and "html &amp; part" in parsed.html
    assert [(a.filename, a.content_type) for a in parsed.attachments] == [
        ("rapport été.pdf", "application/pdf"), ("t.csv", "text/csv")]
    assert parsed.attachment_texts == (None, "a,b\n1,2\n")
    found = find_attachment(m.as_bytes(), parsed.attachments[0].id)
    assert found is not None and found[1] == b"%PDF-1.4 data"


def test_raw_8bit_headers_are_read_as_utf8() -> None:
    raw = ("From: Zoë <zoe@exämple.test>\r\nSubject: Grüße aus Köln\r\n"
           "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nNachricht ä\r\n").encode()
    parsed = parse_mail(raw)
    assert parsed.from_ == (("Zoë", "zoe@exämple.test"),)
    assert parsed.subject == "Grüße aus Köln"
    assert parsed.text.strip() == "Nachricht ä"


def test_rfc2231_and_encoded_word_file_names_and_transfer_encodings() -> None:
    raw = (b'Content-Type: multipart/mixed; boundary="b"\r\nFrom: a@b.test\r\nSubject: folded\r\n  subject line\r\n\r\n'
           b"--b\r\nContent-Type: text/plain; charset=x-unknown\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
           b"caf=C3=A9 =\r\nsoft\r\n"
           b"--b\r\nContent-Type: application/octet-stream\r\n"
           b"Content-Disposition: attachment; filename*=utf-8''na%C3%AFve.bin\r\n"
           b"Content-Transfer-Encoding: base64\r\n\r\naGVsbG8=\r\n"
           b'--b\r\nContent-Type: image/png; name="=?utf-8?q?bild=C3=A4.png?="\r\n\r\nPNG\r\n--b--\r\n')
    parsed = parse_mail(raw)
    assert parsed.subject == "folded subject line"
    assert parsed.text.startswith("café soft")
    assert [(a.filename, a.size) for a in parsed.attachments] == [("naïve.bin", 5), ("bildä.png", 3)]


def test_broken_mail_is_parsed_without_raising() -> None:
    raw = (b'From: "unterminated <a@b.test\r\nTo: ;;;, a@b@c.test, ok@x.test\r\n'
           b"Message-ID: <m1@x> <m2@x>\r\nReferences: <r1@x>\r\n <r2@x>\r\nIn-Reply-To: <r2@x>\r\n\r\nx\r\n")
    parsed = parse_mail(raw)
    assert ("", "ok@x.test") in parsed.to and all(not e.startswith("@") for _, e in parsed.to)
    assert parsed.rfc822_msgid == "m1@x" and parsed.references == ("r1@x", "r2@x") and parsed.in_reply_to == "r2@x"
    assert thread_candidates(raw) == (["r2@x", "r1@x"], "r1@x")
    assert parse_with_candidates(raw) == (parsed, *thread_candidates(raw))      # one parse, the same answers
    reply = b"In-Reply-To: <p1@x> <p2@x>\r\nSubject: re\r\n\r\nbody\r\n"
    assert parse_with_candidates(reply)[1:] == thread_candidates(reply) == (["p1@x", "p2@x"], "p1@x")
    assert parse_mail(b"garbage without headers").subject == ""


# words and every kind of whitespace (Unicode's too), so the prefix's cut falls inside words,
# inside runs and across the snippet's length; a long blank tail makes the end decide
_TEXT = st.text(alphabet="ab\u00e9 \t\r\n\u00a0\u2003\x1c", max_size=2500)
_TAIL = st.sampled_from(["", " " * 3000, "\n" * 700 + "z"])


@given(_TEXT, _TAIL)
def test_the_snippet_from_a_prefix_is_the_snippet_of_the_whole_text(text: str, tail: str) -> None:
    assert snippet_of(text + tail) == _SPACE.sub(" ", text + tail).strip()[:SNIPPET_CHARS]
    for edge in ("a" * (SNIPPET_CHARS - 1) + " " + tail, "a" * (SNIPPET_CHARS - 1) + "  " + "b" * 300,
                 " " * 999 + "a" * SNIPPET_CHARS + " b" + tail):
        assert snippet_of(edge) == _SPACE.sub(" ", edge).strip()[:SNIPPET_CHARS]
