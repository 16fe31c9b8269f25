"""Accounts and hosted domains: the directory, replicated like any partition (keyed by
"account:EMAIL" / "domain:NAME", both in the canonical form of tidings_runtime.addresses),
with argon2 password hashes."""
from __future__ import annotations

import asyncio
import json
import secrets
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from router.errors import AlreadyExists, InvalidArgument, NotFound, NotHosted, Unauthenticated
from router.mutations import Mutation
from router.replicas import Replicas, newest
from tidings.v1 import storage_pb2
from tidings_runtime.addresses import AddressError, canonical, parse_domain
from tidings_runtime.hlc import HybridLogicalClock
from tidings_runtime.partitions import directory_partition
from tidings_runtime.ttl_cache import TtlCache

_hasher = PasswordHasher()
# Accounts and hosted domains are never removed and an account's user id never changes, so
# a router keeps those it read for a while (mail for one user comes in bursts: RCPT, then
# DATA, then the next message); a password is always checked against a fresh read.
LOOKUP_TTL_S = 60.0
LOOKUPS_KEPT = 100_000


@dataclass(frozen=True)
class Account:
    user_id: str
    email: str
    password_hash: str


class Directory:
    def __init__(self, replicas: Replicas, clock: HybridLogicalClock, lookup_ttl_s: float = LOOKUP_TTL_S) -> None:
        self.replicas = replicas
        self.clock = clock
        self._accounts: TtlCache[str, Account] = TtlCache(lookup_ttl_s, LOOKUPS_KEPT)
        self._domains: TtlCache[str, bool] = TtlCache(lookup_ttl_s, LOOKUPS_KEPT)

    async def entry(self, key: str) -> storage_pb2.DirectoryEntry | None:
        """The newest copy of a directory entry among R replicas (None: no replica holds it)."""
        outcome = await self.replicas.read(directory_partition(key),
                                           lambda stub: stub.GetDirectory(storage_pb2.DirectoryKey(key=key)))
        return newest([entry for _, entry in outcome.answers if entry.found], lambda e: e.version)

    async def get(self, key: str) -> bytes | None:
        """A directory entry's value (accounts, domains, DKIM keys, claims), newest of R."""
        best = await self.entry(key)
        return None if best is None else bytes(best.value)

    async def put(self, key: str, value: bytes, version: int | None = None) -> None:
        """Write a directory entry on W replicas, last writer wins; at `version` (default: now)."""
        entry = storage_pb2.DirectoryEntry(key=key, value=value, version=self.clock.now() if version is None else version)
        await self.replicas.write(directory_partition(key), Mutation(entry))

    async def offer(self, key: str, value: bytes, version: int) -> list[bytes]:
        """Write a directory entry on W replicas at `version` (last writer wins); the value each
        of those replicas holds afterwards (the newer one it kept, or this)."""
        entry = storage_pb2.DirectoryEntry(key=key, value=value, version=version)
        outcome = await self.replicas.write(directory_partition(key), Mutation(entry))
        return [bytes(answer.value) for _, answer in outcome.answers if answer.found]

    async def is_hosted(self, domain: str) -> bool:
        """Whether the domain is hosted; a yes is kept (LOOKUP_TTL_S), a no read again each time."""
        if self._domains.get(domain):
            return True
        hosted = await self.get(f"domain:{domain}") is not None
        if hosted:
            self._domains.put(domain, True)
        return hosted

    async def add_domain(self, name: str) -> tuple[str, bool]:
        """Host ``name``: its canonical form, and whether it was new; AddressError if malformed."""
        domain = parse_domain(name)
        if await self.is_hosted(domain):
            return domain, False
        await self.put(f"domain:{domain}", json.dumps({"domain": domain}).encode())
        return domain, True

    async def account(self, email: str) -> Account | None:
        """The account read from R replicas now (authentication uses this one)."""
        value = await self.get(f"account:{email}")
        if value is None:
            return None
        d = json.loads(value)
        account = Account(user_id=d["user_id"], email=d["email"], password_hash=d["password_hash"])
        self._accounts.put(email, account)
        return account

    async def known_account(self, email: str) -> Account | None:
        """The account, as read in the last LOOKUP_TTL_S if it was (for routing mail: its user
        id never changes); an unknown address is read again each time."""
        return self._accounts.get(email) or await self.account(email)

    async def add_user(self, email: str, password: str) -> Account:
        email = canonical(email)
        if len(password) < 8:
            raise InvalidArgument("password must have at least 8 characters")
        if not await self.is_hosted(email.rpartition("@")[2]):
            raise InvalidArgument(f"domain of {email} is not hosted")
        if await self.account(email) is not None:
            raise AlreadyExists(f"{email} exists")
        password_hash = await asyncio.to_thread(_hasher.hash, password)
        account = Account(user_id=secrets.token_hex(8), email=email, password_hash=password_hash)
        await self.put(f"account:{email}", json.dumps(account.__dict__).encode())
        return account

    async def authenticate(self, email: str, password: str) -> Account:
        try:
            email = canonical(email)
        except AddressError:
            raise Unauthenticated("wrong email or password") from None
        account = await self.account(email)
        if account is None or not await asyncio.to_thread(_verify, account.password_hash, password):
            raise Unauthenticated("wrong email or password")
        return account

    async def local_account(self, address: str) -> Account:
        """The account of a hosted user; NotFound for an unknown user, InvalidArgument if not
        hosted, AddressError if ``address`` is not a mailbox."""
        email = canonical(address)
        account = await self.known_account(email)
        if account is not None:
            return account
        if await self.is_hosted(email.rpartition("@")[2]):
            raise NotFound(f"no user {email}")
        raise NotHosted(f"domain of {email} is not hosted")


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False
