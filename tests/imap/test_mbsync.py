"""Interop with a real IMAP client from Debian: mbsync (isync) against the IMAP edge of a real
cluster, over STARTTLS trusting the edge's development certificate (CertificateFile).

A mailbox of MESSAGES messages, delivered over gRPC, is synced down to a Maildir: exactly those
messages, each byte for byte but for what mbsync itself changes (it stores a Maildir with LF
line ends, and adds an ``X-TUID`` header to every message it copies, to find it again after an
interrupted run), a sample compared with GetRawMessage. A flag set in the Maildir (the file
renamed with F, as mbsync's Maildir does) reaches the store as a star; a message deleted on the
server leaves the Maildir on the next sync. ``\\Answered`` and ``\\Draft`` set in the Maildir
(R and D) are kept by the store and are still on the files after the sync after the one that
pushed them (they were lost while only the session kept them). `make setup` installs isync;
without it the module skips.
"""
from __future__ import annotations

import email
import itertools
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.cluster.grid import PASSWORD, Grid, running
from tidings.v1 import mail_pb2
from tidings_client import new_entry_id

MESSAGES = 1000  # the mailbox synced down (issue 20: "a mailbox of 1,000 messages")
SAMPLE = 25      # of them compared with GetRawMessage as well
MBSYNC = shutil.which("mbsync")

pytestmark = [pytest.mark.timeout(300),
              pytest.mark.skipif(MBSYNC is None, reason="mbsync is not installed (make setup installs isync)")]


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Grid]:
    with running(Path(tmp_path_factory.mktemp("mbsync-grid")), edges=("imap",), virus_scan=False) as g:
        yield g


def message(number: int, to: str) -> bytes:
    lines = [f"From: Sender {number} <sender{number}@example.org>", f"To: {to}",
             f"Subject: message {number} of {MESSAGES}", f"Message-ID: <mbsync-{number}-{new_entry_id()}@example.org>",
             "Date: Tue, 01 Dec 2026 10:00:00 +0000", "MIME-Version: 1.0", "Content-Type: text/plain; charset=utf-8",
             "", f"Body of message {number}.", *(f"line {i} " + "x" * (number % 70) for i in range(number % 7)), ""]
    return "\r\n".join(lines).encode()


def deliver_all(grid: Grid, to: str) -> dict[str, tuple[str, bytes]]:
    """MESSAGES messages delivered concurrently: Message-ID -> (message id, raw bytes)."""
    def one(number: int) -> tuple[str, tuple[str, bytes]]:
        raw = message(number, to)
        answer = grid.mail.Deliver(mail_pb2.DeliverRequest(entry_id=new_entry_id(), raw=raw, recipients=[to]),
                                   timeout=60)
        return _message_id(raw), (str(answer.deliveries[0].id), raw)

    with ThreadPoolExecutor(32) as pool:
        return dict(pool.map(one, range(1, MESSAGES + 1)))


TUID = re.compile(rb"\nX-TUID: [A-Za-z0-9+/]{12}\n")


def as_imap_sent(stored: bytes) -> bytes:
    """A Maildir file as the server sent it: without the X-TUID line mbsync adds at the end of the
    header (exactly one), CRLF line ends again."""
    header, separator, body = stored.partition(b"\n\n")
    assert len(TUID.findall(header + b"\n")) == 1, header
    return (TUID.sub(b"\n", header + b"\n")[:-1] + separator + body).replace(b"\n", b"\r\n")


def _message_id(raw: bytes) -> str:
    return str(email.message_from_bytes(raw)["Message-ID"]).strip()


def write_config(path: Path, grid: Grid, user: str, maildir: Path) -> Path:
    cert = grid.layout.base_dir / "imap" / "tls" / "cert.pem"
    path.write_text(f"""\
IMAPAccount tidings
Host 127.0.0.1
Port {grid.imap_port}
User {user}
Pass "{PASSWORD}"
SSLType STARTTLS
CertificateFile {cert}
AuthMechs LOGIN PLAIN
Timeout 60

IMAPStore tidings-remote
Account tidings

MaildirStore tidings-local
Path {maildir}/
Inbox {maildir}/INBOX
SubFolders Verbatim

Channel tidings
Far :tidings-remote:
Near :tidings-local:
Patterns INBOX
Create Near
Expunge Both
SyncState *
""")
    return path


