"""Token ranges (start, end] of the ring as key bounds: wrapping, the whole ring, the last token."""
from __future__ import annotations

import pytest

from storage_node import keys
from storage_node.errors import InvalidArgument
from storage_node.ranges import TokenRange, check_ranges, key_bounds, union_bounds

MAX = keys.MAX_U64


@pytest.mark.parametrize("start,end,spans", [
    (10, 20, [(11, 20)]),
    (20, 10, [(0, 10), (21, MAX)]),
    (5, 5, [(0, MAX)]),
    (0, 0, [(0, MAX)]),
    (10, MAX, [(11, MAX)]),
    (MAX, 10, [(0, 10)]),
    (MAX, 0, [(0, 0)]),
    (MAX - 1, MAX, [(MAX, MAX)]),
])
def test_spans(start: int, end: int, spans: list[tuple[int, int]]) -> None:
    assert TokenRange(start, end).spans() == spans


def test_contains_excludes_start_includes_end() -> None:
    r = TokenRange(20, 10)
    assert [r.contains(t) for t in (10, 11, 20, 21, 0, MAX)] == [True, False, False, True, True, True]
    assert TokenRange(7, 7).contains(7)


def test_key_bounds() -> None:
    assert key_bounds(TokenRange(10, 20)) == [(keys.u64(11), keys.u64(21))]
    assert key_bounds(TokenRange(10, MAX)) == [(keys.u64(11), None)]
    assert key_bounds(TokenRange(3, 3)) == [(keys.u64(0), None)]
    assert key_bounds(TokenRange(20, 10)) == [(keys.u64(0), keys.u64(11)), (keys.u64(21), None)]


def test_key_of_token_lies_in_bounds_of_a_range_containing_it() -> None:
    for user in ("0123456789abcdef", "fedcba9876543210", "00000000000000ff"):
        token = keys.partition_token(user)
        key = keys.message(user, "ab" * 16)
        for r in (TokenRange(token - 1, token), TokenRange(token, token - 1), TokenRange(token, token)):
            inside = any(low <= key and (high is None or key < high) for low, high in key_bounds(r))
            assert inside == r.contains(token)


def test_union_merges_overlapping_and_adjacent_ranges() -> None:
    assert union_bounds([TokenRange(10, 20), TokenRange(15, 30), TokenRange(40, 50)]) == [
        (keys.u64(11), keys.u64(31)), (keys.u64(41), keys.u64(51))]
    assert union_bounds([TokenRange(10, 20), TokenRange(20, 30)]) == [(keys.u64(11), keys.u64(31))]
    assert union_bounds([TokenRange(MAX - 5, 5), TokenRange(5, MAX - 5)]) == [(keys.u64(0), None)]


def test_bad_ranges_are_invalid_arguments() -> None:
    with pytest.raises(InvalidArgument):
        TokenRange(-1, 5)
    with pytest.raises(InvalidArgument):
        TokenRange(0, MAX + 1)
    with pytest.raises(InvalidArgument):
        check_ranges([])
