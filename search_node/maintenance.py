"""Maintenance steps for a user's postings: seal fresh records into segments, merge segments,
retire what they replace and purge it once its grace is over (the layout is in segments.py).

A step is planned from committed state, off the commit path, and applied in a batch of its
own only if the user's directory is still the one it was planned from.
"""
from __future__ import annotations

import struct
import time
from dataclasses import dataclass, field

from pyroaring import BitMap

from search_node import segments
from search_node.keys import (
    DOCS_CF,
    POSTINGS_CF,
    dir_key,
    fresh_key,
    retired_key,
    retired_range,
    segment_prefix,
    state_key,
)
from search_node.records import UserState
from search_node.segments import Directory, Run, encode_blocks, fresh_keys, merge, read_run, with_summaries
from search_node.store import Reader, Txn

_RETIRED_KEY = struct.Struct(">BH")  # retired record value: per key, cf index and length, then the key
_CFS = (POSTINGS_CF, DOCS_CF)


def _encode_retired(keys: list[tuple[str, bytes]]) -> bytes:
    return b"".join(_RETIRED_KEY.pack(_CFS.index(cf), len(k)) + k for cf, k in keys)


def _decode_retired(data: bytes) -> list[tuple[str, bytes]]:
    at, keys = 0, []
    while at < len(data):
        cf, size = _RETIRED_KEY.unpack_from(data, at)
        at += _RETIRED_KEY.size
        keys.append((_CFS[cf], data[at:at + size]))
        at += size
    return keys


@dataclass
class Plan:
    """One maintenance step: the writes that move the user from directory `expected` to `directory`.

    What the step replaces (merged segments' blocks, sealed fresh records) is not deleted but
    retired: listed in a record that a step segments.GRACE_MS later deletes with everything it lists."""

    user: bytes
    expected: bytes
    directory: bytes
    sealed: int = 0  # the new sealed mark (names the retired record)
    puts: list[tuple[bytes, bytes]] = field(default_factory=list)  # search_postings
    retire: list[tuple[str, bytes]] = field(default_factory=list)
    purge: list[tuple[str, bytes]] = field(default_factory=list)  # retired records due, and what they list
    docs: int = 0  # docs sealed


def has_retired(reader: Reader, user: bytes) -> bool:
    """Whether the user has retired data not yet purged (due or not)."""
    return next(iter(reader.scan(DOCS_CF, *retired_range(user))), None) is not None


def _due(reader: Reader, user: bytes, now_ms: int) -> list[tuple[str, bytes]]:
    """Retired records whose grace is over, and the keys they list."""
    out: list[tuple[str, bytes]] = []
    for key, value in reader.scan(DOCS_CF, *retired_range(user, now_ms)):
        out += [*_decode_retired(value), (DOCS_CF, key)]
    return out


def plan_step(reader: Reader, user: bytes, live: BitMap | None = None, now_ms: int | None = None) -> Plan | None:
    """The next step for a user (None: nothing to do now): purge what is due, seal the next
    segments.SEAL_DOCS fresh docs, carry merges."""
    raw = reader.get(DOCS_CF, dir_key(user))
    if raw is None:
        return None
    directory = Directory.decode(raw)
    purge = _due(reader, user, int(time.time() * 1000) if now_ms is None else now_ms)
    next_docnum = UserState.decode(reader.get(DOCS_CF, state_key(user))).next_docnum
    lo, seal, fanout = directory.sealed, segments.SEAL_DOCS, segments.MERGE_FANOUT
    if not directory.to_seal(next_docnum):
        return Plan(user, raw, raw, purge=purge) if purge else None
    hi = lo + seal
    records = reader.multi_get(DOCS_CF, [fresh_key(user, d) for d in range(lo, hi)])
    run = merge([Run.of_doc(d, fresh_keys(r)) for d, r in zip(range(lo, hi), records) if r is not None])
    spans, span = list(directory.spans), (lo, hi)
    plan = Plan(user, raw, b"", hi, retire=[(DOCS_CF, fresh_key(user, d)) for d in range(lo, hi)], purge=purge,
                docs=seal)
    width = seal
    while (width * fanout <= segments.MAX_SPAN and len(spans) >= fanout - 1
           and all(b - a == width for a, b in spans[1 - fanout:])):
        older = spans[1 - fanout:]
        del spans[1 - fanout:]
        parts = []
        for s in older:
            part, block_keys = read_run(reader, user, s)
            parts.append(part)
            plan.retire += [(POSTINGS_CF, k) for k in block_keys]
        run = merge([*parts, run], live)
        span, width = (older[0][0], hi), width * fanout
        if width == segments.SUMMARY_SPAN:  # wider segments merge their parts' summaries like any posting
            run = with_summaries(run)
    spans.append(span)
    plan.puts = list(encode_blocks(segment_prefix(user, span), run))
    plan.directory = Directory(directory.nonce, hi, tuple(spans)).encode()
    return plan


def apply(txn: Txn, plan: Plan, now_ms: int | None = None) -> bool:
    """Write the plan if the user's directory is still the one it was made from; what it replaces
    is retired from now (`now_ms`, default the clock) for segments.GRACE_MS."""
    if txn.get(DOCS_CF, dir_key(plan.user)) != plan.expected:
        return False
    for cf, key in plan.purge:
        txn.delete(cf, key)
    for key, value in plan.puts:
        txn.put(POSTINGS_CF, key, value)
    if plan.retire:
        now = int(time.time() * 1000) if now_ms is None else now_ms
        txn.put(DOCS_CF, retired_key(plan.user, now + segments.GRACE_MS, plan.sealed), _encode_retired(plan.retire))
    txn.put(DOCS_CF, dir_key(plan.user), plan.directory)
    return True
