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


# Directory entries live in the partition of their key, except the outgoing queue's:
# `queue:SHARD:ID` lives in partition `queue:SHARD`, so one shard's items share a replica
# set and a node can list a shard's due items from its own index.
QUEUE_PREFIX = "queue:"


# Spam training events are directory entries too: `spam:u:USER:MSG` lives with the user's
# mail (partition USER), `spam:g:K:USER:MSG` in global shard `spam:g:K`, and
# `spam:r:KEY:USER:MSG` in the sender's reputation `spam:r:KEY` (KEY has no colon).
SPAM_PREFIX = "spam:"
SPAM_USER_PREFIX = "spam:u:"


def directory_partition(key: str) -> str:
    """The partition (and so the ring token) of a directory key."""
    if key.startswith(QUEUE_PREFIX):
        shard, _, _ = key[len(QUEUE_PREFIX):].partition(":")
        return QUEUE_PREFIX + shard
    if key.startswith(SPAM_PREFIX):
        if key.startswith(SPAM_USER_PREFIX):
            return key[len(SPAM_USER_PREFIX):].partition(":")[0]
        return key.rsplit(":", 2)[0]
    return key
