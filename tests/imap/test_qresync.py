"""QRESYNC (RFC 7162) on the real cluster (storage nodes keeping 20 change-feed rows a user, router,
the IMAP edge on port 0), over raw sockets: refused until ENABLE QRESYNC; SELECT (QRESYNC ...) after
another session expunged, moved and flagged messages says VANISHED (EARLIER) and FETCH (UID FLAGS
MODSEQ) for exactly those (among the known UIDs when given), nothing for a stale UIDVALIDITY; UID
FETCH (CHANGEDSINCE m VANISHED); VANISHED instead of EXPUNGE for this session's and others'
expunges and moves, pushed during IDLE too, while a rev1 session still sees EXPUNGE; an expunge
held back during FETCH covered by a lower HIGHESTMODSEQ; the feed compacted past the client's
MODSEQ answered from the known UIDs."""
from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest

from tests.cluster.grid import Grid, running
from tests.imap.test_imap_cluster import deliver
from tests.imap.wire import Wire
from tidings.v1 import mail_pb2

pytestmark = pytest.mark.timeout(120)
KEEP = 20   # change-feed rows a storage node keeps a user: past 25 it compacts to the last 20
_users = itertools.count(1)


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Grid]:
    keep = {f"storage-{i}": ("--order-keep-changes", str(KEEP)) for i in range(1, 5)}
    with running(Path(tmp_path_factory.mktemp("imap-qresync-grid")), edges=("imap",), virus_scan=False,
                 args=keep) as g:
        yield g


@pytest.fixture
def user(grid: Grid) -> Callable[[], tuple[str, str]]:
    def make() -> tuple[str, str]:
        email = f"qresync-{next(_users)}@example.test"
        return email, grid.add_user(email).user_id
    return make


def qresync(grid: Grid, email: str) -> Wire:
    wire = Wire(grid, email)
    assert wire.ok("ENABLE QRESYNC") == [b"* ENABLED QRESYNC\r\n"]
    return wire


def code(lines: list[bytes], name: str) -> int:
    found = re.search(rb"\[" + name.encode() + rb" (\d+)\]", b"".join(lines))
    assert found, lines
    return int(found.group(1))


def uids_of(lines: list[bytes]) -> list[int]:
    return [int(u) for u in re.findall(rb"UID (\d+)", b"".join(lines))]


def uid_set(text: bytes) -> set[int]:
    found: set[int] = set()
    for item in text.split(b","):
        low, _, high = item.partition(b":")
        found.update(range(int(low), int(high or low) + 1))
    return found


def vanished(lines: list[bytes]) -> list[bytes]:
    return [line for line in lines if line.startswith(b"* VANISHED")]


def fetched(lines: list[bytes]) -> dict[int, bytes]:
    """UID -> the FETCH line, for the untagged FETCH responses."""
    return {int(m.group(1)): line for line in lines if (m := re.match(rb"\* \d+ FETCH \(UID (\d+) ", line))}


def test_refused_until_enabled(grid: Grid, user: Callable[[], tuple[str, str]]) -> None:
    email, _ = user()
    deliver(grid, email, "one")
    wire = Wire(grid, email)
    assert b"QRESYNC" in b"".join(wire.ok("CAPABILITY"))
    assert b"BAD SELECT (QRESYNC ...) needs ENABLE QRESYNC first" in wire.run("SELECT INBOX (QRESYNC (1 1))")[-1]
    wire.ok("SELECT INBOX")
    assert b"BAD VANISHED needs UID FETCH and ENABLE QRESYNC" in \
        wire.run("UID FETCH 1:* (FLAGS) (CHANGEDSINCE 1 VANISHED)")[-1]
    assert wire.ok("ENABLE QRESYNC") == [b"* ENABLED\r\n"]     # not in the selected state
    wire.close()


