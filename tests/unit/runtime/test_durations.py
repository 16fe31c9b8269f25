"""Durations as operators write them."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tidings_runtime.durations import format_duration, parse_duration, parse_durations


@pytest.mark.parametrize(("text", "seconds"), [("30s", 30), ("5m", 300), ("2h", 7200), ("5d", 432000),
                                               ("1w", 604800), ("45", 45), ("250ms", 0.25), (" 1.5h ", 5400)])
def test_units(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5x", "-5m", "0s", "m", "5 minutes", "1e3"])
def test_bad_durations_are_refused_naming_the_text(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_lists() -> None:
    assert parse_durations("2m,5m, 10m,1h") == (120, 300, 600, 3600)
    with pytest.raises(ValueError):
        parse_durations(" , ")


@given(st.integers(min_value=1, max_value=10**7))
def test_format_reads_back(seconds: int) -> None:
    assert parse_duration(format_duration(seconds)) == seconds
