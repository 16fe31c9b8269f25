"""`tidings export` and `tidings import` on real processes (issue 21, "Backup and restore"): a
mailbox with messages in Inbox, Archive, a custom "Projects/A", Trash and Sent (one with the
router's X-Tidings-Spam field, one of 300 KB), some read, some starred, answered, drafts, with
keywords (30 in Trash: more than Maildir's 26 letters), exported as a Maildir (and as mbox) and
imported into another user, gives the same messages byte for byte (GetRawMessage), with the same
flags and keywords, folders and received times; \\Deleted is not carried; a re-import adds
nothing; nothing is sent; bad input is refused before anything is written."""
from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster.grid import Grid, running
from tidings.v1 import mail_pb2, queue_pb2, types_pb2
from tidings_cli import maildir
from tidings_runtime.ids import new_entry_id

SOURCE, TARGET, FRIEND = "leaving@example.test", "arriving@example.test", "friend@example.test"
BY_MBOX = "by-mbox@example.test"
# folder name, raw, unread, starred, received ms, answered, draft, keywords (lower-cased, sorted)
Row = tuple[str, bytes, bool, bool, int, bool, bool, tuple[str, ...]]
MANY = [f"k{i:02}" for i in range(30)]          # one Trash message's keywords


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Grid]:
    with running(tmp_path_factory.mktemp("export"), edges=()) as grid:
        for email in (SOURCE, TARGET, FRIEND, BY_MBOX):
            grid.add_user(email)
        yield grid


def tidings(grid: Grid, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tidings_cli", "--router", grid.router_address, *args],
                          check=False, capture_output=True, text=True, timeout=120)


def user_id(grid: Grid, email: str) -> str:
    answer = grid.mail.CheckRecipient(mail_pb2.CheckRecipientRequest(address=email), timeout=30)
    return str(answer.account.user_id)


def message(n: int, body: bytes = b"") -> bytes:
    """Bytes a careless format would change: From_ lines, CRLF and bare LF, 8-bit, no final newline."""
    return (f"From: Someone <someone{n}@elsewhere.test>\r\nTo: {SOURCE}\r\nSubject: message {n}\r\n"
            f"Message-ID: <m{n}@elsewhere.test>\r\n\r\n").encode() + \
        b"From the top\r\n>From quoted\nbare LF line\r\n\xe9t\xe9 8-bit\r\n" + body + f"end {n}".encode()


def rows(grid: Grid, email: str) -> Counter[Row]:
    """Every message of the user's mailbox as a Row."""
    uid = user_id(grid, email)
    found: Counter[Row] = Counter()
    for folder in grid.mail.ListFolders(mail_pb2.UserRef(user_id=uid), timeout=30).folders:
        cursor = ""
        while True:
            page = grid.mail.ListMessages(mail_pb2.ListMessagesRequest(
                user_id=uid, folder_id=folder.id, limit=200, cursor=cursor), timeout=30)
            for s in page.messages:
                raw = grid.mail.GetRawMessage(mail_pb2.MessageRef(user_id=uid, id=s.id), timeout=30).raw
                found[(folder.name, bytes(raw), s.unread, s.starred, s.received_ms, s.answered, s.draft,
                       tuple(sorted(k.lower() for k in s.keywords)))] += 1
            if not page.next_cursor:
                break
            cursor = page.next_cursor
    return found


def folder_names(grid: Grid, email: str) -> set[str]:
    listing = grid.mail.ListFolders(mail_pb2.UserRef(user_id=user_id(grid, email)), timeout=30)
    return {f.name for f in listing.folders}