def test_select_qresync_after_changes_elsewhere(grid: Grid, user: Callable[[], tuple[str, str]]) -> None:
    email, _ = user()
    for n in range(5):
        deliver(grid, email, f"cached {n}")
    first = qresync(grid, email)
    selected = first.ok("SELECT INBOX")
    uidvalidity, modseq = code(selected, "UIDVALIDITY"), code(selected, "HIGHESTMODSEQ")
    u = uids_of(first.ok("UID FETCH 1:* (UID)"))
    first.close()                                  # the client goes offline with its cache
    other = Wire(grid, email)
    other.ok("SELECT INBOX")
    other.ok(f"UID STORE {u[1]} +FLAGS.SILENT (\\Deleted)")
    other.ok(f"UID EXPUNGE {u[1]}")
    other.ok(f"UID STORE {u[3]} +FLAGS.SILENT (\\Flagged)")
    other.ok(f"UID MOVE {u[4]} Archive")
    other.close()
    deliver(grid, email, "arrived meanwhile")

    wire = qresync(grid, email)
    known = wire.ok(f"SELECT INBOX (QRESYNC ({uidvalidity} {modseq} {u[0]}:{u[4]}))")
    assert vanished(known) == [f"* VANISHED (EARLIER) {u[1]},{u[4]}\r\n".encode()]
    assert b"* 4 EXISTS\r\n" in known
    changes = fetched(known)
    assert list(changes) == [u[3]]                  # not the new one: it is not among the known UIDs
    assert re.match(rb"\* 3 FETCH \(UID \d+ FLAGS \(\\Flagged\) MODSEQ \((\d+)\)\)", changes[u[3]])
    every = wire.ok(f"SELECT INBOX (QRESYNC ({uidvalidity} {modseq}))")
    assert every[0] == b"* OK [CLOSED] previous mailbox closed\r\n"
    assert vanished(every) == [f"* VANISHED (EARLIER) {u[1]},{u[4]}\r\n".encode()]
    new = max(fetched(every))
    assert sorted(fetched(every)) == [u[3], new] and new > u[4]
    stale = wire.ok(f"EXAMINE INBOX (QRESYNC ({uidvalidity + 1} {modseq} {u[0]}:{u[4]}))")
    assert not vanished(stale) and not fetched(stale)
    wire.ok("SELECT INBOX")
    lines = wire.ok(f"UID FETCH {u[0]}:* (FLAGS) (CHANGEDSINCE {modseq} VANISHED)")
    assert lines[0] == f"* VANISHED (EARLIER) {u[1]},{u[4]}\r\n".encode()
    assert sorted(fetched(lines)) == [u[3], new]
    assert wire.ok(f"UID FETCH {u[2]} (FLAGS) (CHANGEDSINCE {modseq} VANISHED)") == []
    assert b"BAD VANISHED needs UID FETCH" in wire.run(f"FETCH 1:* (FLAGS) (CHANGEDSINCE {modseq} VANISHED)")[-1]
    wire.close()


def test_vanished_replaces_expunge_once_enabled(grid: Grid, user: Callable[[], tuple[str, str]]) -> None:
    email, _ = user()
    for n in range(4):
        deliver(grid, email, f"doomed {n}")
    wire = qresync(grid, email)
    before = code(wire.ok("SELECT INBOX"), "HIGHESTMODSEQ")
    u = uids_of(wire.ok("UID FETCH 1:* (UID)"))
    old = Wire(grid, email)               # a rev1 session without QRESYNC: EXPUNGE as before
    old.ok("SELECT INBOX")
    wire.ok("STORE 1,2 +FLAGS.SILENT (\\Deleted)")
    expunged = wire.run("EXPUNGE")
    assert vanished(expunged) == [f"* VANISHED {u[0]}:{u[1]}\r\n".encode()]
    assert not any(line.endswith(b" EXPUNGE\r\n") for line in expunged)
    assert code(expunged[-1:], "HIGHESTMODSEQ") > before
    seen = old.ok("NOOP")
    assert b"* 1 EXPUNGE\r\n" in seen and not vanished(seen)
    old.ok("STORE 2 +FLAGS.SILENT (\\Deleted)")       # u[3], expunged by the other session
    old.ok("EXPUNGE")
    assert vanished(wire.ok("NOOP")) == [f"* VANISHED {u[3]}\r\n".encode()]
    moved = wire.ok("MOVE 1 Archive")
    assert moved[0].startswith(b"* OK [COPYUID ") and vanished(moved) == [f"* VANISHED {u[2]}\r\n".encode()]
    deliver(grid, email, "for IDLE")
    assert b"* 1 EXISTS\r\n" in wire.ok("NOOP")
    latest = uids_of(wire.ok("UID FETCH 1:* (UID)"))[-1]
    wire.sock.sendall(b"i1 IDLE\r\n")                 # pushed from Mail.Watch: VANISHED too
    assert wire.line().startswith(b"+ ")
    old.ok("SELECT INBOX")
    old.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
    old.ok("EXPUNGE")
    pushed = [wire.line()]
    while not pushed[-1].startswith(b"* VANISHED"):
        pushed.append(wire.line())
    assert pushed[-1] == f"* VANISHED {latest}\r\n".encode()
    wire.sock.sendall(b"DONE\r\n")
    while not pushed[-1].startswith(b"i1 "):
        pushed.append(wire.line())
    assert pushed[-1].startswith(b"i1 OK") and not any(line.endswith(b" EXPUNGE\r\n") for line in pushed)
    old.close()
    wire.close()


