"""Modified UTF-7, sequence sets, and the canonical forms of search keys and fetch attributes."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from imap_edge.protocol import mutf7
from imap_edge.protocol.fetch import attributes
from imap_edge.protocol.search import parse_search_key
from imap_edge.protocol.sequence import SequenceSet, compact, parse_sequence_set
from imap_edge.protocol.tokens import Reader


@pytest.mark.parametrize(("text", "encoded"), [
    ("~peter/mail/台北/日本語", b"~peter/mail/&U,BTFw-/&ZeVnLIqe-"),
    ("&", b"&-"), ("Entwürfe", b"Entw&APw-rfe"), ("", b""), ("a\x7fb", b"a&AH8-b"), ("😀", b"&2D3eAA-"),
])
def test_modified_utf7_examples(text: str, encoded: bytes) -> None:
    assert mutf7.encode(text) == encoded
    assert mutf7.decode(encoded) == text


@pytest.mark.parametrize("bad", [b"&", b"&U,BTFw", b"&AGE-", b"&U,B-", b"&2D0-", b"&U,BTF!-", b"caf\xe9", b"a\tb"])
def test_modified_utf7_is_decoded_strictly(bad: bytes) -> None:
    with pytest.raises(mutf7.MUTF7Error):
        mutf7.decode(bad)


@given(st.text())
def test_modified_utf7_round_trips(text: str) -> None:
    text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")  # no lone surrogates
    assert mutf7.decode(mutf7.encode(text)) == text


def test_sequence_sets() -> None:
    found = parse_sequence_set("1:*,3,5:7")
    assert found == SequenceSet(((1, None), (3, 3), (5, 7)))
    assert str(found) == "1:*,3,5:7"
    assert found.ranges(10) == [(1, 10)]
    assert parse_sequence_set("7:5,*").ranges(0) == [(5, 7)]
    assert parse_sequence_set("20:*").ranges(12) == [(12, 20)]  # "*" is the largest: 20:* is 12:20
    assert parse_sequence_set("3,1,2").contains(2, 9)
    assert str(parse_sequence_set("$")) == "$"
    assert compact([5, 1, 2, 3, 3, 9, 10]) == "1:3,5,9:10"
    assert compact([]) == ""


@given(st.lists(st.integers(min_value=1, max_value=2**32 - 1), min_size=1, max_size=50))
def test_compact_sets_parse_back_to_the_same_numbers(numbers: list[int]) -> None:
    ranges = parse_sequence_set(compact(numbers)).ranges(2**32 - 1)
    assert sum(b - a + 1 for a, b in ranges) == len(set(numbers))
    assert all(any(a <= n <= b for a, b in ranges) for n in numbers)


SEARCHES = [
    "ALL", "NEW", "OLD", "UNSEEN", "KEYWORD $Junk", "UNKEYWORD $Forwarded", 'FROM "Smith"',
    'HEADER "X-Mailer" "mutt"', "SINCE 1-Feb-1994", "SENTBEFORE 31-Dec-2024", "LARGER 100", "SMALLER 5",
    "OLDER 3600", "YOUNGER 60", "UID 1:*,5", "(1:3 $)", "$", "MODSEQ 5", 'MODSEQ "/flags/\\\\Seen" all 7',
    "NOT (SEEN FLAGGED)", "OR FROM \"a\" (TO \"b\" CC \"c\")", 'OR OR SEEN DRAFT NOT BODY "x\\"y"',
    '(SUBJECT "日本語" TEXT "")',
]


@pytest.mark.parametrize("text", SEARCHES)
def test_search_keys_print_canonically(text: str) -> None:
    key = parse_search_key(text)
    assert parse_search_key(str(key)) == key
    if text != "NOT (SEEN FLAGGED)":
        assert str(key) == text


def test_search_key_spelling_is_normalized() -> None:
    assert str(parse_search_key('from smith since 01-feb-1994 uid 1:2')) == '(FROM "smith" SINCE 1-Feb-1994 UID 1:2)'
    assert str(parse_search_key("TEXT {3}\r\na\r\n")) == 'TEXT {3}\r\na\r\n'


FETCHES = ["ENVELOPE", "BODY[]", "BODY.PEEK[HEADER]", "BODY[1.2.3.TEXT]<10.20>", 'BODY[HEADER.FIELDS (From "X y")]',
           "BINARY.PEEK[1]", "BINARY.SIZE[]", "RFC822.HEADER", "UID", "BODYSTRUCTURE", "BODY"]


@pytest.mark.parametrize("text", FETCHES)
def test_fetch_attributes_print_as_requested(text: str) -> None:
    (attribute,) = attributes(Reader(text.encode()))
    assert str(attribute) == text