@pytest.fixture(scope="module")
def filled(grid: Grid) -> Counter[Row]:
    """The source mailbox: 5 per system folder and in Projects/A (one of them 300 KB, stored as
    a blob), a screened one (with the router's X-Tidings-Spam field), a Sent copy; read and
    starred mixed; and an empty custom folder."""
    uid = user_id(grid, SOURCE)
    projects = grid.mail.CreateFolder(mail_pb2.CreateFolderRequest(user_id=uid, name="Projects/A"), timeout=30)
    grid.mail.CreateFolder(mail_pb2.CreateFolderRequest(user_id=uid, name="Empty.one"), timeout=30)
    n = 0
    for folder in ("inbox", "archive", "trash", projects.id):
        for i in range(5):
            n += 1
            body = b"x" * 300_000 + b"\r\n" if n == 7 else b""
            delivery = grid.mail.Deliver(mail_pb2.DeliverRequest(
                entry_id=new_entry_id(), raw=message(n, body), recipients=[SOURCE],
                folder_id=folder if folder != projects.id else "inbox"), timeout=30).deliveries[0]
            change = mail_pb2.UpdateRequest(user_id=uid, id=delivery.id)
            if folder == projects.id:
                change.folder_id = projects.id
            if i % 2:
                change.unread = False
            if i % 3 == 0:
                change.starred = True
            if i == 1:
                change.answered = True
                change.add_keywords.extend(["$Forwarded", "Work"])
            if i == 2:
                change.draft = True
                change.add_keywords.append("$label1")
            if i == 3:
                change.deleted = True           # marked for EXPUNGE: not exported
            if i == 4 and folder == "trash":
                change.add_keywords.extend(MANY)
            grid.mail.UpdateMessage(change, timeout=30)
    screened = types_pb2.Screening(screened=True, sender_domain="elsewhere.test", client_ip="192.0.2.1")
    grid.mail.Deliver(mail_pb2.DeliverRequest(entry_id=new_entry_id(), raw=message(100), recipients=[SOURCE],
                                              screening=screened), timeout=30)
    grid.mail.Deliver(mail_pb2.DeliverRequest(
        entry_id=new_entry_id(), raw=f"From: {SOURCE}\r\nTo: {FRIEND}\r\nSubject: sent\r\n\r\nhello".encode(),
        recipients=[FRIEND], sender_user_id=uid, mail_from=SOURCE), timeout=30)
    found = rows(grid, SOURCE)
    assert sum(found.values()) == 22
    assert {name for name, *_ in found} >= {"Inbox", "Archive", "Trash", "Projects/A", "Sent"}
    assert any(b"X-Tidings-Spam" in raw for _, raw, *_ in found)
    assert {(unread, starred) for _, _, unread, starred, *_ in found} == {(True, True), (True, False),
                                                                          (False, True), (False, False)}
    assert {(answered, draft) for *_, answered, draft, _ in found} == {(False, False), (True, False), (False, True)}
    assert tuple(MANY) in {kw for *_, kw in found} and ("$forwarded", "work") in {kw for *_, kw in found}
    return found


