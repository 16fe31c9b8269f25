"""Bearer tokens: HMAC-SHA256 over user id, email and expiry.

Format: `v1.<payload>.<signature>`, both parts base64url without padding;
payload is compact JSON `{"uid", "email", "exp"}` (exp in Unix seconds). The
edge mints a token once the router's `Mail.Authenticate` accepted the
password; any edge holding the same secret verifies it without a lookup.
A verified token's principal is kept a while (`VERIFIED_TTL`, at most `VERIFIED_MAX` tokens,
least recently used out first), so that a client's next requests skip the HMAC and the JSON;
its expiry is checked on every request all the same.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from dataclasses import dataclass

from tidings_runtime.ttl_cache import TtlCache

_VERSION = "v1"
VERIFIED_TTL = 300.0  # seconds a verified token is kept
VERIFIED_MAX = 10_000


class InvalidToken(Exception):
    """The token is malformed, forged or expired; the message says which."""


@dataclass(frozen=True)
class Principal:
    """Who a request acts for."""

    user_id: str
    email: str
    expires_at: int  # Unix seconds


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenSigner:
    def __init__(self, secret: bytes, ttl_seconds: int) -> None:
        self._secret = secret
        self.ttl_seconds = ttl_seconds
        self._verified: TtlCache[str, Principal] = TtlCache(VERIFIED_TTL, VERIFIED_MAX)

    def _sign(self, signed_part: str) -> bytes:
        return hmac.new(self._secret, signed_part.encode("ascii"), hashlib.sha256).digest()

    def mint(self, user_id: str, email: str, *, now: float | None = None) -> tuple[str, Principal]:
        issued = int(time.time() if now is None else now)
        principal = Principal(user_id=user_id, email=email, expires_at=issued + self.ttl_seconds)
        payload = json.dumps(
            {"uid": user_id, "email": email, "exp": principal.expires_at}, separators=(",", ":"), sort_keys=True
        ).encode()
        signed_part = f"{_VERSION}.{_b64encode(payload)}"
        return f"{signed_part}.{_b64encode(self._sign(signed_part))}", principal

    def verify(self, token: str, *, now: float | None = None) -> Principal:
        principal = self._verified.get(token)
        if principal is None:
            principal = self._check(token)
            self._verified.put(token, principal)
        if principal.expires_at <= (time.time() if now is None else now):
            raise InvalidToken("token expired")
        return principal

    def _check(self, token: str) -> Principal:
        """The principal of a well-formed token signed with our secret, expired or not."""
        parts = token.split(".")
        if len(parts) != 3 or parts[0] != _VERSION:
            raise InvalidToken("malformed token")
        signed_part = f"{parts[0]}.{parts[1]}"
        try:
            signature = _b64decode(parts[2])
        except (binascii.Error, ValueError):
            raise InvalidToken("malformed token") from None
        if not hmac.compare_digest(signature, self._sign(signed_part)):
            raise InvalidToken("invalid token signature")
        try:
            claims = json.loads(_b64decode(parts[1]))
            principal = Principal(user_id=str(claims["uid"]), email=str(claims["email"]), expires_at=int(claims["exp"]))
        except (binascii.Error, ValueError, KeyError, TypeError):
            raise InvalidToken("malformed token") from None
        return principal
