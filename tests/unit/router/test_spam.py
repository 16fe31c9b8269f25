"""The classifier's math (Robinson's f(w), Fisher combining), the score of one copy, and the
X-Tidings-Spam header: written, parsed back, and a sender's own copy stripped."""
from __future__ import annotations

import pytest

from router import spam
from router.spam import ModelCounts, Verdict
from tidings.v1 import types_pb2


def test_token_probability_is_pulled_to_neutral_by_few_observations() -> None:
    assert spam.token_probability(0, 0, 10, 10) == 0.5
    assert spam.token_probability(10, 0, 10, 10) == pytest.approx((0.5 + 10) / 11)
    assert spam.token_probability(1, 0, 10, 10) == pytest.approx(0.75)
    assert spam.token_probability(0, 10, 10, 10) < 0.05
    assert spam.token_probability(5, 5, 10, 100) > 0.85        # 50% of spam against 5% of ham


def test_fisher_combining_is_symmetric_and_confident_with_evidence() -> None:
    assert spam.combine([]) == 0.5
    assert spam.combine([0.99] * 20) > 0.99
    assert spam.combine([0.01] * 20) < 0.01
    assert spam.combine([0.9, 0.1]) == pytest.approx(0.5)
    assert spam.combine([0.2, 0.8, 0.3, 0.7]) == pytest.approx(0.5)
    assert spam.combine([1e-300] * 300 + [1.0 - 1e-16] * 3) < 0.5   # no underflow, no domain error
    assert spam.chi2q(0.0, 4) == 1.0


def _model(spam_n: int, ham_n: int, tokens: dict[str, tuple[int, int]]) -> ModelCounts:
    return ModelCounts(spam_n, ham_n, tokens)


def test_a_model_counts_only_once_it_has_enough_of_both() -> None:
    screening = types_pb2.Screening(screened=True)
    small = _model(4, 100, {"viagra": (4, 0)})
    assert spam.score(screening, small, None, None, "", 5.0).reasons == ()
    trained = _model(20, 20, {f"w{i}": (20, 0) for i in range(10)})
    verdict = spam.score(screening, trained, None, None, "", 5.0)
    assert [r.name for r in verdict.reasons] == ["BAYES_SPAM"]
    assert verdict.score == pytest.approx(6.0, abs=0.01) and verdict.spam
    hammy = _model(20, 20, {f"w{i}": (0, 20) for i in range(10)})
    assert spam.score(screening, hammy, None, None, "", 5.0).score == pytest.approx(-3.0, abs=0.01)


def test_reputation_and_the_users_own_marks_and_quarantine() -> None:
    screening = types_pb2.Screening(screened=True, rules=[types_pb2.SpamRule(name="MISSING_DATE", score=0.5)])
    user = _model(0, 0, {"r:bad.example": (3, 0)})
    verdict = spam.score(screening, user, None, _model(3, 0, {}), "bad.example", 5.0)
    assert {r.name: r.score for r in verdict.reasons} == {"MISSING_DATE": 0.5, "USER_SENDER_SPAM": 3.0,
                                                           "REPUTATION_BAD": 4.8}
    assert verdict.spam and verdict.score == 8.3
    relented = spam.score(screening, _model(0, 0, {"r:bad.example": (3, 1)}), None, _model(3, 1, {}),
                          "bad.example", 5.0)
    assert not relented.spam
    quarantined = spam.score(types_pb2.Screening(screened=True, quarantine=True), _model(0, 0, {}), None, None, "", 5.0)
    assert quarantined.spam and quarantined.reasons[0].name == "DMARC_QUARANTINE"


def test_reputation_keys() -> None:
    assert spam.reputation_key(types_pb2.Screening(authenticated_domain="Mail.Example.COM.")) == "mail.example.com"
    assert spam.reputation_key(types_pb2.Screening(client_ip="192.0.2.77")) == "ip4-192.0.2"
    assert spam.reputation_key(types_pb2.Screening(client_ip="2001:db8::1")) == "ip6-2001-0db8-0000"
    assert spam.reputation_key(types_pb2.Screening()) == ""


def test_the_header_round_trips_and_a_senders_own_is_stripped() -> None:
    rules = (types_pb2.SpamRule(name="BAYES_SPAM", score=3.5), types_pb2.SpamRule(name="odd name!", score=-1.25))
    verdict = Verdict(2.25, False, rules, "example.com")
    header = verdict.header()
    assert header == (b"X-Tidings-Spam: score=2.25; verdict=ham; sender=example.com; "
                      b"reasons=BAYES_SPAM(3.50),odd_name_(-1.25)\r\n")
    raw = header + b"Subject: hi\r\n\r\nX-Tidings-Spam: in the body stays\r\n"
    parsed = spam.parse_header(raw)
    assert parsed is not None and parsed.score == 2.25 and not parsed.spam and parsed.sender == "example.com"
    assert [(r.name, r.score) for r in parsed.reasons] == [("BAYES_SPAM", 3.5), ("odd_name_", -1.25)]
    forged = b"Subject: hi\r\nx-tidings-spam: score=-99;\r\n  verdict=ham\r\nFrom: a@b.example\r\n\r\nbody\r\n"
    assert spam.strip_header(forged) == b"Subject: hi\r\nFrom: a@b.example\r\n\r\nbody\r\n"
    assert spam.parse_header(b"Subject: hi\r\n\r\nX-Tidings-Spam: score=1\r\n") is None
    assert spam.strip_header(b"Subject: x\n\nbody") == b"Subject: x\n\nbody"


def test_the_shared_model_cache_reads_only_what_it_lacks_and_forgets_its_own_training() -> None:
    import asyncio

    from tidings.v1 import storage_pb2
    asked: list[list[str]] = []

    async def read(model: str, tokens: object) -> storage_pb2.SpamCountsResponse:
        names = list(tokens)  # type: ignore[call-overload]
        asked.append(names)
        return storage_pb2.SpamCountsResponse(spam_messages=7, ham_messages=9, tokens=names,
                                              counts=[storage_pb2.SpamTokenCount(spam=1, ham=2) for _ in names])

    async def run() -> None:
        cache = spam.SharedModelCache(ttl=60)
        first = await cache.counts("spam:g:0", ["a", "b"], read)
        assert (first.spam_messages, first.ham_messages, first.tokens) == (7, 9, {"a": (1, 2), "b": (1, 2)})
        again = await cache.counts("spam:g:0", ["b", "c"], read)
        assert again.tokens == {"b": (1, 2), "c": (1, 2)}
        await cache.counts("spam:g:0", ["a", "c"], read)          # all held: no read
        cache.forget("spam:g:0")
        await cache.counts("spam:g:0", ["a"], read)
        assert asked == [["a", "b"], ["c"], ["a"]]

    asyncio.run(run())


def test_the_header_goes_under_our_edges_received_field() -> None:
    verdict = Verdict(1.0, False, (), "")
    traced = b"Received: from a\r\n by b; now\r\nAuthentication-Results: x\r\nSubject: s\r\n\r\nbody"
    stamped = verdict.stamp(traced)
    trace = b"Received: from a\r\n by b; now\r\n"
    assert stamped == trace + verdict.header() + traced[len(trace):]
    assert spam.parse_header(stamped) is not None
    assert verdict.stamp(b"Subject: s\r\n\r\nbody").startswith(b"X-Tidings-Spam: ")
