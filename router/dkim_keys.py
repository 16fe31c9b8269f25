"""DKIM keys of the hosted domains: an RSA 2048 and an Ed25519 key each (RFC 6376, RFC 8463),
created with the domain, or on first use for a domain hosted before keys existed, and kept
as PKCS#8 PEM in the replicated directory entry "dkim:DOMAIN". Rotation adds keys under new
selectors that sign nothing until activated (one active key an algorithm), and retires
keys no longer active; a retired selector is never given out again. Private keys are never
logged nor put in an error message."""
from __future__ import annotations

import asyncio
import base64
import json
import re
import string
import time
from collections import defaultdict
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from router.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from tidings_runtime.addresses import parse_domain

RSA_SHA256 = "rsa-sha256"
ED25519_SHA256 = "ed25519-sha256"
RSA_BITS = 2048
_KEY_TAG = {RSA_SHA256: "rsa", ED25519_SHA256: "ed25519"}
_PREFIX = {RSA_SHA256: "rsa", ED25519_SHA256: "ed"}          # of the selectors we name: rsa2026a, ed2026a
ALGORITHMS = (RSA_SHA256, ED25519_SHA256)
# RFC 6376 3.1: a selector is dot-separated sub-domain labels (letters, digits, inner hyphens)
_SELECTOR = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*")


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
    active: bool = True                            # signs outgoing mail (else only published)


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


_MAKE = {RSA_SHA256: _rsa_key, ED25519_SHA256: _ed25519_key}


def new_key(algorithm: str, selector: str, *, active: bool) -> dict[str, Any]:
    """The stored form of one new key (CPU-bound for RSA: run it in a worker thread)."""
    private_pem, public = _MAKE[algorithm]()
    return {"selector": selector, "algorithm": algorithm, "private_pem": private_pem,
            "public": base64.b64encode(public).decode(), "active": active}


def new_keys(year: int) -> list[dict[str, Any]]:
    """The stored form of a domain's first keys, both active (CPU-bound: run it in a worker thread)."""
    return [new_key(algorithm, f"{_PREFIX[algorithm]}{year}a", active=True) for algorithm in ALGORITHMS]


def next_selector(algorithm: str, year: int, taken: set[str]) -> str:
    """The first of rsaYEARa, rsaYEARb, ... (edYEAR... for Ed25519) not in `taken`."""
    for letter in string.ascii_lowercase:
        selector = f"{_PREFIX[algorithm]}{year}{letter}"
        if selector not in taken:
            return selector
    raise FailedPrecondition(f"every {_PREFIX[algorithm]}{year}a-z selector is taken: name one with --selector")


def parse_selector(text: str) -> str:
    """A selector as DNS labels, lower-cased; InvalidArgument otherwise."""
    selector = text.strip().lower()
    if len(selector) > 63 or not _SELECTOR.fullmatch(selector):
        raise InvalidArgument(f"{text!r} is not a DKIM selector (letters, digits and inner hyphens, "
                              "dot-separated, at most 63 characters)")
    return selector


def _signing_key(domain: str, stored: dict[str, Any]) -> SigningKey:
    return SigningKey(selector=stored["selector"], algorithm=stored["algorithm"],
                      private_pem=stored["private_pem"].encode(),
                      record_name=f"{stored['selector']}._domainkey.{domain}",
                      record_value=f"v=DKIM1; k={_KEY_TAG[stored['algorithm']]}; p={stored['public']}",
                      active=bool(stored.get("active", True)))   # keys stored before rotation all sign


