"""A live IMAP session fuzzed with hypothesis on the real cluster (storage nodes, router, the
IMAP edge on port 0): random, mutated and truncated command lines and literals sent over a socket
to a session signed in as one user never crash or hang it (every complete command gets its tagged
OK, NO or BAD, never NO [SERVERBUG]; an overlong line is BYE and a clean close; the connection
ends once the client stops sending), and never show another user's mail (the other user's marker
word is never in the output)."""
from __future__ import annotations

import itertools
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.cluster.grid import PASSWORD, Grid, running
from tests.imap.test_imap_cluster import deliver

pytestmark = pytest.mark.timeout(600)
MINE = "aardvarkmine4412"
THEIRS = "zebracrossing7731"   # only in the other user's mail; the commands never name it whole
_users = itertools.count(1)


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Grid]:
    with running(Path(tmp_path_factory.mktemp("imap-fuzz-grid")), edges=("imap",), virus_scan=False) as g:
        yield g


@pytest.fixture(scope="module")
def users(grid: Grid) -> tuple[str, str]:
    mine, theirs = f"fuzz-a{next(_users)}@example.test", f"fuzz-b{next(_users)}@example.test"
    for email, word in ((mine, MINE), (theirs, THEIRS)):
        grid.add_user(email)
        for n in range(3):
            deliver(grid, email, f"{word} subject {n}", f"the body says {word} {n}")
    deliver(grid, theirs, f"{THEIRS} archived", f"{THEIRS} in the archive", folder="archive")
    return mine, theirs


COMMANDS = [
    "NOOP", "CAPABILITY", "SELECT INBOX", "EXAMINE Archive", "SELECT Archive", "LIST \"\" *",
    "LIST (SPECIAL-USE) \"\" * RETURN (STATUS (MESSAGES UNSEEN))", "STATUS INBOX (MESSAGES UIDNEXT UNSEEN)",
    "FETCH 1:* (FLAGS UID RFC822.SIZE ENVELOPE)", "FETCH 1 BODY[]", "UID FETCH 1:* (BODY.PEEK[TEXT] MODSEQ)",
    "FETCH 2 (BODY[HEADER.FIELDS (SUBJECT)] BODYSTRUCTURE)", "FETCH * BINARY.PEEK[1]<0.10>",
    "SEARCH TEXT zebracrossing", "SEARCH SUBJECT aardvarkmine", "UID SEARCH RETURN (MIN MAX COUNT) ALL",
    "SEARCH OR SEEN NOT FLAGGED", "STORE 1 +FLAGS (\\Seen $label1)", "UID STORE 1:* -FLAGS.SILENT (\\Seen)",
    "COPY 1 Archive", "UID MOVE 99 Archive", "EXPUNGE", "UID EXPUNGE 1:*", "CLOSE", "UNSELECT",
    "CREATE Fuzz/Box", "RENAME Fuzz/Box Fuzz/Other", "DELETE Fuzz/Other", "ENABLE CONDSTORE", "NAMESPACE",
    "ID (\"name\" \"fuzz\")", "LOGIN someone else", "STARTTLS", "CHECK", "SELECT \"fuzz-b\"", "STATUS Nope (MESSAGES)",
    "THREAD REFERENCES UTF-8 ALL", "COMPRESS DEFLATE", "GETQUOTAROOT INBOX",
    # IMAP4rev2 (RFC 9051): the switch, and what it changes; drawn as often as the rest
    "ENABLE IMAP4rev2", "SEARCH RETURN (SAVE) SEEN", "FETCH $ (FLAGS BINARY.SIZE[1])", "SEARCH NEW",
    "STATUS INBOX (SIZE DELETED RECENT)", "LIST \"\" \"*\" RETURN (SUBSCRIBED)", "CREATE \"Fuzz/Caf\u00e9\"",
    # QRESYNC (RFC 7162)
    "ENABLE QRESYNC", "SELECT INBOX (QRESYNC (1 1 1:5))", "UID FETCH 1:* (FLAGS) (CHANGEDSINCE 1 VANISHED)",
]
JUNK = st.binary(max_size=12).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"").replace(b"}", b""))


