"""Interop with a real interactive mail client from Debian: mutt, run in a tmux pane and driven
with ``tmux send-keys`` (the screen read back with ``capture-pane``), against the IMAP edge of a
real cluster, plain IMAP on loopback (the edge allows LOGIN there).

mutt opens the Inbox, opens a message (with imap_peek off, its ``BODY[]`` fetch makes it \\Seen
on the server), flags it (``F``, \\Flagged: our star) and saves it to the folder Archive (``s``:
COPY, then \\Deleted and EXPUNGE on ``$``); each effect is checked through the router's API, not through mutt: read, starred, in
Archive and no longer in the Inbox. `make setup` installs mutt and tmux; without them the module
skips.
"""
from __future__ import annotations

import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.cluster.grid import PASSWORD, Grid, running
from tidings.v1 import mail_pb2
from tidings_client import new_entry_id

MUTT, TMUX = shutil.which("mutt"), shutil.which("tmux")
DEADLINE_S = 60.0

pytestmark = [pytest.mark.timeout(300),
              pytest.mark.skipif(MUTT is None or TMUX is None,
                                 reason="mutt or tmux is not installed (make setup installs them: `make mutt`)")]


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Grid]:
    with running(Path(tmp_path_factory.mktemp("mutt-grid")), edges=("imap",), virus_scan=False) as g:
        yield g


class Pane:
    """mutt in a detached tmux session of its own (its own server socket under the test's dir)."""

    def __init__(self, socket: Path, command: list[str]) -> None:
        self.base = [str(TMUX), "-S", str(socket)]
        self.name = f"mutt-{uuid.uuid4().hex[:8]}"
        subprocess.run([*self.base, "new-session", "-d", "-s", self.name, "-x", "160", "-y", "40", *command],
                       check=True, timeout=30)

    def keys(self, *keys: str) -> None:
        subprocess.run([*self.base, "send-keys", "-t", self.name, *keys], check=True, timeout=30)

    def screen(self) -> str:
        done = subprocess.run([*self.base, "capture-pane", "-p", "-t", self.name], capture_output=True, text=True,
                              timeout=30)
        return done.stdout

    def wait_for(self, text: str) -> str:
        deadline = time.monotonic() + DEADLINE_S
        while True:
            screen = self.screen()
            if text in screen:
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} not on mutt's screen after {DEADLINE_S:.0f} s:\n{screen}")
            time.sleep(0.2)

    def close(self) -> None:
        subprocess.run([*self.base, "kill-server"], capture_output=True, timeout=30)


def eventually(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not seen through the API after {DEADLINE_S:.0f} s: {what}")
        time.sleep(0.2)


def test_mutt_reads_flags_and_moves_a_message(grid: Grid, tmp_path: Path) -> None:
    user = "mutt@example.test"
    user_id = grid.add_user(user).user_id
    folders = grid.mail.ListFolders(mail_pb2.UserRef(user_id=user_id), timeout=30).folders
    archive = next(f.id for f in folders if f.name == "Archive")  # a user's folders from the start
    ids = {}
    for subject in ("mutt-other lighthouse", "mutt-target pineapple"):
        raw = (f"From: Sender <sender@example.org>\r\nTo: {user}\r\nSubject: {subject}\r\n"
               f"Message-ID: <{new_entry_id()}@example.org>\r\nDate: Tue, 01 Dec 2026 10:00:00 +0000\r\n\r\n"
               f"The body of {subject}, read in mutt.\r\n").encode()
        answer = grid.mail.Deliver(mail_pb2.DeliverRequest(entry_id=new_entry_id(), raw=raw, recipients=[user]),
                                   timeout=60)
        ids[subject] = str(answer.deliveries[0].id)
    target = ids["mutt-target pineapple"]

    def summary() -> mail_pb2.MessageSummary:
        return grid.mail.GetMessage(mail_pb2.MessageRef(user_id=user_id, id=target), timeout=30).summary

    assert summary().unread and not summary().starred
    muttrc = tmp_path / "muttrc"
    muttrc.write_text(f"""\
set folder="imap://{user}@{grid.host}:{grid.imap_port}/"
set spoolfile="+INBOX"
set imap_user="{user}"
set imap_pass="{PASSWORD}"
set ssl_starttls=no
set ssl_force_tls=no
set header_cache=""
set message_cachedir=""
set mail_check=60
set timeout=60
set sort=date-received
set confirmcreate=no
set confirmappend=no
set delete=yes
set move=no
set mark_old=no
set imap_peek=no
set wait_key=no
set pager_stop=yes
set beep=no
set imap_check_subscribed=no
""")
    pane = Pane(tmp_path / "tmux.sock", [str(MUTT), "-n", "-F", str(muttrc)])
    try:
        pane.wait_for("mutt-target pineapple")
        pane.keys("/", "mutt-target", "Enter")       # the index's cursor on the message
        pane.keys("Enter")                            # open it
        pane.wait_for("read in mutt")
        eventually(lambda: not summary().unread, "the message read (\\Seen)")
        pane.keys("i")                                # back to the index
        pane.wait_for("mutt-other lighthouse")
        pane.keys("F", "$")                           # flag it, sync the mailbox
        eventually(lambda: summary().starred, "the message starred (\\Flagged)")
        pane.keys("s")
        pane.wait_for("Save to mailbox")
        pane.keys("C-u", "=Archive", "Enter")
        pane.keys("$")                                # expunge the saved copy from the Inbox
        eventually(lambda: not _in_folder(grid, user_id, "inbox", "mutt-target"), "the message gone from the Inbox")
        eventually(lambda: _in_folder(grid, user_id, archive, "mutt-target"), "the message in Archive")
        assert _in_folder(grid, user_id, "inbox", "mutt-other"), "the other message stays in the Inbox"
        moved = [m for m in _listed(grid, user_id, archive) if m.subject == "mutt-target pineapple"]
        assert len(moved) == 1 and not moved[0].unread and moved[0].starred, moved
        pane.keys("q")
    finally:
        pane.close()


def _listed(grid: Grid, user_id: str, folder_id: str) -> list[mail_pb2.MessageSummary]:
    page = grid.mail.ListMessages(mail_pb2.ListMessagesRequest(user_id=user_id, folder_id=folder_id, limit=50),
                                  timeout=30)
    return list(page.messages)


def _in_folder(grid: Grid, user_id: str, folder_id: str, subject: str) -> bool:
    return any(m.subject.startswith(subject) for m in _listed(grid, user_id, folder_id))