class DkimKeys:
    def __init__(self, directory: DirectoryEntries) -> None:
        self.directory = directory
        self._creating: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    @staticmethod
    def _key(domain: str) -> str:
        return f"dkim:{domain}"

    async def _entry(self, domain: str) -> dict[str, Any] | None:
        value = await self.directory.get(self._key(domain))
        return None if value is None else dict(json.loads(value))

    async def _stored(self, domain: str) -> list[SigningKey] | None:
        entry = await self._entry(domain)
        return None if entry is None else [_signing_key(domain, k) for k in entry["keys"]]

    async def _put(self, domain: str, entry: dict[str, Any]) -> None:
        await self.directory.put(self._key(domain), json.dumps(entry).encode())

    async def create(self, domain: str) -> list[SigningKey]:
        """The keys of hosted `domain` (canonical form), made and stored if it has none.
        Two routers racing store two sets; the directory keeps one, which both answer."""
        async with self._creating[domain]:
            keys = await self._stored(domain)
            if keys is not None:
                return keys
            fresh = await asyncio.to_thread(new_keys, time.gmtime().tm_year)
            await self._put(domain, {"domain": domain, "keys": fresh})
            return await self._stored(domain) or [_signing_key(domain, k) for k in fresh]

    async def keys(self, domain: str) -> list[SigningKey]:
        """Every key of a hosted domain, active or only published (created on first use);
        NotFound if we do not host it, AddressError if `domain` is malformed."""
        domain = parse_domain(domain)
        keys = await self._stored(domain)
        if keys is not None:
            return keys
        if not await self.directory.is_hosted(domain):
            raise NotFound(f"{domain} is not hosted")
        return await self.create(domain)

    async def signing_keys(self, domain: str) -> list[SigningKey]:
        """The keys that sign a hosted domain's mail: the active one of each algorithm."""
        return [key for key in await self.keys(domain) if key.active]

    async def records(self, domain: str) -> list[SigningKey]:
        """Every key without its private part: what to publish in DNS (an inactive key too:
        a key about to sign, or one whose signatures are still in flight)."""
        return [replace(key, private_pem=b"") for key in await self.keys(domain)]

    async def _changing(self, domain: str) -> tuple[str, asyncio.Lock]:
        """The canonical domain, its keys made if it had none, and the lock its changes take
        (against another change on this router; two routers changing one domain at once race,
        the directory keeping the last write)."""
        await self.keys(domain)
        domain = parse_domain(domain)
        return domain, self._creating[domain]

    async def _stored_entry(self, domain: str) -> dict[str, Any]:
        entry = await self._entry(domain)
        if entry is None:
            raise NotFound(f"{domain} has no DKIM keys")
        return entry

    @staticmethod
    def _find(domain: str, entry: dict[str, Any], selectors: list[str]) -> list[dict[str, Any]]:
        """The stored keys of `selectors` (each named once); NotFound for one the domain has not."""
        wanted = [parse_selector(s) for s in selectors]
        if not wanted:
            raise InvalidArgument("name at least one selector")
        if len(set(wanted)) != len(wanted):
            raise InvalidArgument("a selector is named twice")
        by_selector = {k["selector"]: k for k in entry["keys"]}
        unknown = [s for s in wanted if s not in by_selector]
        if unknown:
            raise NotFound(f"{domain} has no DKIM key with selector {', '.join(unknown)}")
        return [by_selector[s] for s in wanted]

    async def rotate(self, domain: str, algorithms: list[str] | None = None,
                     selector: str | None = None) -> list[SigningKey]:
        """New keys for `domain`, one an algorithm (both unless told), stored inactive: they sign
        nothing until `activate`. `selector` names the one new key; by default rsaYEARx and
        edYEARx, x the first letter no key ever had. Answers the new keys, without private parts."""
        wanted = list(dict.fromkeys(algorithms or ALGORITHMS))
        bad = [a for a in wanted if a not in ALGORITHMS]
        if bad:
            raise InvalidArgument(f"unknown DKIM algorithm {', '.join(bad)} (one of {', '.join(ALGORITHMS)})")
        if selector is not None and len(wanted) != 1:
            raise InvalidArgument("a selector names one key: say which algorithm it is for")
        domain, lock = await self._changing(domain)
        async with lock:
            entry = await self._stored_entry(domain)
            taken = {k["selector"] for k in entry["keys"]} | set(entry.get("retired", []))
            if selector is not None:
                chosen = parse_selector(selector)
                if chosen in taken:
                    raise AlreadyExists(f"{domain} has or had a DKIM key with selector {chosen}: "
                                        "a selector once published is not used again")
                names = [chosen]
            else:
                year = time.gmtime().tm_year
                names = [next_selector(a, year, taken) for a in wanted]
            fresh = [await asyncio.to_thread(new_key, a, name, active=False) for a, name in zip(wanted, names)]
            entry["keys"] = entry["keys"] + fresh
            await self._put(domain, entry)
        return [replace(_signing_key(domain, k), private_pem=b"") for k in fresh]

    async def activate(self, domain: str, selectors: list[str]) -> list[SigningKey]:
        """Sign with the keys of `selectors` from now on, each in place of the active key of its
        algorithm (which stays published until retired). At most one selector an algorithm.
        Answers every key of the domain, without private parts."""
        domain, lock = await self._changing(domain)
        async with lock:
            entry = await self._stored_entry(domain)
            chosen = self._find(domain, entry, selectors)
            algorithms = [k["algorithm"] for k in chosen]
            if len(set(algorithms)) != len(algorithms):
                raise InvalidArgument("one key an algorithm signs: name one selector per algorithm")
            names = {k["selector"] for k in chosen}
            for key in entry["keys"]:
                if key["algorithm"] in algorithms:
                    key["active"] = key["selector"] in names
            await self._put(domain, entry)
        return await self.records(domain)

    async def retire(self, domain: str, selectors: list[str]) -> list[SigningKey]:
        """Drop the keys of `selectors`, none of them active: their records can leave DNS.
        Answers the keys left, without private parts."""
        domain, lock = await self._changing(domain)
        async with lock:
            entry = await self._stored_entry(domain)
            chosen = self._find(domain, entry, selectors)
            active = [k["selector"] for k in chosen if k.get("active", True)]
            if active:
                raise FailedPrecondition(f"{', '.join(active)} signs {domain}'s mail: activate another key "
                                         "of its algorithm first")
            names = {k["selector"] for k in chosen}
            entry["keys"] = [k for k in entry["keys"] if k["selector"] not in names]
            entry["retired"] = sorted(set(entry.get("retired", [])) | names)
            await self._put(domain, entry)
        return await self.records(domain)
