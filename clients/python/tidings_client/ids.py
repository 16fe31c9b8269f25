"""Entry ids, the name a message gets once where it enters the system (the contract of
`Mail.Deliver`: 32 lowercase hex digits, 48 bits of Unix milliseconds then 80 random bits, so
ids sort by creation time and never collide in practice).

Make one per message and reuse it on every retry of its `deliver`: the router stores a
retried delivery over the same rows, so a retry never makes a second copy. The server side
reads the same format (`tidings_runtime.ids` re-exports this module).
"""
from __future__ import annotations

import re
import secrets
import time

_ENTRY_ID = re.compile(r"^[0-9a-f]{32}$")


def new_entry_id(now_ms: int | None = None) -> str:
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    return f"{ms & ((1 << 48) - 1):012x}{secrets.randbits(80):020x}"


def is_entry_id(value: str) -> bool:
    return bool(_ENTRY_ID.match(value))


def entry_id_ms(entry_id: str) -> int:
    return int(entry_id[:12], 16)


__all__ = ["entry_id_ms", "is_entry_id", "new_entry_id"]
