"""Claims that make a repeated delivery reuse the first one's entry id.

Two kinds, both directory entries (replicated like any: LWW, hints, anti-entropy):

- ``idem:USER:KEY`` — an HTTP ``Idempotency-Key`` of a sending user, kept 24 h: the hash of
  the request, the entry id and the Message-ID of the first request. The same key with the
  same hash adopts them; another hash is :class:`KeyReused` (the edge's 422).
- ``dedupe:HEX`` — the digest of an SMTP transaction (listener, user, MAIL FROM, RCPT TOs,
  the bytes as received), kept 3 days: the entry id of its first delivery.

A delivery under an adopted entry id writes the same keys (each copy by entry id, the Sent
copy and the queue item by an id derived from it), so what the first attempt stored is not
stored again and what it did not finish is finished.

One write round, no read first: a claim is *offered* (written on W replicas, before the
delivery, so that a delivery that fails after its claim leaves the claim for the retry) at
a version that falls as its entry id's time rises (``claim_version``): the earliest claim
wins last-writer-wins everywhere (the write itself, hints, anti-entropy), so offering a
later one changes nothing where an earlier one is held, and each replica answers with the
claim it holds after the write (PutDirectory does). Of the W answers the earliest claim is
the one: two W sets meet (W + W > N), so a retry after the first claim was acknowledged
always sees it. A claim past its window does not count: the offer moves to the entry's
next generation (``KEY#2``, ``#3``, ...), which whoever saw the expired one moves to as
well (``held`` reads the chain the same way), so a request repeated after its window gets
a new claim while one within it is still adopted.

The race: two requests with one key (or digest) whose offers both come before either claim
is on W replicas may each see only their own and deliver under their own entry ids (a
duplicate); the earlier claim wins the replicas, so every later retry gets that one's
answer. A client retrying after an answer, an error or a timeout of the first is always
caught. Claims written before one-round claims (at the version of their time, which every
offer now beats) are not adopted: a retry across that upgrade may be delivered twice.

Entries are not collected after their window (as spam events): an expired claim costs a
few hundred bytes of directory, and its entry's next generation takes over.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Protocol

from router.errors import AlreadyExists, InvalidArgument, Unavailable
from tidings_runtime.hlc import LOGICAL_BITS, hlc_pack
from tidings_runtime.ids import entry_id_ms, is_entry_id

IDEMPOTENCY_TTL_MS = 24 * 3600 * 1000
DEDUPE_TTL_MS = 3 * 24 * 3600 * 1000
MAX_KEY = 255
MAX_GENERATIONS = 64                # expired claims of one entry skipped before giving up
_LAST_MS = (1 << (64 - LOGICAL_BITS)) - 1
REUSED = "idempotency_key_reused"   # how the refusal's detail begins (the edge's error code)


class KeyReused(AlreadyExists):
    """The key was used for another request within its window."""


class Store(Protocol):
    """Where claims live: the router's Directory (read newest of R, written on W at a version)."""

    async def get(self, key: str) -> bytes | None: ...
    async def offer(self, key: str, value: bytes, version: int) -> list[bytes]:
        """Write on W replicas (last writer wins); the values those replicas hold afterwards."""


@dataclass(frozen=True)
class Claim:
    entry_id: str
    message_id: str
    replayed: bool          # an earlier request's claim was adopted


def valid_key(key: str) -> bool:
    """1-255 printable ASCII characters (space included)."""
    return 1 <= len(key) <= MAX_KEY and all(" " <= c <= "~" for c in key)


def idempotency_entry(user_id: str, key: str) -> str:
    if not user_id:
        raise InvalidArgument("an idempotency key needs a sending user")
    if not valid_key(key):
        raise InvalidArgument("an idempotency key is 1-255 printable ASCII characters")
    return f"idem:{user_id}:{key}"


def dedupe_entry(digest: bytes) -> str:
    if not 16 <= len(digest) <= 64:
        raise InvalidArgument("a dedupe digest is 16 to 64 bytes")
    return f"dedupe:{digest.hex()}"


def claim_version(entry_id: str) -> int:
    """A claim's version: the earlier its entry id's time, the higher, so the earliest claim
    wins; claims of one millisecond are told apart by the entry id's random end."""
    return hlc_pack(_LAST_MS - entry_id_ms(entry_id), 0xFFFF - int(entry_id[-4:], 16))


def _version_of(record: dict[str, object]) -> int:
    entry_id = record.get("entry_id")
    return claim_version(entry_id) if isinstance(entry_id, str) and is_entry_id(entry_id) else 0


def _generation(entry: str, generation: int) -> str:
    return entry if generation == 1 else f"{entry}#{generation}"


def _adopted(record: dict[str, object], request_hash: bytes, ttl_ms: int, entry_id: str) -> Claim:
    if record.get("hash") != request_hash.hex():
        raise KeyReused(f"{REUSED}: this key was used for another request in the last "
                        f"{ttl_ms // 3_600_000} hours")
    adopted = str(record["entry_id"])
    return Claim(adopted, str(record.get("message_id", "")), replayed=adopted != entry_id)


def _live(record: dict[str, object], ttl_ms: int, now: int) -> bool:
    ms = record.get("ms", 0)
    return isinstance(ms, int) and ms + ttl_ms > now


async def held(store: Store, entry: str, request_hash: bytes, ttl_ms: int, now_ms: int | None = None) -> Claim | None:
    """The claim that ``entry`` holds within its window (its hash must be ``request_hash``:
    KeyReused otherwise), or None; writes nothing."""
    now = int(time.time() * 1000) if now_ms is None else now_ms
    for generation in range(1, MAX_GENERATIONS + 1):
        value = await store.get(_generation(entry, generation))
        if value is None:
            return None
        record = json.loads(value)
        if _live(record, ttl_ms, now):
            return _adopted(record, request_hash, ttl_ms, "")
    return None


async def claim(store: Store, entry: str, request_hash: bytes, entry_id: str, message_id: str,
                ttl_ms: int, now_ms: int | None = None) -> Claim:
    """The claim that ``entry`` holds within its window (its hash must be ``request_hash``),
    or a new one for ``entry_id``, durable on W replicas when this returns: one write round."""
    now = int(time.time() * 1000) if now_ms is None else now_ms
    ms = entry_id_ms(entry_id)
    value = json.dumps({"hash": request_hash.hex(), "entry_id": entry_id, "message_id": message_id,
                        "ms": ms}, separators=(",", ":")).encode()
    for generation in range(1, MAX_GENERATIONS + 1):
        answers = [json.loads(v) for v in await store.offer(_generation(entry, generation), value,
                                                            claim_version(entry_id))]
        earliest = max(answers, key=_version_of, default=None)     # what every replica will hold
        if earliest is None:
            raise Unavailable(f"no replica answered the claim {entry}")
        if _live(earliest, ttl_ms, now) or earliest.get("entry_id") == entry_id:
            return _adopted(earliest, request_hash, ttl_ms, entry_id)
    raise Unavailable(f"{entry} has {MAX_GENERATIONS} expired claims")
