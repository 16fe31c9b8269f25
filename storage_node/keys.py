"""Every RocksDB key byte of a storage node is built here, big-endian, so byte order is API order.

A partition is one user. Each per-user key starts with the partition's 64-bit ring
token and then the user id, so a token range of the ring is one contiguous key range
(anti-entropy and streaming scan ranges, not users). Time-clustered keys store the
inverted receive time, so a forward scan is newest first.
"""
from __future__ import annotations

import hashlib
import struct

MAX_U64 = (1 << 64) - 1
_U64 = struct.Struct(">Q")
_U32 = struct.Struct(">I")


def partition_token(partition_key: str) -> int:
    """The 64-bit ring token of a partition key (a user id, or a directory key)."""
    return _U64.unpack(hashlib.blake2b(partition_key.encode(), digest_size=8).digest())[0]


def u64(value: int) -> bytes:
    return _U64.pack(value)


def read_u64(data: bytes, offset: int = 0) -> int:
    return _U64.unpack_from(data, offset)[0]
