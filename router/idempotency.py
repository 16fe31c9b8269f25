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

Cost: one quorum read (R) before the delivery; a first request adds one quorum write (W),
also before the delivery, so that a delivery that fails after its claim leaves the claim
for the retry. The claim is written at the version of its entry id's time
(``hlc_pack(ms)``), as queue items: the same claim again is a no-op.

The race: two requests with one key (or digest) whose reads both come before either claim
is on W replicas both find nothing and deliver under their own entry ids (a duplicate);
the claim written last wins, so every later retry gets that one's answer. A client
retrying after an answer, an error or a timeout of the first is always caught, since the
first claim was on W replicas before its delivery started.

Entries are not collected after their window (as spam events): an expired claim is
replaced by the next request's, and otherwise costs a few hundred bytes of directory.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Protocol

from router.errors import AlreadyExists, InvalidArgument
from tidings_runtime.hlc import hlc_pack
from tidings_runtime.ids import entry_id_ms

IDEMPOTENCY_TTL_MS = 24 * 3600 * 1000
DEDUPE_TTL_MS = 3 * 24 * 3600 * 1000
MAX_KEY = 255
REUSED = "idempotency_key_reused"   # how the refusal's detail begins (the edge's error code)


class KeyReused(AlreadyExists):
    """The key was used for another request within its window."""


class Store(Protocol):
    """Where claims live: the router's Directory (read newest of R, written on W at a version)."""

    async def get(self, key: str) -> bytes | None: ...
    async def put(self, key: str, value: bytes, version: int | None = None) -> None: ...


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


async def held(store: Store, entry: str, request_hash: bytes, ttl_ms: int, now_ms: int | None = None) -> Claim | None:
    """The claim that ``entry`` holds within its window (its hash must be ``request_hash``:
    KeyReused otherwise), or None; writes nothing."""
    now = int(time.time() * 1000) if now_ms is None else now_ms
    value = await store.get(entry)
    if value is None:
        return None
    record = json.loads(value)
    if record.get("ms", 0) + ttl_ms <= now:
        return None
    if record.get("hash") != request_hash.hex():
        raise KeyReused(f"{REUSED}: this key was used for another request in the last "
                        f"{ttl_ms // 3_600_000} hours")
    return Claim(record["entry_id"], record.get("message_id", ""), replayed=True)


async def claim(store: Store, entry: str, request_hash: bytes, entry_id: str, message_id: str,
                ttl_ms: int, now_ms: int | None = None) -> Claim:
    """The claim that ``entry`` holds within its window (its hash must be ``request_hash``),
    or a new one for ``entry_id``, durable on W replicas when this returns."""
    found = await held(store, entry, request_hash, ttl_ms, now_ms)
    if found is not None:
        return found
    ms = entry_id_ms(entry_id)
    value = json.dumps({"hash": request_hash.hex(), "entry_id": entry_id, "message_id": message_id,
                        "ms": ms}, separators=(",", ":")).encode()
    await store.put(entry, value, hlc_pack(ms))
    return Claim(entry_id, message_id, replayed=False)
