"""Hybrid logical clock: layout, monotonicity, merging, threads."""
from __future__ import annotations

import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tidings_runtime.hlc import LOGICAL_MASK, ClockSkewError, HybridLogicalClock, hlc_logical, hlc_ms, hlc_pack


class FakeClock:
    def __init__(self, ms: int = 1_700_000_000_000) -> None:
        self.ms = ms

    def __call__(self) -> int:
        return self.ms


def test_layout() -> None:
    clock = FakeClock()
    hlc = HybridLogicalClock(clock)
    first = hlc.now()
    assert hlc_ms(first) == clock.ms and hlc_logical(first) == 0
    assert hlc.now() == hlc_pack(clock.ms, 1)
    clock.ms += 1
    assert hlc.now() == hlc_pack(clock.ms, 0)
    with pytest.raises(ValueError):
        hlc_pack(1, LOGICAL_MASK + 1)


def test_monotonic_when_the_wall_clock_goes_back() -> None:
    clock = FakeClock()
    hlc = HybridLogicalClock(clock)
    before = hlc.now()
    clock.ms -= 5_000
    after = [hlc.now() for _ in range(3)]
    assert before < after[0] < after[1] < after[2]
    assert hlc_ms(after[2]) == hlc_ms(before)  # stays in the last physical millisecond


def test_counter_overflow_borrows_the_next_millisecond() -> None:
    clock = FakeClock()
    hlc = HybridLogicalClock(clock)
    stamps = [hlc.now() for _ in range(LOGICAL_MASK + 3)]
    assert stamps == sorted(set(stamps))
    assert hlc_ms(stamps[-1]) == clock.ms + 1


@settings(max_examples=200, deadline=None)
@given(events=st.lists(st.tuples(st.booleans(), st.integers(-3_000, 3_000),
                                 st.integers(0, LOGICAL_MASK)), max_size=40))
def test_update_is_greater_than_both(events: list[tuple[bool, int, int]]) -> None:
    clock = FakeClock()
    hlc = HybridLogicalClock(clock)
    last = 0
    for remote, step, logical in events:
        clock.ms += step  # the wall clock wanders both ways
        if remote:
            received = hlc_pack(clock.ms + step, logical)
            ts = hlc.update(received)
            assert ts > received
        else:
            ts = hlc.now()
        assert ts > last
        assert hlc_ms(ts) >= clock.ms
        last = ts


def test_skew_guard() -> None:
    clock = FakeClock()
    hlc = HybridLogicalClock(clock, max_skew_ms=1_000)
    assert hlc.update(hlc_pack(clock.ms + 999)) > hlc_pack(clock.ms + 999)
    with pytest.raises(ClockSkewError):
        hlc.update(hlc_pack(clock.ms + 60_000))
    with pytest.raises(ValueError):
        hlc.update(-1)


def test_thread_safety() -> None:
    hlc = HybridLogicalClock(FakeClock())  # a frozen wall clock: every stamp is the counter's
    per_thread = 5_000
    results: list[list[int]] = [[] for _ in range(4)]

    def work(out: list[int]) -> None:
        for i in range(per_thread):
            out.append(hlc.update(out[-1]) if i % 7 == 3 else hlc.now())

    threads = [threading.Thread(target=work, args=(out,)) for out in results]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    every = [ts for out in results for ts in out]
    assert len(set(every)) == len(every) == 4 * per_thread
    for out in results:
        assert out == sorted(out)
