"""The export's mbox format (tidings_cli/mbox.py): mboxrd quoting that gives the bytes back,
the manifest's offsets, and another program's mbox read by its From_ lines and Status fields."""
from __future__ import annotations

from pathlib import Path

import pytest

from tidings_cli import maildir, mbox
from tidings_cli.maildir import Flags, MaildirError

TRICKY = [
    b"Subject: a\r\n\r\nFrom the start\r\n>From quoted\r\n>>From twice\r\nFrom",
    b"Subject: b\n\nbare LF\nFrom \n\n\nends with blank lines\n\n",
    b"From: x@example.test\r\n\r\n\xff\xfe binary\r\n",
    b"no header at all",
]


@pytest.mark.parametrize("raw", TRICKY)
def test_mboxrd_quoting_round_trips(raw: bytes) -> None:
    quoted = mbox.quote(raw)
    assert not any(line.startswith(b"From ") for line in quoted.split(b"\n"))
    assert mbox.unquote(quoted) == raw


def test_written_folders_read_back_exactly_with_the_manifest(tmp_path: Path) -> None:
    inbox = mbox.Writer.create(tmp_path, mbox.folder_file("Inbox", "inbox"))
    projects = mbox.Writer.create(tmp_path, mbox.folder_file("Projects/A"))
    for i, raw in enumerate(TRICKY):
        inbox.append(1_700_000_000_000 + i, f"id{i}", Flags(unread=bool(i % 2), starred=i == 2), raw)
    projects.append(1_600_000_000_999, "p", Flags(), TRICKY[0])
    for writer in (inbox, projects):
        writer.close()
    assert projects.path.name == "Projects.A.mbox"
    assert inbox.path.read_bytes().startswith(b"From MAILER-DAEMON Tue Nov 14 22:13:20 2023\n")
    mbox.write_manifest(tmp_path, "u@example.test", [
        {"file": inbox.path.name, "name": "Inbox", "role": "inbox", "messages": inbox.messages},
        {"file": projects.path.name, "name": "Projects/A", "role": "", "messages": projects.messages}])
    assert mbox.is_mbox_export(tmp_path)
    folders = mbox.read_export(tmp_path)
    assert [(f.name, f.role) for f in folders] == [("Inbox", "inbox"), ("Projects/A", "")]
    assert [e.read() for e in folders[0].entries] == TRICKY
    assert [(e.flags.unread, e.flags.starred) for e in folders[0].entries] == \
        [(False, False), (True, False), (False, True), (True, False)]
    assert folders[1].entries[0].received_ms == 1_600_000_000_999


def test_a_truncated_file_is_refused(tmp_path: Path) -> None:
    writer = mbox.Writer.create(tmp_path, "Inbox.mbox")
    writer.append(1_700_000_000_000, "a", Flags(), b"x" * 100)
    writer.close()
    mbox.write_manifest(tmp_path, "u@example.test", [{"file": "Inbox.mbox", "name": "Inbox", "role": "inbox",
                                                       "messages": writer.messages}])
    writer.path.write_bytes(writer.path.read_bytes()[:50])
    with pytest.raises(MaildirError, match="outside the file"):
        mbox.read_export(tmp_path)


def test_another_programs_mbox_is_split_at_from_lines_with_status_flags(tmp_path: Path) -> None:
    (tmp_path / "Work.Q1.mbox").write_bytes(
        b"From a@example.test Thu Nov 14 22:13:20 2023\nStatus: RO\nX-Status: F\nSubject: one\n\n>From here\n\n"
        b"From b@example.test Thu Nov 14 22:13:21 2023\nSubject: two\n\nbody\n")
    assert mbox.is_mbox_export(tmp_path) and not (tmp_path / maildir.MANIFEST).exists()
    [folder] = mbox.read_export(tmp_path)
    assert (folder.role, folder.name) == ("", "Work/Q1")
    one, two = folder.entries
    assert one.read() == b"Status: RO\nX-Status: F\nSubject: one\n\nFrom here\n"
    assert (one.flags.unread, one.flags.starred) == (False, True)
    assert (two.flags.unread, two.flags.starred, two.read()) == (True, False, b"Subject: two\n\nbody\n")
    assert one.received_ms == 1_700_000_000_000


def test_a_file_that_is_no_mbox_is_refused(tmp_path: Path) -> None:
    (tmp_path / "Inbox.mbox").write_bytes(b"Subject: no separator\n\n")
    with pytest.raises(MaildirError, match="not an mbox"):
        mbox.read_export(tmp_path)


def test_answered_draft_and_keywords_in_the_manifest_and_from_another_programs_headers(tmp_path: Path) -> None:
    ours = tmp_path / "ours"
    ours.mkdir()
    writer = mbox.Writer.create(ours, "Inbox.mbox")
    flags = Flags(unread=False, answered=True, draft=True, keywords=("$Forwarded", "Work"))
    writer.append(1_700_000_000_000, "a", flags, b"Subject: a\n\nx\n")
    writer.close()
    mbox.write_manifest(ours, "u@example.test", [{"file": "Inbox.mbox", "name": "Inbox", "role": "inbox",
                                                   "messages": writer.messages}])
    assert mbox.read_export(ours)[0].entries[0].flags == flags
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "Inbox.mbox").write_bytes(
        b"From a@example.test Thu Nov 14 22:13:20 2023\nStatus: RO\nX-Status: AT\nX-Keywords: $Junk  Work\n"
        b"Subject: one\n\nbody\n")
    assert mbox.read_export(theirs)[0].entries[0].flags == Flags(unread=False, answered=True, draft=True,
                                                                   keywords=("$Junk", "Work"))
