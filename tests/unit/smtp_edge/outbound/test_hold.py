"""A sender whose mail far ends keep refusing as spam is held for a while, then let go."""
from __future__ import annotations

from smtp_edge.outbound.hold import HELD_SENDERS, SenderHold, refused_as_spam
from smtp_edge.outbound.reply import Reply

SPAM = Reply(550, "5.7.1 message refused as spam", "mx.far.test")
UNKNOWN = Reply(550, "5.1.1 no such user", "mx.far.test")


def test_what_counts_as_a_spam_refusal() -> None:
    assert refused_as_spam(SPAM)
    assert refused_as_spam(Reply(554, "rejected: listed on a DNS blocklist", "mx.far.test"))
    assert not refused_as_spam(UNKNOWN)
    assert not refused_as_spam(Reply(451, "4.7.1 try later, spam suspected", "mx.far.test"))   # temporary
    assert not refused_as_spam(Reply(550, "5.7.1 our own refusal"))                            # no far end


def test_held_after_the_limit_within_the_window_and_let_go_after_it() -> None:
    guard = SenderHold(limit=3, window_ms=60_000)
    for t in (0, 1_000):
        guard.record("u1", SPAM, t)
    guard.record("u1", UNKNOWN, 1_500)
    assert not guard.is_held("u1", 2_000)
    guard.record("u1", SPAM, 2_000)
    assert guard.is_held("u1", 2_500) and not guard.is_held("u2", 2_500)
    assert HELD_SENDERS._value.get() == 1
    assert not guard.is_held("u1", 60_500)          # the first refusal has left the window
    assert HELD_SENDERS._value.get() == 0