def mbsync(config: Path) -> float:
    """``mbsync -a``; its wall time. Fails the test with mbsync's output if it fails."""
    assert MBSYNC is not None
    started = time.monotonic()
    done = subprocess.run([MBSYNC, "-c", str(config), "-a"], capture_output=True, text=True, timeout=240)
    elapsed = time.monotonic() - started
    assert done.returncode == 0, f"mbsync exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return elapsed


def maildir_files(inbox: Path) -> dict[str, Path]:
    """Message-ID -> file, over new/ and cur/."""
    found: dict[str, Path] = {}
    for path in itertools.chain((inbox / "new").iterdir(), (inbox / "cur").iterdir()):
        found[_message_id(path.read_bytes())] = path
    return found


def with_flag(path: Path, flag: str) -> Path:
    """The file renamed into cur/ with ``flag`` added to its Maildir info (``:2,`` then the flags
    in ASCII order), as mbsync and MUAs write it."""
    name, _, info = path.name.partition(":2,")
    target = path.parent.parent / "cur" / f"{name}:2,{''.join(sorted(set(info) | {flag}))}"
    os.rename(path, target)
    return target


def test_mbsync_syncs_the_mailbox_down_and_a_flag_and_a_deletion(grid: Grid, tmp_path: Path) -> None:
    user = "mbsync@example.test"
    user_id = grid.add_user(user).user_id
    started = time.monotonic()
    delivered = deliver_all(grid, user)
    deliver_s = time.monotonic() - started
    assert len(delivered) == MESSAGES
    maildir = tmp_path / "Mail"
    maildir.mkdir()
    config = write_config(tmp_path / "mbsyncrc", grid, user, maildir)

    first_s = mbsync(config)
    files = maildir_files(maildir / "INBOX")
    assert set(files) == set(delivered), (len(files), len(set(delivered) - set(files)))
    for message_id, path in files.items():
        assert as_imap_sent(path.read_bytes()) == delivered[message_id][1], message_id
    for message_id in sorted(files)[:SAMPLE]:
        stored = grid.mail.GetRawMessage(mail_pb2.MessageRef(user_id=user_id, id=delivered[message_id][0]),
                                         timeout=30).raw
        assert as_imap_sent(files[message_id].read_bytes()) == stored

    flagged_id, deleted_id = sorted(files)[0], sorted(files)[1]
    with_flag(files[flagged_id], "F")
    grid.mail.DeleteMessage(mail_pb2.MessageRef(user_id=user_id, id=delivered[deleted_id][0]), timeout=30)
    second_s = mbsync(config)
    summary = grid.mail.GetMessage(mail_pb2.MessageRef(user_id=user_id, id=delivered[flagged_id][0]),
                                   timeout=30).summary
    assert summary.starred and summary.folder_id == "inbox"
    files = maildir_files(maildir / "INBOX")
    assert deleted_id not in files and len(files) == MESSAGES - 1
    assert "F" in files[flagged_id].name.partition(":2,")[2]
    print(f"\nmbsync: {MESSAGES} messages delivered in {deliver_s:.1f} s, first sync {first_s:.1f} s, "
          f"second sync (a flag up, a deletion down) {second_s:.1f} s")


def test_answered_and_draft_flags_set_in_the_maildir_survive_the_next_sync(grid: Grid, tmp_path: Path) -> None:
    user = "mbsync-flags@example.test"
    grid.add_user(user)
    for number in range(1, 4):
        grid.mail.Deliver(mail_pb2.DeliverRequest(entry_id=new_entry_id(), raw=message(number, user), recipients=[user]),
                          timeout=60)
    maildir = tmp_path / "Mail"
    maildir.mkdir()
    config = write_config(tmp_path / "mbsyncrc", grid, user, maildir)
    mbsync(config)
    files = maildir_files(maildir / "INBOX")
    first, second = sorted(files)[:2]
    with_flag(files[first], "R")   # replied: \Answered
    with_flag(files[second], "D")  # draft: \Draft
    mbsync(config)  # pushes them up
    mbsync(config)  # a new session reads them back
    files = maildir_files(maildir / "INBOX")
    assert "R" in files[first].name.partition(":2,")[2] and "D" in files[second].name.partition(":2,")[2]
