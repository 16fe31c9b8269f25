"""Holding a sending user whose mail far ends keep refusing as spam, so we do not become a
spam source: after `limit` such refusals within `window_ms`, the user's further deliveries
are deferred (never dropped) until the window has passed, and `tidings_outbound_held_senders`
says how many are held (an alert fires on it).

A refusal "as spam" is a 5xx whose enhanced status is 5.7.x (policy) or whose text names spam
or a blocklist. The state is the worker's own: each worker holds on what it saw, and a
restarted worker starts afresh (the far ends keep refusing, so it holds again soon).
"""
from __future__ import annotations

import re
from collections import defaultdict, deque

from prometheus_client import Counter, Gauge

from smtp_edge.outbound import reply
from smtp_edge.outbound.retry import Verdict

HELD_SENDERS = Gauge("tidings_outbound_held_senders", "Sending users held for repeated spam refusals")
HELD_ATTEMPTS = Counter("tidings_outbound_held_attempts", "Recipients deferred because their sender is held")

_SPAMMY = re.compile(r"spam|junk|blocklist|blacklist|dnsbl|reputation", re.IGNORECASE)


def refused_as_spam(result: reply.Reply) -> bool:
    if result.verdict is not Verdict.PERMANENT or not result.remote_mta:
        return False
    return result.status.startswith("5.7.") or bool(_SPAMMY.search(result.text()))


def held_reply(sender: str) -> reply.Reply:
    return reply.local(451, "4.7.1", f"held: mail from {sender} was recently refused as spam by its "
                                     "recipients' servers")


class SenderHold:
    def __init__(self, limit: int = 5, window_ms: int = 3_600_000) -> None:
        self.limit = limit
        self.window_ms = window_ms
        self._refusals: defaultdict[str, deque[int]] = defaultdict(deque)

    def _recent(self, sender: str, now_ms: int) -> deque[int]:
        times = self._refusals[sender]
        while times and times[0] <= now_ms - self.window_ms:
            times.popleft()
        return times

    def record(self, sender: str, result: reply.Reply, now_ms: int) -> None:
        if sender and refused_as_spam(result):
            self._recent(sender, now_ms).append(now_ms)
            self._publish(now_ms)

    def is_held(self, sender: str, now_ms: int) -> bool:
        held = bool(sender) and len(self._recent(sender, now_ms)) >= self.limit
        self._publish(now_ms)
        return held

    def _publish(self, now_ms: int) -> None:
        for sender in [s for s, times in self._refusals.items() if not self._recent(s, now_ms)]:
            del self._refusals[sender]
        HELD_SENDERS.set(sum(len(times) >= self.limit for times in self._refusals.values()))