@st.composite
def line(draw: st.DrawFn, tag: str) -> bytes:
    """One command line: a command as is, cut short, or with junk put in (never a literal marker)."""
    text = draw(st.sampled_from(COMMANDS)).encode()
    how = draw(st.sampled_from(["as is", "cut", "junk", "junk"]))
    if how == "cut":
        text = text[:draw(st.integers(0, len(text)))]
    elif how == "junk":
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(JUNK) + text[at:]
    return tag.encode() + b" " + text + b"\r\n"


@st.composite
def unit(draw: st.DrawFn, tag: str) -> tuple[bytes, bool]:
    """Bytes of one command and whether it is complete (it must get a tagged answer)."""
    kind = draw(st.sampled_from(["line"] * 6 + ["append", "append+", "idle", "authenticate", "bare"]))
    if kind == "line":
        return draw(line(tag)), True
    if kind in ("append", "append+"):
        body = f"Subject: {MINE} appended\r\n\r\n".encode() + draw(st.binary(max_size=40))
        plus = "+" if kind == "append+" else ""
        return f"{tag} APPEND INBOX (\\Seen) {{{len(body)}{plus}}}\r\n".encode() + body + b"\r\n", True
    if kind == "idle":
        return f"{tag} IDLE\r\n".encode() + draw(st.sampled_from([b"DONE\r\n", b"done\r\n", b"nonsense\r\n"])), True
    if kind == "authenticate":
        return f"{tag} AUTHENTICATE PLAIN\r\n*\r\n".encode(), True
    return draw(JUNK) + b"\r\n", False   # an untagged line: answered with * BAD or a tag of its own


LAST = st.sampled_from([
    b"", b"t99 APPEND INBOX {40}\r\nSubject: cut short\r\n",           # a literal that never ends
    b"t99 APPEND INBOX {40+}\r\nSubject: cut", b"t99 FETCH 1 (FLAGS", b"t99 LOGIN {5}\r\nab",
    b"t99 SEARCH " + b"x" * (70 * 1024) + b"\r\n",                       # over the line limit: BYE
    b"t99 APPEND INBOX {999999999999}\r\n",                                # over the literal limit
])


def talk(grid: Grid, email: str, data: bytes) -> bytes:
    """Sign in, send ``data`` at once, stop sending; everything the server said until it closed."""
    with socket.create_connection((grid.host, grid.imap_port), timeout=20) as sock:
        sock.sendall(f"a0 LOGIN \"{email}\" \"{PASSWORD}\"\r\n".encode())
        out = b""
        while b"a0 " not in out:
            chunk = sock.recv(65536)
            assert chunk, out
            out += chunk
        assert b"a0 OK" in out, out
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        while chunk := sock.recv(65536):   # a hung session times the recv out: the test fails
            out += chunk
    return out


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(data=st.data())
def test_fuzzed_commands_never_crash_hang_or_leak(grid: Grid, users: tuple[str, str], data: st.DataObject) -> None:
    mine, _ = users
    count = data.draw(st.integers(1, 12))
    units = [data.draw(unit(f"t{i}")) for i in range(count)]
    last = data.draw(LAST)
    out = talk(grid, mine, b"".join(u for u, _ in units) + last)
    assert THEIRS.encode() not in out
    assert b"SERVERBUG" not in out, out
    replies = {line.split(b" ", 1)[0] for line in out.split(b"\r\n")}
    too_long = last.startswith(b"t99 SEARCH")
    for i, (_, complete) in enumerate(units):
        if complete:
            assert f"t{i}".encode() in replies, (i, units[i], out[-2000:])
    if too_long:
        assert b"* BYE line too long" in out
    assert "session failed" not in grid.logs()
