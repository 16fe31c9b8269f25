"""The shared header-section reader: fields with their byte spans (folded lines included), a
last line without a line end, and edits that keep every other byte."""
from __future__ import annotations

from tidings_runtime.headers import header_fields, read_header_section, remove_fields

RAW = b"Received: from a\r\n\tby b\r\nSubject: hi\r\nX-Tidings-Spam: score=9\r\n\r\nbody\r\nBcc: no\r\n"


def test_fields_carry_their_spans_and_the_section_ends_at_the_blank_line() -> None:
    fields, size = header_fields(RAW)
    assert [(f.name, f.value) for f in fields] == [("received", b"from a by b"), ("subject", b"hi"),
                                                   ("x-tidings-spam", b"score=9")]
    assert RAW[fields[0].start:fields[0].end] == b"Received: from a\r\n\tby b\r\n"
    assert RAW[size:] == b"\r\nbody\r\nBcc: no\r\n" and read_header_section(RAW).size == size


def test_a_last_field_without_a_line_end_is_a_field_and_can_be_removed() -> None:
    raw = b"To: bob@example.test\r\nBcc: cat@example.test"
    fields, size = header_fields(raw)
    assert [f.name for f in fields] == ["to", "bcc"] and size == len(raw)
    assert remove_fields(raw, lambda name, _: name == "bcc") == b"To: bob@example.test\r\n"
    assert remove_fields(RAW, lambda name, _: name == "x-tidings-spam") == RAW.replace(b"X-Tidings-Spam: score=9\r\n", b"")
    assert remove_fields(RAW, lambda name, _: name == "bcc") is RAW        # a body line is no field