@pytest.fixture(scope="module")
def exported(grid: Grid, filled: Counter[Row], tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("exports") / "leaving"
    done = tidings(grid, "export", SOURCE, "--to", str(path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "exported 22 messages in 8 folders" in done.stdout
    return path


def test_the_export_is_a_maildir_with_exact_bytes_and_standard_flags(exported: Path, filled: Counter[Row]) -> None:
    assert (exported / maildir.MANIFEST).is_file()
    assert (exported / ".Projects.A" / "cur").is_dir() and (exported / ".Empty%2Eone" / "cur").is_dir()
    files = [p for d in [exported, *exported.glob(".*")] if (d / "cur").is_dir() for p in (d / "cur").iterdir()]
    assert sorted(p.read_bytes() for p in files) == sorted(raw for _, raw, *_ in filled.elements())
    assert all(maildir.parse_name(p.name) for p in files)
    seen = {p.name.rpartition(":2,")[2] for p in files}
    # R answered, D draft, a-z keywords numbered in the folder's dovecot-keywords (Dovecot's way):
    # $Forwarded a, $label1 b, Work c; in Trash k00-k23 are c-z and Work and k24-k29 have no letter
    assert {"", "S", "F", "FS", "RSac", "Db", "RSa", "cdefghijklmnopqrstuvwxyz"} <= seen
    assert not any("T" in info for info in seen)
    assert (exported / maildir.KEYWORDS_FILE).read_text() == "0 $Forwarded\n1 $label1\n2 Work\n"
    assert len((exported / ".Trash" / maildir.KEYWORDS_FILE).read_text().splitlines()) == 26
    manifest = json.loads((exported / maildir.MANIFEST).read_text())
    assert sorted(m["more_keywords"] for m in manifest["messages"].values() if "more_keywords" in m) == \
        [["Work"], MANY[24:]]


def test_import_into_another_user_gives_the_same_messages_flags_and_folders(
        grid: Grid, exported: Path, filled: Counter[Row]) -> None:
    friend_before = rows(grid, FRIEND)
    done = tidings(grid, "import", TARGET, "--from", str(exported), "--jobs", "4")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "imported 22 messages" in done.stdout and "0 already there" in done.stdout
    assert rows(grid, TARGET) == filled
    assert folder_names(grid, TARGET) == folder_names(grid, SOURCE)     # the empty folder too
    # sent nothing: no copy to the friend, nothing queued
    assert rows(grid, FRIEND) == friend_before
    queued = grid.queue.ListItems(queue_pb2.ListQueueRequest(), timeout=30)
    assert not list(queued.items)


def test_a_second_import_adds_nothing(grid: Grid, exported: Path, filled: Counter[Row]) -> None:
    done = tidings(grid, "import", TARGET, "--from", str(exported))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "imported 0 messages" in done.stdout and "22 already there" in done.stdout
    assert rows(grid, TARGET) == filled
    assert sorted(folder_names(grid, TARGET)) == sorted(folder_names(grid, SOURCE))


def test_mbox_export_and_import_give_the_same_messages_too(
        grid: Grid, filled: Counter[Row], tmp_path: Path) -> None:
    path = tmp_path / "leaving-mbox"
    done = tidings(grid, "export", SOURCE, "--to", str(path), "--format", "mbox")
    assert done.returncode == 0, done.stdout + done.stderr
    assert (path / "Projects.A.mbox").is_file() and (path / "Inbox.mbox").is_file()
    assert b"\nFrom the top" not in (path / "Inbox.mbox").read_bytes()     # quoted: >From the top
    for _ in range(2):      # the second run adds nothing
        done = tidings(grid, "import", BY_MBOX, "--from", str(path))
        assert done.returncode == 0, done.stdout + done.stderr
        assert rows(grid, BY_MBOX) == filled
    assert "imported 0 messages" in done.stdout and "22 already there" in done.stdout


def test_bad_input_is_refused_with_nothing_written(grid: Grid, exported: Path, tmp_path: Path) -> None:
    before = rows(grid, FRIEND)
    unknown = tidings(grid, "import", "nobody@example.test", "--from", str(exported))
    assert unknown.returncode == 2 and "nobody@example.test: not a user" in unknown.stderr
    missing = tidings(grid, "import", FRIEND, "--from", str(tmp_path / "missing"))
    assert missing.returncode == 2 and "no such directory" in missing.stderr
    broken = tmp_path / "broken"
    maildir.make_folder(broken, "")
    maildir.make_folder(broken, ".Fresh")
    (broken / "cur" / "1700000000.good.host:2,S").write_bytes(message(1))
    (broken / ".Fresh" / "cur" / "1700000000.bad.host:2,SF").write_bytes(message(2))
    refused = tidings(grid, "import", FRIEND, "--from", str(broken))
    assert refused.returncode == 2 and "not in ASCII order" in refused.stderr
    assert rows(grid, FRIEND) == before and "Fresh" not in folder_names(grid, FRIEND)
    not_empty = tidings(grid, "export", SOURCE, "--to", str(exported))
    assert not_empty.returncode == 2 and "not an empty directory" in not_empty.stderr
    stranger = tidings(grid, "export", "nobody@example.test", "--to", str(tmp_path / "out"))
    assert stranger.returncode == 2 and not (tmp_path / "out").exists()
