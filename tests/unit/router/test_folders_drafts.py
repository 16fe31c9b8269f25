"""The router's rules for custom folder names, and the bytes a draft is sent as."""
from __future__ import annotations

import pytest

from router.drafts import outgoing
from router.errors import AlreadyExists, InvalidArgument
from router.folders import CustomFolder, _taken, folder_name
from tidings_runtime.mime import parse_mail


def test_names_are_trimmed_nfc_and_checked() -> None:
    assert folder_name("  Projects/2026 ") == "Projects/2026"
    assert folder_name("Cafe\u0301") == "Caf\u00e9"
    assert folder_name("x" * 128) == "x" * 128
    for bad in ("", "   ", "x" * 129, "a\nb", "a\tb", "a\x00b", "a\u2028b", "/a", "a/", "a//b", "a/ /b"):
        with pytest.raises(InvalidArgument):
            folder_name(bad)


def test_names_are_unique_ignoring_case_system_folders_included() -> None:
    held = {"f00010001": CustomFolder("f00010001", "Work"), "f00010002": CustomFolder("f00010002", "Old", True)}
    for taken in ("work", "WORK", "Inbox", "trash"):
        with pytest.raises(AlreadyExists, match="^folder_exists: "):
            _taken(taken, held)
    _taken("old", held)                     # a deleted folder's name is free
    _taken("Work", held, but="f00010001")   # renaming to itself (another case) is fine
    _taken("Works", held)


RAW = (b"From: Ann <ann@example.test>\r\nTo: bob@example.test\r\nBcc: Cat <cat@example.test>,\r\n"
       b" dan@example.test\r\nSubject: hi\r\nDate: Mon, 01 Jan 2024 00:00:00 +0000\r\n"
       b"Message-ID: <d1@example.test>\r\n\r\nbody\r\nBcc: not a header\r\n")


def test_a_draft_is_sent_without_bcc_and_dated_now() -> None:
    sent = outgoing(RAW, 1_700_000_000_000)
    head, _, body = sent.partition(b"\r\n\r\n")
    assert b"cat@example.test" not in head and b"dan@example.test" not in head
    assert body == b"body\r\nBcc: not a header\r\n"
    assert head.count(b"Date:") == 1 and b"Date: Tue, 14 Nov 2023 22:13:20 GMT" in head
    parsed = parse_mail(sent)
    assert (parsed.rfc822_msgid, parsed.subject, parsed.to) == ("d1@example.test", "hi", (("", "bob@example.test"),))
    assert outgoing(sent, 1_700_000_000_000) == sent      # the same entry id, the same bytes


def test_a_header_only_draft_gets_its_empty_line() -> None:
    sent = outgoing(b"To: bob@example.test\r\nBcc: cat@example.test", 0)
    assert sent == b"To: bob@example.test\r\nDate: Thu, 01 Jan 1970 00:00:00 GMT\r\n\r\n"
