"""The export's Maildir format (tidings_cli/maildir.py): names, flags, folders, the manifest,
and what import refuses before it writes anything."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from tidings_cli import maildir
from tidings_cli.maildir import Flags, MaildirError

RAW = b"From: a@example.test\r\nSubject: hi\r\n\r\nFrom the start\r\n>From here\r\nno newline at the end"


@pytest.mark.parametrize(("flags", "info"), [
    (Flags(unread=True, starred=False), ""),
    (Flags(unread=False, starred=False), "S"),
    (Flags(unread=True, starred=True), "F"),
    (Flags(unread=False, starred=True), "FS"),
    (Flags(unread=False, starred=True, other="RD"), "DFRS"),
])
def test_flags_are_the_standard_letters_in_ascii_order(flags: Flags, info: str) -> None:
    assert flags.info() == info
    base, parsed = maildir.parse_name(f"1700000000.abc.tidings:2,{info}")
    assert base == "1700000000.abc.tidings"
    assert (parsed.unread, parsed.starred) == (flags.unread, flags.starred)
    assert parsed.info() == info


@pytest.mark.parametrize("name", [
    "1700000000.abc.tidings",          # cur/ needs the info suffix
    "1700000000.abc.tidings:1,S",      # experimental info
    "1700000000.abc.tidings:2,SF",     # not in ASCII order
    "1700000000.abc.tidings:2,SS",     # repeated
    "1700000000.abc.tidings:2,F-S",
    ":2,S",
])
def test_malformed_names_are_refused(name: str) -> None:
    with pytest.raises(MaildirError):
        maildir.parse_name(name)


def test_a_file_in_new_without_suffix_is_unread_and_unflagged() -> None:
    assert maildir.parse_name("1700000000.x.host", in_new=True) == ("1700000000.x.host", Flags())


@pytest.mark.parametrize("name", ["Projects/A", "Work", "a.b/c%d", "Ünïcode/~x", "Inbox/Sub"])
def test_custom_folder_directories_round_trip(name: str) -> None:
    directory = maildir.folder_dir(name)
    assert directory.startswith(".") and "/" not in directory
    assert maildir.dir_folder(directory) == ("", name)


def test_projects_a_is_maildirplusplus_nesting() -> None:
    assert maildir.folder_dir("Projects/A") == ".Projects.A"
    assert maildir.folder_dir("v1.2") == ".v1%2E2"


def test_system_folders_have_their_directories() -> None:
    assert [maildir.folder_dir("", role) for role in ("inbox", "sent", "spam", "trash", "archive")] == \
        ["", ".Sent", ".Spam", ".Trash", ".Archive"]
    assert maildir.dir_folder(".Junk") == ("spam", "")      # another server's Spam
    assert maildir.dir_folder(".trash") == ("trash", "")


def test_written_messages_read_back_exactly_with_their_flags_and_times(tmp_path: Path) -> None:
    root = tmp_path / "export"
    maildir.prepare(root)
    inbox = maildir.make_folder(root, "")
    projects = maildir.make_folder(root, maildir.folder_dir("Projects/A"))
    a = maildir.write_message(inbox, 1_700_000_000_123, "0" * 32, Flags(unread=False), RAW)
    b = maildir.write_message(projects, 1_700_000_001_456, "1" * 32, Flags(starred=True), b"x")
    assert not any((root / "tmp").iterdir())
    assert os.stat(inbox / "cur" / a).st_mtime == pytest.approx(1_700_000_000.123)
    maildir.write_manifest(root, "u@example.test", [
        {"dir": "", "id": "inbox", "name": "Inbox", "role": "inbox"},
        {"dir": ".Projects.A", "id": "f00010000", "name": "Projects/A", "role": ""}],
        {a.partition(":")[0]: {"id": "0" * 32, "received_ms": 1_700_000_000_123},
         b.partition(":")[0]: {"id": "1" * 32, "received_ms": 1_700_000_001_456}})
    folders = maildir.read_export(root)
    assert [(f.directory, f.role, f.name) for f in folders] == [("", "inbox", "Inbox"), (".Projects.A", "", "Projects/A")]
    first, second = folders[0].entries[0], folders[1].entries[0]
    assert first.path.read_bytes() == RAW and (first.flags.unread, first.flags.starred) == (False, False)
    assert (second.flags.unread, second.flags.starred) == (True, True)
    assert (first.received_ms, second.received_ms) == (1_700_000_000_123, 1_700_000_001_456)
    assert first.source_id == "0" * 32


def test_the_import_id_is_stable_under_flag_changes_and_moves(tmp_path: Path) -> None:
    entry = maildir.Entry(tmp_path / "x", "", "1700000000.abc.tidings", Flags(), 1_700_000_000_123)
    moved = maildir.Entry(tmp_path / "y", ".Archive", "1700000000.abc.tidings", Flags(unread=False), 1_700_000_000_123)
    entry_id = maildir.import_entry_id(entry, RAW)
    assert entry_id == maildir.import_entry_id(moved, RAW)
    assert int(entry_id[:12], 16) == 1_700_000_000_123 and len(entry_id) == 32
    assert entry_id != maildir.import_entry_id(entry, RAW + b"!")
    other = maildir.Entry(tmp_path / "z", "", "1700000000.abd.tidings", Flags(), 1_700_000_000_123)
    assert entry_id != maildir.import_entry_id(other, RAW)     # same bytes twice in a mailbox: two messages


def test_a_maildir_without_manifest_takes_names_from_directories_and_times_from_file_names(tmp_path: Path) -> None:
    for directory in ("", ".Work.Q1", ".Junk"):
        maildir.make_folder(tmp_path, directory)
    (tmp_path / ".Work.Q1" / "cur" / "1600000000.M1P2.host:2,S").write_bytes(b"a")
    (tmp_path / "new" / "1600000001.M3P4.host").write_bytes(b"b")
    folders = {f.directory: f for f in maildir.read_export(tmp_path)}
    assert (folders[".Work.Q1"].role, folders[".Work.Q1"].name) == ("", "Work/Q1")
    assert folders[".Junk"].role == "spam"
    assert folders[".Work.Q1"].entries[0].received_ms == 1_600_000_000_000
    assert folders[""].entries[0].flags == Flags()


def test_bad_exports_are_refused_before_anything(tmp_path: Path) -> None:
    with pytest.raises(MaildirError, match="no such directory"):
        maildir.read_export(tmp_path / "missing")
    with pytest.raises(MaildirError, match="not a Maildir"):
        maildir.read_export(tmp_path)
    maildir.make_folder(tmp_path, "")
    (tmp_path / "cur" / "1600000000.bad").write_bytes(b"a")
    with pytest.raises(MaildirError, match="':2,FLAGS'"):
        maildir.read_export(tmp_path)


def test_export_refuses_a_directory_that_holds_something(tmp_path: Path) -> None:
    (tmp_path / "something").write_text("x")
    with pytest.raises(MaildirError, match="not an empty directory"):
        maildir.prepare(tmp_path)
    maildir.prepare(tmp_path / "new" / "deeper")


def test_a_foreign_manifest_version_is_refused(tmp_path: Path) -> None:
    maildir.make_folder(tmp_path, "")
    (tmp_path / maildir.MANIFEST).write_text('{"format": "tidings-maildir", "version": 99}')
    with pytest.raises(MaildirError, match="version 99"):
        maildir.read_export(tmp_path)


def test_keywords_are_letters_named_in_the_folders_dovecot_keywords(tmp_path: Path) -> None:
    names = maildir.keyword_letters(["Work", "$Forwarded", "work", "$label1"])
    assert names == ["$Forwarded", "$label1", "Work"]
    folder = maildir.make_folder(tmp_path, "")
    maildir.write_keywords(folder, names)
    assert (folder / maildir.KEYWORDS_FILE).read_text() == "0 $Forwarded\n1 $label1\n2 Work\n"
    flags = Flags(unread=False, answered=True, draft=True, keywords=("$Forwarded", "Work", "NoLetter"))
    name = maildir.write_message(folder, 1_700_000_000_000, "a" * 32, flags, RAW, maildir.letter_map(names))
    assert name.endswith(":2,DRSac")
    [inbox] = maildir.read_export(tmp_path)
    assert inbox.entries[0].flags == Flags(unread=False, answered=True, draft=True, keywords=("$Forwarded", "Work"))


def test_keywords_past_26_letters_come_back_from_the_manifest(tmp_path: Path) -> None:
    many = [f"k{i:02}" for i in range(30)]
    names = maildir.keyword_letters(many)
    assert len(names) == 26
    folder = maildir.make_folder(tmp_path, "")
    maildir.write_keywords(folder, names)
    name = maildir.write_message(folder, 1_700_000_000_000, "a" * 32, Flags(keywords=tuple(many)), RAW,
                                 maildir.letter_map(names))
    maildir.write_manifest(tmp_path, "u@example.test", [{"dir": "", "id": "inbox", "name": "Inbox", "role": "inbox"}],
                           {name.partition(":")[0]: {"id": "a" * 32, "received_ms": 1_700_000_000_000,
                                                     "more_keywords": many[26:]}})
    assert maildir.read_export(tmp_path)[0].entries[0].flags.keywords == tuple(many)


def test_trashed_and_unnamed_keyword_letters_are_not_carried() -> None:
    _, flags = maildir.parse_name("1700000000.x.host:2,PSTb", keywords={"a": "$Junk"})
    assert (flags.unread, flags.keywords, flags.other) == (False, (), "PTb")


@pytest.mark.parametrize("content, message", [
    ("zero $Junk\n", "not 'N keyword'"),
    ("26 $Junk\n", "not 'N keyword'"),
    ("0 bad(keyword\n", "not an IMAP atom"),
])
def test_a_bad_dovecot_keywords_file_is_refused(tmp_path: Path, content: str, message: str) -> None:
    maildir.make_folder(tmp_path, "")
    (tmp_path / maildir.KEYWORDS_FILE).write_text(content)
    with pytest.raises(MaildirError, match=message):
        maildir.read_export(tmp_path)
