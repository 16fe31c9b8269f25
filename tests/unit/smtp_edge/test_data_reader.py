"""The DATA decoder on bytes alone: line endings, dot-stuffing, smuggling, limits."""
from __future__ import annotations

import re
import tracemalloc
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smtp_edge.data_reader import MAX_LINE, DataDecoder, DataProblem

END = b"\r\n.\r\n"
SMUGGLING = [b"\n.\n", b"\n.\r\n", b"\r.\r", b"\r\n.\n"]


def pieces(data: bytes, chunk: int = 1001) -> Iterator[bytes]:
    """``data`` as the edge reads it: lines ending in LF, long ones in ``chunk``-byte parts."""
    for line in re.findall(rb"[^\n]*\n|[^\n]+$", data):
        for start in range(0, len(line), chunk):
            yield line[start:start + chunk]


def decode(data: bytes, size_limit: int | None = None, chunk: int = 1001) -> tuple[DataDecoder, bytes]:
    """Feed ``data`` until the data ends; the decoder and the bytes left unread."""
    decoder = DataDecoder(size_limit)
    taken = 0
    for piece in pieces(data, chunk):
        taken += len(piece)
        if decoder.feed(piece):
            return decoder, data[taken:]
    raise AssertionError(f"the data never ended; {taken} bytes taken")


def content(data: bytes, **kwargs: int) -> bytes:
    decoder, rest = decode(data, **kwargs)
    assert decoder.problem is None and rest == b""
    return decoder.content


# -- line endings ---------------------------------------------------------------

def test_crlf_lines_are_kept() -> None:
    assert content(b"Subject: x\r\n\r\nbody\r\n.\r\n") == b"Subject: x\r\n\r\nbody\r\n"


def test_bare_lf_lines_are_stored_with_crlf() -> None:
    assert content(b"Subject: x\n\nbody\n\r\n.\r\n") == b"Subject: x\r\n\r\nbody\r\n\r\n"


def test_mixed_endings_and_inner_cr() -> None:
    assert content(b"a\r\nb\nc\rd\r\ne\r\r\n.\r\n") == b"a\r\nb\r\nc\rd\r\ne\r\r\n"


def test_empty_message() -> None:
    assert content(b".\r\n") == b""


def test_cr_and_lf_in_separate_pieces() -> None:
    decoder = DataDecoder()
    for piece in (b"ab\r", b"\n", b".\r", b"\n"):
        ended = decoder.feed(piece)
    assert ended and decoder.content == b"ab\r\n"


# -- dot-stuffing ---------------------------------------------------------------

@pytest.mark.parametrize("ending", [b"\r\n", b"\n"])
def test_leading_dot_is_removed(ending: bytes) -> None:
    data = b"..x" + ending + b".." + ending + b"..." + ending + b"x.y" + ending + b"\r\n.\r\n"
    assert content(data) == b".x\r\n.\r\n..\r\nx.y\r\n\r\n"


def test_lone_dot_that_does_not_end_the_data_is_kept() -> None:
    assert content(b"a\n.\nb\r\n.\r\n") == b"a\r\n.\r\nb\r\n"


# -- the end of data and smuggling ----------------------------------------------

@pytest.mark.parametrize("sequence", SMUGGLING, ids=repr)
def test_smuggling_sequence_is_content(sequence: bytes) -> None:
    smuggled = b"MAIL FROM:<evil@example.org>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\nevil\r\n"
    data = b"Subject: one\r\n\r\nbody" + sequence + smuggled + END + b"QUIT\r\n"
    decoder, rest = decode(data)
    assert decoder.problem is None and rest == b"QUIT\r\n"
    assert smuggled in decoder.content and decoder.content.startswith(b"Subject: one\r\n\r\nbody")


def test_bytes_after_the_end_are_left_unread() -> None:
    decoder, rest = decode(b"a\r\n.\r\nMAIL FROM:<x@example.org>\r\n")
    assert decoder.content == b"a\r\n" and rest == b"MAIL FROM:<x@example.org>\r\n"


def test_feeding_after_the_end_is_an_error() -> None:
    decoder, _ = decode(b".\r\n")
    with pytest.raises(AssertionError):
        decoder.feed(b"more\r\n")


wire_bytes = st.lists(st.sampled_from([b"\r", b"\n", b".", b"a", b"\r\n", b".\r\n", b"x" * 600]),
                      max_size=60).map(b"".join)


@settings(max_examples=500, deadline=None)
@given(data=wire_bytes, chunk=st.integers(1, 1200))
def test_only_crlf_dot_crlf_ends_the_data(data: bytes, chunk: int) -> None:
    """The data ends exactly after the first ``<CR><LF>.<CR><LF>`` (DATA's own CRLF first)."""
    wire = data + END + b"NOOP\r\n"
    first = (b"\r\n" + wire).index(END)
    _, rest = decode(wire, chunk=chunk)
    assert rest == wire[first + len(END) - 2:]


