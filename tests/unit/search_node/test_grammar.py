"""Query grammar: canonical reprs of parsed queries and error positions."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from search_node.grammar import QuerySyntaxError, parse
from search_node.plan import PAnd, Received, plan

CASES = {
    "": "ALL",
    "foo": 'word("foo")',
    "foo bar": 'AND(word("foo"), word("bar"))',
    "foo AND bar": 'AND(word("foo"), word("bar"))',
    "a OR b c": 'AND(OR(word("a"), word("b")), word("c"))',
    "a OR b OR c": 'OR(word("a"), word("b"), word("c"))',
    "-a OR b": 'OR(NOT(word("a")), word("b"))',
    'from:alice subject:"Big news"': 'AND(from:word("alice"), subject:phrase("Big news"))',
    "meet* -(x OR y)": 'AND(prefix("meet"), NOT(OR(word("x"), word("y"))))',
    "IS:Unread in:inbox": 'AND(is:word("Unread"), in:word("inbox"))',
    '"a  b"c': 'AND(phrase("a  b"), word("c"))',
    "e-mail -- x": 'AND(word("e-mail"), NOT(word("-")), word("x"))',
    "(a (b OR c))": 'AND(word("a"), OR(word("b"), word("c")))',
    "re: hi": 'AND(re:word(""), word("hi"))',
    "larger:5M before:2024/01/31": 'AND(larger:word("5M"), before:word("2024/01/31"))',
}


@pytest.mark.parametrize("text", CASES)
def test_canonical_repr(text: str) -> None:
    assert repr(parse(text)) == CASES[text]


ERRORS = {"(a": 0, "a)": 1, '"abc': 0, "OR a": 0, "a OR": 2, "()": 1, 'from:"x': 5, "a AND": 2, "-OR": 0,
          "a (b": 2, "a OR )": 2}


@pytest.mark.parametrize("text", ERRORS)
def test_syntax_errors_carry_position(text: str) -> None:
    with pytest.raises(QuerySyntaxError) as err:
        parse(text)
    assert err.value.position == ERRORS[text]


BAD_VALUES = {"is:maybe": 3, "has:fun": 4, "a before:2024/13/01": 9, "after:yesterday": 6, "older_than:7w": 11,
              "larger:big": 7, "from:": 5, "in:": 3, "is:unre*": 3}


@pytest.mark.parametrize("text", BAD_VALUES)
def test_bad_operator_values(text: str) -> None:
    with pytest.raises(QuerySyntaxError) as err:
        plan(parse(text), now_ms=0)
    assert err.value.position == BAD_VALUES[text]


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list('ab -():"*OR AND from:is:unread in:x é東')), max_size=30))
def test_any_text_parses_or_raises_syntax_error(text: str) -> None:
    try:
        plan(parse(text), now_ms=0)
    except QuerySyntaxError as err:
        assert 0 <= err.position <= len(text)


def test_date_bounds_in_one_and_merge_into_one_range() -> None:
    merged = plan(parse("memo after:2024/01/01 before:2024/02/01 newer_than:400d"), now_ms=1_730_000_000_000)
    assert isinstance(merged, PAnd)
    assert [k for k in merged.children if isinstance(k, Received)] == \
        [Received(max(1_704_067_200_000, 1_730_000_000_000 - 400 * 86_400_000 + 1), 1_706_745_600_000)]
