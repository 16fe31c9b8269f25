"""Partitions: the ring token of a partition key, and the system folders every mailbox has.

The ring (router) places a partition by its token and the storage node's keys start
with it, so both read it from here.
"""
from __future__ import annotations

import hashlib
import struct

_U64 = struct.Struct(">Q")

# System folders have fixed numbers; the number, not the name, is in the storage keys.
SYSTEM_FOLDERS: dict[str, int] = {
    "inbox": 1, "sent": 2, "drafts": 3, "spam": 4, "trash": 5, "archive": 6,
}


def partition_token(partition_key: str) -> int:
    """The 64-bit ring token of a partition key (a user id, or a directory key)."""
    return int(_U64.unpack(hashlib.blake2b(partition_key.encode(), digest_size=8).digest())[0])