lines = st.lists(st.binary(max_size=80).filter(lambda b: b"\n" not in b and not b.endswith(b"\r")),
                 max_size=30)


@settings(max_examples=300, deadline=None)
@given(lines=lines, endings=st.lists(st.sampled_from([b"\r\n", b"\n"]), min_size=30, max_size=30),
       chunk=st.integers(1, 100))
def test_round_trip_of_stuffed_lines(lines: list[bytes], endings: list[bytes], chunk: int) -> None:
    """What a client sends (stuffed as smtplib does) comes back as the lines with CRLF."""
    sent = b"".join((b"." + line if line.startswith(b".") else line) + end
                    for line, end in zip(lines, endings))
    stored = b"".join(line + b"\r\n" for line in lines)
    if sent and not sent.endswith(b"\r\n"):          # smtplib ends the text with CRLF
        sent, stored = sent + b"\r\n", stored + b"\r\n"
    assert content(sent + b".\r\n", chunk=chunk) == stored


# -- limits -----------------------------------------------------------------------

@pytest.mark.parametrize("ending", [b"\r\n", b"\n"])
def test_line_of_998_characters_is_accepted(ending: bytes) -> None:
    """998 characters without the ending, and without the dot stuffed in front (RFC 5321 4.5.3.1.6)."""
    line, dotted = b"x" * MAX_LINE, b"." + b"x" * (MAX_LINE - 1)
    assert content(line + ending + b"." + dotted + ending + b"\r\n.\r\n") == (
        line + b"\r\n" + dotted + b"\r\n\r\n")


@pytest.mark.parametrize("ending", [b"\r\n", b"\n", b"\r\r\n"])
@pytest.mark.parametrize("length", [MAX_LINE + 1, 5000, 3_000_000])
def test_longer_line_is_refused_after_reading_to_the_end(ending: bytes, length: int) -> None:
    data = b"a\r\n" + b"y" * length + ending + b"b\r\n.\r\nQUIT\r\n"
    decoder, rest = decode(data)
    assert decoder.problem is DataProblem.LINE_TOO_LONG and rest == b"QUIT\r\n"


def test_lone_dot_after_an_overlong_line_is_content() -> None:
    decoder, rest = decode(b"y" * 2000 + b"\n.\r\nz\r\n.\r\n")
    assert decoder.problem is DataProblem.LINE_TOO_LONG and rest == b""


def test_overlong_line_ending_in_crlf_lets_a_lone_dot_end_the_data() -> None:
    decoder, rest = decode(b"y" * 2000 + b"\r\n.\r\nQUIT\r\n", chunk=7)
    assert decoder.problem is DataProblem.LINE_TOO_LONG and rest == b"QUIT\r\n"


@pytest.mark.parametrize("ending", [b"\r\n", b"\n"])
def test_size_limit_counts_the_stored_bytes(ending: bytes) -> None:
    body = (b"z" * 48 + ending) * 100                 # 5000 bytes stored
    assert len(content(body + b"\r\n.\r\n", size_limit=5002)) == 5002
    decoder, rest = decode(body + b"\r\n.\r\nQUIT\r\n", size_limit=5001)
    assert decoder.problem is DataProblem.TOO_MUCH_DATA and rest == b"QUIT\r\n"


def test_the_first_problem_is_reported() -> None:
    decoder, _ = decode(b"z" * 500 + b"\r\n" + b"y" * 2000 + b"\r\n.\r\n", size_limit=100)
    assert decoder.problem is DataProblem.TOO_MUCH_DATA
    decoder, _ = decode(b"y" * 2000 + b"\r\n" + b"z" * 500 + b"\r\n.\r\n", size_limit=1000)
    assert decoder.problem is DataProblem.LINE_TOO_LONG


def test_memory_stays_bounded_by_the_limit() -> None:
    """20 MB over the size limit and a 20 MB line hold no more than the limit and a line."""
    tracemalloc.start()
    try:
        decoder = DataDecoder(size_limit=10_000)
        for _ in range(20_000):
            decoder.feed(b"z" * 998 + b"\r\n")
        assert decoder.problem is DataProblem.TOO_MUCH_DATA and decoder.feed(b".\r\n")
        decoder = DataDecoder()
        for _ in range(20_000):
            decoder.feed(b"y" * 1000)
        assert decoder.feed(b"\r\n") is False and decoder.problem is DataProblem.LINE_TOO_LONG
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 100_000
