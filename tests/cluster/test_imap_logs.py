"""The IMAP edge's command lines (imap_edge/command_log.py) on a grid with the edge and the
router at debug: one line a dispatched command with its tag, name, status (OK, NO, BAD) and
duration, the session's id and the request id `<session>.<n>`, which the router's lines for
that command carry; no argument in any log: not the password, a mailbox name, a search string
nor an appended body, each holding a marker."""
from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster.grid import Grid, running
from tests.imap.wire import Wire

pytestmark = pytest.mark.timeout(180)

EMAIL = "ivy@example.test"
SECRET = "pw-Imap7SecretMarker"
MARK = "Mark9ImapQv"               # in a mailbox name, a search string and a body
DEBUG = ("--log-level", "debug")


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Grid]:
    with running(tmp_path_factory.mktemp("imap-logs"), edges=("imap",), virus_scan=False,
                 args={"router": DEBUG, "imap": DEBUG}) as grid:
        grid.add_user(EMAIL, SECRET)
        yield grid


def json_lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.startswith("{")]


def test_a_line_a_command_and_no_argument_in_any_log(grid: Grid) -> None:
    body = f"From: a@example.org\r\nTo: {EMAIL}\r\nSubject: hello\r\n\r\nthe {MARK} body\r\n".encode()
    imap = Wire(grid)
    assert imap.run(f'LOGIN "{EMAIL}" "{SECRET}"')[-1].startswith(b"t1 OK")
    assert imap.run("FETCH 1 FLAGS")[-1].startswith(b"t2 BAD")                  # no folder selected
    assert imap.run(f'CREATE "Box-{MARK}"')[-1].startswith(b"t3 OK")
    assert imap.run(f'SELECT "Nothing-{MARK}"')[-1].startswith(b"t4 NO")
    assert imap.run(b"APPEND INBOX {%d+}\r\n" % len(body) + body)[-1].startswith(b"t5 OK")
    imap.ok("SELECT INBOX")
    assert imap.search(f'UID SEARCH TEXT "{MARK}"') is not None
    imap.close()                                                                     # t8 LOGOUT

    logs_dir = grid.layout.base_dir / "logs"
    for path in logs_dir.glob("*.log"):
        text = path.read_text(errors="replace")
        assert SECRET not in text and MARK not in text, path
    lines = [line for line in json_lines(logs_dir / "imap.log") if line["logger"] == "imap_edge.command"]
    assert [(line["tag"], line["command"], line["status"]) for line in lines] == [
        ("t1", "LOGIN", "OK"), ("t2", "FETCH", "BAD"), ("t3", "CREATE", "OK"), ("t4", "SELECT", "NO"),
        ("t5", "APPEND", "OK"), ("t6", "SELECT", "OK"), ("t7", "UID SEARCH", "OK"), ("t8", "LOGOUT", "OK")]
    session = lines[0]["session"]
    assert all(line["session"] == session and line["level"] == "debug" for line in lines)
    assert [line["request_id"] for line in lines] == [f"{session}.{n}" for n in range(1, 9)]
    assert all(float(str(line["duration_ms"])) >= 0 for line in lines)
    assert set(lines[0]) - {"ts", "level", "logger", "process", "msg", "session", "request_id"} == {
        "tag", "command", "status", "duration_ms"}                                 # nothing else

    router = json_lines(logs_dir / "router.log")
    for n, method in ((1, "/tidings.v1.Mail/Authenticate"), (5, "/tidings.v1.Mail/Deliver")):
        assert any(line.get("request_id") == f"{session}.{n}" and line.get("method") == method
                   for line in router), method
