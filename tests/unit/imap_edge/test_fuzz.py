"""Fuzzing the grammar: random, truncated and mutated input never raises anything but a
ParseError (as a value from CommandParser), never hangs, and never loses step with whole commands."""
from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imap_edge.protocol import CommandParser, Limits, Line, NeedMore, ParseError, parse_command
from imap_edge.protocol.commands import Command

VALID = [
    b"a1 LOGIN fred {6+}\r\nsecret",
    b'a2 UID FETCH 1:*,3,5:7 (FLAGS BODY.PEEK[1.2.HEADER.FIELDS (From Subject)]<0.100>) (CHANGEDSINCE 5 VANISHED)',
    b'a3 SEARCH RETURN (MIN COUNT) CHARSET UTF-8 OR FROM alice NOT (SEEN LARGER 100) MODSEQ "/flags/\\\\draft" all 6',
    b"a4 STORE 1:3 (UNCHANGEDSINCE 5) +FLAGS.SILENT (\\Seen $Junk)",
    b'a5 APPEND INBOX (\\Seen) " 7-Jul-1996 02:44:25 -0700" {5}\r\nhello',
    b'a6 LIST (SUBSCRIBED) "" ("INBOX" "Sent%") RETURN (CHILDREN STATUS (MESSAGES UNSEEN) SPECIAL-USE)',
    b"a7 SELECT &ZeVnLIqe- (QRESYNC (67890007 20050715194045000 41,43:211 (1:3 4:6)))",
    b'a8 ID ("name" "x" "version" NIL)', b"a9 AUTHENTICATE PLAIN AGZyZWQAc2VjcmV0", b"b1 UID EXPUNGE 1:5",
    b"b2 THREAD REFERENCES UTF-8 SINCE 5-Mar-2000", b"b3 CREATE Archive (USE (\\Archive))", b"b4 ENABLE UTF8=ACCEPT",
    b'b5 STATUS "Sent" (UIDNEXT HIGHESTMODSEQ)', b"b6 UID MOVE 1:* Trash", b"b7 IDLE", b"b8 COMPRESS DEFLATE",
]
FAST = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def drain(parser: CommandParser, budget: int) -> list[object]:
    """Every event until NeedMore; a loop that does not end within the budget is a hang."""
    out: list[object] = []
    for _ in range(budget):
        event = parser.next()
        assert isinstance(event, Command | ParseError | Line | NeedMore), event
        if isinstance(event, NeedMore):
            return out
        out.append(event)
    raise AssertionError("the parser did not ask for more input: a hang")


@FAST
@given(st.lists(st.binary(max_size=64), max_size=12), st.booleans(), st.booleans())
def test_random_bytes_in_random_chunks(chunks: list[bytes], small: bool, line_mode: bool) -> None:
    parser = CommandParser(Limits(max_line=40, max_literal=30, max_command=100) if small else None)
    if line_mode:
        parser.expect_line()
    for chunk in chunks:
        parser.feed(chunk)
        drain(parser, len(chunk) + 5)


@FAST
@given(st.sampled_from(VALID), st.data())
def test_truncated_and_mutated_commands_raise_only_parse_errors(command: bytes, data: st.DataObject) -> None:
    cut = data.draw(st.integers(0, len(command)))
    raw = bytearray(command[:cut])
    for _ in range(data.draw(st.integers(0, 3))):
        if raw:
            raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    try:
        parse_command(bytes(raw), utf8=data.draw(st.booleans()))
    except ParseError as error:
        assert error.reason


@FAST
@given(st.lists(st.sampled_from(VALID), min_size=1, max_size=6), st.data())
def test_valid_commands_split_anywhere_frame_the_same(commands: list[bytes], data: st.DataObject) -> None:
    stream = b"".join(command + b"\r\n" for command in commands)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    parser = CommandParser()
    got: list[object] = []
    start = 0
    for cut in [*cuts, len(stream)]:
        parser.feed(stream[start:cut])
        got += drain(parser, 50)
        start = cut
    assert got == [parse_command(command) for command in commands]


@FAST
@given(st.sampled_from(VALID), st.binary(max_size=300))
def test_garbage_between_commands_does_not_swallow_the_next_one(command: bytes, junk: bytes) -> None:
    """After any junk line (no newline inside it), the next command still arrives whole,
    unless the junk itself announced a literal that takes the following bytes."""
    junk = junk.replace(b"\n", b"").replace(b"{", b"")
    parser = CommandParser(Limits(max_line=200))  # junk may be overlong; commands are not
    parser.feed(junk + b"\r\n" + command + b"\r\n")
    events = drain(parser, 100)
    assert events[-1] == parse_command(command)
