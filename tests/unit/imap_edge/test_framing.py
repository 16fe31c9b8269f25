"""The framer: literals and continuation requests, LITERAL+, limits, staying in step after errors."""
from __future__ import annotations

from imap_edge.protocol import CommandParser, Limits, Line, LineTooLong, LiteralTooLarge, NeedMore, ParseError
from imap_edge.protocol.commands import Append, Command, Login


def events(parser: CommandParser) -> list[object]:
    out: list[object] = []
    while True:
        event = parser.next()
        out.append(event)
        if isinstance(event, NeedMore):
            return out


def test_a_command_split_anywhere_is_the_same_command() -> None:
    data = b'a1 LOGIN "fred" {6}\r\nsecret\r\n'
    whole = CommandParser()
    whole.feed(data)
    expected = whole.next()
    assert isinstance(expected, Command)
    for cut in range(len(data)):
        parser = CommandParser()
        parser.feed(data[:cut])
        first = events(parser)
        parser.feed(data[cut:])
        got = [event for event in first + events(parser) if not isinstance(event, NeedMore)]
        assert got == [expected], cut


def test_a_synchronizing_literal_asks_for_a_continuation_and_literal_plus_does_not() -> None:
    parser = CommandParser()
    parser.feed(b"a1 LOGIN fred {6}\r\n")
    assert parser.next() == NeedMore(continuation=True)
    assert parser.next() == NeedMore()
    parser.feed(b"secret\r\n")
    assert parser.next() == Command("a1", "LOGIN", Login("fred", "secret"))

    parser = CommandParser()
    parser.feed(b"a2 LOGIN fred {6+}\r\n")
    assert parser.next() == NeedMore()
    parser.feed(b"secret\r\n")
    assert parser.next() == Command("a2", "LOGIN", Login("fred", "secret"))


def test_an_empty_synchronizing_literal_still_asks() -> None:
    parser = CommandParser()
    parser.feed(b"a1 LOGIN fred {0}\r\n")
    assert parser.next() == NeedMore(continuation=True)
    parser.feed(b"\r\n")
    assert parser.next() == Command("a1", "LOGIN", Login("fred", ""))


def test_no_continuation_when_the_data_is_already_here() -> None:
    parser = CommandParser()
    parser.feed(b"a1 LOGIN fred {6}\r\nsecret\r\na2 NOOP\r\n")
    assert [type(event).__name__ for event in events(parser)] == ["Command", "Command", "NeedMore"]


def test_literal_data_may_hold_crlf_and_anything_but_nul() -> None:
    parser = CommandParser()
    parser.feed(b"a1 APPEND INBOX {12+}\r\nSubject: x\r\n\r\n")
    command = parser.next()
    assert isinstance(command, Command) and isinstance(command.arguments, Append)
    assert command.arguments.messages[0].data == b"Subject: x\r\n"


def test_bare_lf_ends_a_line() -> None:
    parser = CommandParser()
    parser.feed(b"a1 NOOP\na2 LOGIN u {1}\nx\n")
    assert [getattr(event, "tag", None) for event in events(parser)] == ["a1", "a2", None]


def test_a_too_large_synchronizing_literal_is_refused_before_the_data() -> None:
    parser = CommandParser(Limits(max_literal=10))
    parser.feed(b"a1 APPEND INBOX {11}\r\n")
    error = parser.next()
    assert isinstance(error, LiteralTooLarge)
    assert (error.tag, error.status, error.code, error.reason) == \
        ("a1", "NO", "TOOBIG", "literal of 11 bytes is over the limit of 10")
    parser.feed(b"a2 NOOP\r\n")  # the client did not send the literal
    assert parser.next() == Command("a2", "NOOP")


def test_a_too_large_literal_plus_is_read_and_dropped_with_the_rest_of_its_command() -> None:
    parser = CommandParser(Limits(max_literal=10))
    parser.feed(b"a1 APPEND INBOX {11+}\r\nhello world (\\Seen) {3+}\r\nabc\r\na2 NOOP\r\n")
    error = parser.next()
    assert isinstance(error, LiteralTooLarge) and (error.tag, error.status) == ("a1", "BAD")
    assert parser.next() == Command("a2", "NOOP")


def test_an_overlong_line_is_an_error_at_once_and_the_rest_of_it_is_skipped() -> None:
    parser = CommandParser(Limits(max_line=100))
    parser.feed(b"a1 SEARCH " + b"X" * 200)
    error = parser.next()
    assert isinstance(error, LineTooLong) and error.tag == "a1" and error.reason == "line longer than 100 bytes"
    parser.feed(b"Y" * 1000)
    assert parser.next() == NeedMore()
    parser.feed(b" {5+}\r\nabcde rest\r\na2 NOOP\r\n")  # a LITERAL+ at its end is skipped too
    assert parser.next() == Command("a2", "NOOP")
    assert parser.buffered() == b""


def test_an_overlong_line_that_arrives_whole() -> None:
    parser = CommandParser(Limits(max_line=20))
    parser.feed(b"a1 LOGIN " + b"x" * 30 + b" y\r\na2 NOOP\r\n")
    assert [type(event).__name__ for event in events(parser)] == ["LineTooLong", "Command", "NeedMore"]


def test_a_whole_command_is_bounded_too() -> None:
    parser = CommandParser(Limits(max_literal=100, max_command=150))
    parser.feed(b"a1 APPEND INBOX {90+}\r\n" + b"x" * 90 + b" {90+}\r\n" + b"y" * 90 + b"\r\na2 NOOP\r\n")
    error = parser.next()
    assert isinstance(error, LiteralTooLarge) and error.tag == "a1"
    assert parser.next() == Command("a2", "NOOP")


def test_untagged_garbage_has_no_tag() -> None:
    parser = CommandParser()
    parser.feed(b"(((\r\n")
    error = parser.next()
    assert isinstance(error, ParseError) and error.tag is None
    assert error.reason == "expected a tag at position 0"


def test_line_mode_returns_authenticate_data_and_done() -> None:
    parser = CommandParser()
    parser.feed(b"a1 AUTHENTICATE PLAIN\r\n")
    assert isinstance(parser.next(), Command)
    parser.expect_line()
    parser.feed(b"AGZyZWQAc2VjcmV0\r\n")
    assert parser.next() == Line(b"AGZyZWQAc2VjcmV0")
    parser.feed(b"a2 IDLE\r\n")
    assert parser.next() == Command("a2", "IDLE")
    parser.expect_line()
    parser.feed(b"done\r\n")
    line = parser.next()
    assert isinstance(line, Line) and line.is_done
    parser.expect_line()
    parser.feed(b"*\r\n")
    line = parser.next()
    assert isinstance(line, Line) and line.is_cancel


def test_bytes_pipelined_after_starttls_are_visible() -> None:
    parser = CommandParser()
    parser.feed(b"a1 STARTTLS\r\na2 LOGIN u p\r\n")
    assert parser.next() == Command("a1", "STARTTLS")
    assert parser.buffered() == b"a2 LOGIN u p\r\n"
