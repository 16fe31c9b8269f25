"""Bearer tokens: mint, verify, and every way a token is refused."""
from __future__ import annotations

import base64
import json

import pytest

from http_edge.tokens import InvalidToken, TokenSigner

SECRET = b"s" * 32


def test_round_trip_carries_user_email_expiry() -> None:
    signer = TokenSigner(SECRET, ttl_seconds=60)
    token, principal = signer.mint("00000000000000a1", "ann@example.test", now=1_000)
    assert principal.expires_at == 1_060
    assert signer.verify(token, now=1_059) == principal


def test_expired() -> None:
    signer = TokenSigner(SECRET, ttl_seconds=60)
    token, _ = signer.mint("u", "ann@example.test", now=1_000)
    with pytest.raises(InvalidToken, match="expired"):
        signer.verify(token, now=1_060)


def test_other_secret_rejected() -> None:
    token, _ = TokenSigner(SECRET, 60).mint("u", "ann@example.test")
    with pytest.raises(InvalidToken, match="signature"):
        TokenSigner(b"t" * 32, 60).verify(token)


def test_tampered_payload_rejected() -> None:
    signer = TokenSigner(SECRET, 60)
    token, _ = signer.mint("u", "ann@example.test")
    version, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["uid"] = "someone-else"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    with pytest.raises(InvalidToken):
        signer.verify(f"{version}.{forged}.{signature}")


@pytest.mark.parametrize("token", ["", "abc", "v1.a", "v2.a.b", "v1.!!!.!!!", "v1..", "a.b.c.d"])
def test_malformed(token: str) -> None:
    with pytest.raises(InvalidToken):
        TokenSigner(SECRET, 60).verify(token)


def test_a_kept_token_still_expires_and_is_checked_once() -> None:
    signer = TokenSigner(SECRET, ttl_seconds=60)
    token, principal = signer.mint("u", "ann@example.test", now=1_000)
    checks = 0
    check = signer._check

    def counted(t: str) -> object:
        nonlocal checks
        checks += 1
        return check(t)

    signer._check = counted  # type: ignore[method-assign,assignment]
    assert signer.verify(token, now=1_010) == principal
    assert signer.verify(token, now=1_020) == principal
    with pytest.raises(InvalidToken, match="expired"):
        signer.verify(token, now=1_060)
    assert checks == 1
    for _ in range(2):   # a refused token is not kept: checked each time
        with pytest.raises(InvalidToken, match="signature"):
            signer.verify(token[:-4] + "AAAA", now=1_010)
    assert checks == 3