def test_an_expunge_held_back_during_fetch_is_said_below_in_highestmodseq(
        grid: Grid, user: Callable[[], tuple[str, str]]) -> None:
    """FETCH without UID must not renumber, so another session's expunge waits, while the FETCH
    carries a later MODSEQ: the session then says a HIGHESTMODSEQ below the expunge's, so a client
    that resynchronizes from the largest MODSEQ it saw does not skip it."""
    email, _ = user()
    for n in range(2):
        deliver(grid, email, f"held {n}")
    wire = qresync(grid, email)
    wire.ok("SELECT INBOX")
    u = uids_of(wire.ok("UID FETCH 1:* (UID)"))
    other = Wire(grid, email)
    other.ok("SELECT INBOX")
    other.ok(f"UID STORE {u[0]} +FLAGS.SILENT (\\Deleted)")
    other.ok(f"UID EXPUNGE {u[0]}")
    other.ok(f"UID STORE {u[1]} +FLAGS.SILENT (\\Flagged)")
    other.close()
    lines = wire.ok("FETCH 2 (FLAGS)")
    assert not vanished(lines)
    seen = [int(m) for m in re.findall(rb"MODSEQ \((\d+)\)", b"".join(lines))]
    held = code([line for line in lines if line.startswith(b"* OK [HIGHESTMODSEQ")], "HIGHESTMODSEQ")
    assert seen and held < max(seen)
    after = wire.ok("NOOP")
    assert vanished(after) == [f"* VANISHED {u[0]}\r\n".encode()]
    assert not any(b"HIGHESTMODSEQ" in line for line in after)
    again = qresync_select(grid, email, held)     # resynchronizing from there reports the expunge
    assert vanished(again) == [f"* VANISHED (EARLIER) {u[0]}\r\n".encode()]
    wire.close()


def qresync_select(grid: Grid, email: str, modseq: int) -> list[bytes]:
    wire = qresync(grid, email)
    uidvalidity = code(wire.ok("EXAMINE INBOX"), "UIDVALIDITY")
    lines = wire.ok(f"EXAMINE INBOX (QRESYNC ({uidvalidity} {modseq}))")
    wire.close()
    return lines


def test_a_compacted_feed_is_answered_from_the_known_uids(grid: Grid, user: Callable[[], tuple[str, str]]) -> None:
    email, user_id = user()
    for n in range(3):
        deliver(grid, email, f"long ago {n}")
    wire = qresync(grid, email)
    selected = wire.ok("SELECT INBOX")
    uidvalidity, modseq = code(selected, "UIDVALIDITY"), code(selected, "HIGHESTMODSEQ")
    u = uids_of(wire.ok("UID FETCH 1:* (UID)"))
    wire.ok(f"UID STORE {u[1]} +FLAGS.SILENT (\\Deleted)")
    wire.ok(f"UID EXPUNGE {u[1]}")
    for n in range(2 * KEEP):                         # enough changes for the feed to drop those
        wire.ok(f"UID STORE {u[0]} {'+' if n % 2 == 0 else '-'}FLAGS.SILENT ($toggled)")
    wire.close()
    with pytest.raises(grpc.RpcError) as refused:
        grid.mail.Changes(mail_pb2.ChangesRequest(user_id=user_id, since=modseq, limit=10), timeout=30)
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION

    again = qresync(grid, email)
    known = again.ok(f"SELECT INBOX (QRESYNC ({uidvalidity} {modseq} {u[0]}:{u[2]}))")
    assert vanished(known) == [f"* VANISHED (EARLIER) {u[1]}\r\n".encode()]
    assert list(fetched(known)) == [u[0]]            # its keyword came and went: a new MODSEQ
    every = again.ok(f"SELECT INBOX (QRESYNC ({uidvalidity} {modseq}))")
    (line,) = vanished(every)                          # every UID up to UIDNEXT-1 that is not here
    assert uid_set(line.removeprefix(b"* VANISHED (EARLIER) ").strip()) == set(range(1, u[2] + 1)) - {u[0], u[2]}
    again.close()


def test_a_condstore_store_answers_each_message_once(grid: Grid, user: Callable[[], tuple[str, str]]) -> None:
    """STORE with CONDSTORE on learns its MODSEQs from the feed: the feed's FETCH of each changed
    message is its answer, not a second one beside it (.SILENT too: MODSEQ is still sent)."""
    email, _ = user()
    for n in range(3):
        deliver(grid, email, f"store once {n}")
    wire = qresync(grid, email)
    wire.ok("SELECT INBOX")
    for command, flags in (("STORE 1:3 +FLAGS (\\Flagged)", True), ("STORE 1:2 -FLAGS.SILENT (\\Flagged)", False)):
        lines = [line for line in wire.ok(command) if b" FETCH " in line]
        numbers = [int(line.split()[1]) for line in lines]
        assert sorted(numbers) == sorted(set(numbers)) and len(numbers) == (3 if flags else 2), lines
        assert all(b"MODSEQ (" in line for line in lines), lines
    wire.close()
