"""The retry schedule, the queue lifetime and a recipient's next state."""
from __future__ import annotations

import pytest

from smtp_edge.outbound.retry import (
    DEFAULT_SCHEDULE,
    Decision,
    Next,
    RetrySchedule,
    Verdict,
    decide,
    expires_ms,
    is_expired,
)

MIN = 60_000
HOUR = 60 * MIN


def test_the_default_schedule_then_every_two_hours() -> None:
    schedule = RetrySchedule.parse(DEFAULT_SCHEDULE)
    waits = [schedule.wait_ms(attempt) for attempt in range(1, 11)]
    assert waits == [2 * MIN, 5 * MIN, 10 * MIN, 15 * MIN, 30 * MIN, HOUR, 2 * HOUR, 2 * HOUR, 2 * HOUR, 2 * HOUR]
    assert schedule.next_attempt_ms(1, 1_000) == 1_000 + 2 * MIN


def test_a_schedule_needs_steps() -> None:
    with pytest.raises(ValueError):
        RetrySchedule.parse(" , ")
    assert RetrySchedule.parse("30s, 5m").waits_ms == (30_000, 5 * MIN)


def test_next_state_per_verdict() -> None:
    schedule = RetrySchedule.parse("2m,5m")
    far = 10 * 24 * HOUR
    assert decide(Verdict.DELIVERED, 1, 0, far, schedule) == Decision(Next.DELIVERED)
    assert decide(Verdict.PERMANENT, 1, 0, far, schedule) == Decision(Next.FAILED)
    assert decide(Verdict.TEMPORARY, 1, 0, far, schedule) == Decision(Next.DEFERRED, 2 * MIN)
    assert decide(Verdict.TEMPORARY, 3, 0, far, schedule) == Decision(Next.DEFERRED, 5 * MIN)


def test_the_last_attempt_is_at_the_end_of_the_lifetime_then_it_expires() -> None:
    schedule = RetrySchedule.parse("2h")
    assert decide(Verdict.TEMPORARY, 5, 0, HOUR, schedule) == Decision(Next.DEFERRED, HOUR)
    assert decide(Verdict.TEMPORARY, 6, HOUR, HOUR, schedule) == Decision(Next.EXPIRED)
    assert decide(Verdict.DELIVERED, 6, HOUR, HOUR, schedule) == Decision(Next.DELIVERED)


def test_the_items_own_expiry_wins_over_the_lifetime() -> None:
    assert expires_ms(1_000, 9_000, 5_000) == 9_000
    assert expires_ms(1_000, 0, 5_000) == 6_000
    assert not is_expired(6_000, 6_000) and is_expired(6_001, 6_000)
