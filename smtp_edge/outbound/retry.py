"""When to try a recipient again, and when to give up: the retry schedule
(`2m,5m,10m,15m,30m,1h,2h`, its last step repeating) and the queue lifetime, as pure
functions of attempts and milliseconds. Durations read as everywhere else
(`tidings_runtime.durations`: `30s`, `5m`, `5d`)."""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from tidings_runtime.durations import parse_durations

DEFAULT_SCHEDULE = "2m,5m,10m,15m,30m,1h,2h"
DEFAULT_LIFETIME = "5d"


@dataclass(frozen=True)
class RetrySchedule:
    """The waits after each failed attempt; after the last, its last wait repeats."""

    waits_ms: tuple[int, ...]

    @classmethod
    def parse(cls, text: str) -> RetrySchedule:
        """`2m,5m,10m` as a schedule; ValueError if empty or a step is not a duration."""
        return cls(tuple(round(seconds * 1000) for seconds in parse_durations(text)))

    def wait_ms(self, attempts: int) -> int:
        """The wait after the `attempts`-th failed attempt (1 is the first)."""
        return self.waits_ms[min(max(attempts, 1), len(self.waits_ms)) - 1]

    def next_attempt_ms(self, attempts: int, now_ms: int) -> int:
        return now_ms + self.wait_ms(attempts)


class Verdict(Enum):
    """What one attempt's reply means for a recipient."""

    DELIVERED = "delivered"     # 2xx
    TEMPORARY = "temporary"     # 4xx, or no reply (DNS, network)
    PERMANENT = "permanent"     # 5xx, a null MX, a domain that does not exist


class Next(Enum):
    """A recipient's state after an attempt (mirrors QueueRecipient.State)."""

    DELIVERED = "delivered"
    DEFERRED = "deferred"
    FAILED = "failed"
    EXPIRED = "expired"         # failed because the queue lifetime ran out


@dataclass(frozen=True)
class Decision:
    state: Next
    next_attempt_ms: int = 0


def decide(verdict: Verdict, attempts: int, now_ms: int, expires_ms: int, schedule: RetrySchedule) -> Decision:
    """The state after attempt number `attempts` (counting this one) ended with `verdict`.

    A temporary failure is deferred per the schedule, but never past `expires_ms`: the
    last attempt is made when the lifetime ends, and a temporary failure then (or later)
    means the recipient has expired, so the sender hears at the end of the lifetime."""
    if verdict is Verdict.DELIVERED:
        return Decision(Next.DELIVERED)
    if verdict is Verdict.PERMANENT:
        return Decision(Next.FAILED)
    if now_ms >= expires_ms:
        return Decision(Next.EXPIRED)
    return Decision(Next.DEFERRED, min(schedule.next_attempt_ms(attempts, now_ms), expires_ms))


def expires_ms(created_ms: int, item_expires_ms: int, lifetime_ms: int) -> int:
    """The item's own expiry (the router's, set at enqueue) or, when it has none,
    its creation plus our queue lifetime."""
    return item_expires_ms if item_expires_ms > 0 else created_ms + lifetime_ms


def is_expired(now_ms: int, expiry_ms: int) -> bool:
    return now_ms > expiry_ms
