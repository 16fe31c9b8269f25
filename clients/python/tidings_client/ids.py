"""Entry ids, the name a message gets once where it enters the system (the contract of
`Mail.Deliver`: 32 lowercase hex digits, 48 bits of Unix milliseconds then 80 random bits).

Make one per message and reuse it on every retry of its `deliver`: the router stores a
retried delivery over the same rows, so a retry never makes a second copy.
"""
from __future__ import annotations

import secrets
import time


def new_entry_id() -> str:
    ms = int(time.time() * 1000)
    return f"{ms & ((1 << 48) - 1):012x}{secrets.randbits(80):020x}"


__all__ = ["new_entry_id"]
