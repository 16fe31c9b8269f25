"""DKIM keys of the hosted domains: an RSA 2048 and an Ed25519 key each (RFC 6376, RFC 8463),
created with the domain, or on first use for a domain hosted before keys existed, and kept
as PKCS#8 PEM in the replicated directory entry "dkim:DOMAIN". Private keys are never
logged nor put in an error message."""
from __future__ import annotations

import asyncio
import base64
import json
import time
from collections import defaultdict
from dataclasses import dataclass, field, replace
from typing import Protocol

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from router.errors import NotFound
from tidings_runtime.addresses import parse_domain

RSA_SHA256 = "rsa-sha256"
ED25519_SHA256 = "ed25519-sha256"
RSA_BITS = 2048
_KEY_TAG = {RSA_SHA256: "rsa", ED25519_SHA256: "ed25519"}


class DirectoryEntries(Protocol):
    """What DkimKeys needs of the directory (router.directory.Directory)."""

    async def get(self, key: str) -> bytes | None: ...

    async def put(self, key: str, value: bytes) -> None: ...

    async def is_hosted(self, domain: str) -> bool: ...


@dataclass(frozen=True)
class SigningKey:
    selector: str
    algorithm: str                                 # RSA_SHA256 or ED25519_SHA256
    private_pem: bytes = field(repr=False)         # PKCS#8 PEM; b"" where only the record is wanted
    record_name: str                               # selector._domainkey.domain
    record_value: str                              # the TXT record: v=DKIM1; k=...; p=...


def _pem(key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def _rsa_key() -> tuple[str, bytes]:
    """A new RSA key: its PEM, and its public key as SubjectPublicKeyInfo DER (RFC 6376 3.6.1)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
    public = key.public_key().public_bytes(serialization.Encoding.DER,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    return _pem(key), public


def _ed25519_key() -> tuple[str, bytes]:
    """A new Ed25519 key: its PEM, and its raw 32-byte public key (RFC 8463 4.2)."""
    key = ed25519.Ed25519PrivateKey.generate()
    public = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return _pem(key), public


def new_keys(year: int) -> list[dict[str, str]]:
    """The stored form of a domain's new keys (CPU-bound: run it in a worker thread)."""
    keys = []
    for prefix, algorithm, make in (("rsa", RSA_SHA256, _rsa_key), ("ed", ED25519_SHA256, _ed25519_key)):
        private_pem, public = make()
        keys.append({"selector": f"{prefix}{year}a", "algorithm": algorithm, "private_pem": private_pem,
                     "public": base64.b64encode(public).decode()})
    return keys


def _signing_key(domain: str, stored: dict[str, str]) -> SigningKey:
    return SigningKey(selector=stored["selector"], algorithm=stored["algorithm"],
                      private_pem=stored["private_pem"].encode(),
                      record_name=f"{stored['selector']}._domainkey.{domain}",
                      record_value=f"v=DKIM1; k={_KEY_TAG[stored['algorithm']]}; p={stored['public']}")


class DkimKeys:
    def __init__(self, directory: DirectoryEntries) -> None:
        self.directory = directory
        self._creating: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    @staticmethod
    def _key(domain: str) -> str:
        return f"dkim:{domain}"

    async def _stored(self, domain: str) -> list[SigningKey] | None:
        value = await self.directory.get(self._key(domain))
        if value is None:
            return None
        return [_signing_key(domain, k) for k in json.loads(value)["keys"]]

    async def create(self, domain: str) -> list[SigningKey]:
        """The keys of hosted `domain` (canonical form), made and stored if it has none.
        Two routers racing store two sets; the directory keeps one, which both answer."""
        async with self._creating[domain]:
            keys = await self._stored(domain)
            if keys is not None:
                return keys
            fresh = await asyncio.to_thread(new_keys, time.gmtime().tm_year)
            await self.directory.put(self._key(domain), json.dumps({"domain": domain, "keys": fresh}).encode())
            return await self._stored(domain) or [_signing_key(domain, k) for k in fresh]

    async def signing_keys(self, domain: str) -> list[SigningKey]:
        """The keys of a hosted domain (created on first use); NotFound if we do not host it,
        AddressError if `domain` is malformed."""
        domain = parse_domain(domain)
        keys = await self._stored(domain)
        if keys is not None:
            return keys
        if not await self.directory.is_hosted(domain):
            raise NotFound(f"{domain} is not hosted")
        return await self.create(domain)

    async def records(self, domain: str) -> list[SigningKey]:
        """`signing_keys` without the private keys: what to publish in DNS."""
        return [replace(key, private_pem=b"") for key in await self.signing_keys(domain)]
