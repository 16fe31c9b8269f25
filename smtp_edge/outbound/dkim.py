"""DKIM signatures for outgoing mail (dkimpy): one per key of the From domain, so a hosted
domain's rsa-sha256 and ed25519-sha256 keys both sign (RFC 8463 section 5).

Keys come from the router (`Queue.GetSigningKeys`, PKCS#8 PEM) and are cached per domain
for a few minutes, a domain we do not host included (it signs nothing). dkimpy wants an
RSA key as PEM, which PKCS#8 is; an ed25519 key as the base64 of its raw 32-byte seed.
"""
from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.utils import getaddresses

import dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

log = logging.getLogger(__name__)

SIGNED_HEADERS = ("From", "To", "Cc", "Subject", "Date", "Message-ID", "MIME-Version", "Content-Type",
                  "In-Reply-To", "References")
CACHE_S = 300.0
ALGORITHMS = ("rsa-sha256", "ed25519-sha256")


class KeyFormatError(ValueError):
    """A signing key whose algorithm or PEM we cannot use."""


@dataclass(frozen=True)
class Key:
    """One signing key in dkimpy's form."""

    selector: str
    algorithm: str          # "rsa-sha256" | "ed25519-sha256"
    private_key: bytes      # what dkimpy's sign() takes for that algorithm


def dkimpy_key(selector: str, algorithm: str, pkcs8_pem: bytes) -> Key:
    """A key from the router's PKCS#8 PEM; KeyFormatError if it does not match `algorithm`."""
    if algorithm not in ALGORITHMS:
        raise KeyFormatError(f"selector {selector}: unknown DKIM algorithm {algorithm!r}")
    try:
        private = serialization.load_pem_private_key(pkcs8_pem, password=None)
    except ValueError as exc:
        raise KeyFormatError(f"selector {selector}: unreadable private key") from exc
    if algorithm == "rsa-sha256" and isinstance(private, rsa.RSAPrivateKey):
        return Key(selector, algorithm, private.private_bytes(serialization.Encoding.PEM,
                                                              serialization.PrivateFormat.TraditionalOpenSSL,
                                                              serialization.NoEncryption()))
    if algorithm == "ed25519-sha256" and isinstance(private, ed25519.Ed25519PrivateKey):
        seed = private.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                     serialization.NoEncryption())
        return Key(selector, algorithm, base64.b64encode(seed))
    raise KeyFormatError(f"selector {selector}: the key is not an {algorithm} key")


def from_domain(raw: bytes) -> str | None:
    """The domain of the (first) From address, lower-cased; None if there is none."""
    headers = raw.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    message = message_from_bytes(headers + b"\r\n\r\n", policy=policy.compat32)
    value = message.get("From")
    if value is None:
        return None
    for _, address in getaddresses([str(value)]):
        domain = address.rpartition("@")[2].strip().lower()
        if domain:
            return domain
    return None


def sign(raw: bytes, domain: str, keys: Sequence[Key]) -> bytes:
    """`raw` with one DKIM-Signature per key prepended (the last key's on top)."""
    signatures = b""
    for key in keys:
        header = dkim.sign(raw, key.selector.encode(), domain.encode(), key.private_key,
                           signature_algorithm=key.algorithm.encode(),
                           include_headers=[h.encode() for h in SIGNED_HEADERS])
        signatures = header + signatures
    return signatures + raw


KeySource = Callable[[str], Awaitable[list[Key] | None]]


class Signer:
    """Signs each message with its From domain's keys, fetched through `source` (None:
    not a hosted domain) and cached for `cache_s` seconds."""

    def __init__(self, source: KeySource, *, cache_s: float = CACHE_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._source = source
        self._cache_s = cache_s
        self._clock = clock
        self._cache: dict[str, tuple[float, list[Key]]] = {}

    async def keys(self, domain: str) -> list[Key]:
        cached = self._cache.get(domain)
        if cached is not None and self._clock() < cached[0]:
            return cached[1]
        keys = await self._source(domain) or []
        self._cache[domain] = (self._clock() + self._cache_s, keys)
        return keys

    async def sign(self, raw: bytes) -> bytes:
        """`raw` signed for its From domain; unchanged if we hold no key for it."""
        domain = from_domain(raw)
        if domain is None:
            return raw
        keys = await self.keys(domain)
        if not keys:
            log.info("no DKIM key for %s: sent unsigned", domain)
            return raw
        try:
            return await asyncio.to_thread(sign, raw, _idna(domain), keys)
        except dkim.DKIMException as exc:     # a message dkimpy cannot parse: better unsigned than stuck
            log.error("DKIM signing for %s failed, sent unsigned: %s", domain, exc)
            return raw


def _idna(domain: str) -> str:
    return domain if domain.isascii() else domain.encode("idna").decode("ascii")
