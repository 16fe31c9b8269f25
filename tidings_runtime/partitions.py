"""Partitions: the ring token of a partition key, and the folder numbers of the storage keys
(the system folders every mailbox has, and each user's custom folders).

The ring (router) places a partition by its token and the storage node's keys start
with it, so both read it from here.
"""
from __future__ import annotations

import hashlib
import re
import struct

_U64 = struct.Struct(">Q")

# System folders have fixed numbers; the number, not the name, is in the storage keys.
SYSTEM_FOLDERS: dict[str, int] = {
    "inbox": 1, "sent": 2, "drafts": 3, "spam": 4, "trash": 5, "archive": 6,
}
# A custom folder's id spells its number: "f" and 8 lowercase hex digits, the number at least
# CUSTOM_FOLDER_MIN (below it: room for more system folders). Every replica maps an id to its
# number and back without a lookup; the name lives in the directory (router/folders.py).
CUSTOM_FOLDER_MIN = 0x10000
_CUSTOM_FOLDER = re.compile(r"^f[0-9a-f]{8}$")
_ROLES: dict[int, str] = {number: role for role, number in SYSTEM_FOLDERS.items()}


def custom_folder_id(number: int) -> str:
    if not CUSTOM_FOLDER_MIN <= number <= 0xFFFFFFFF:
        raise ValueError(f"not a custom folder number: {number}")
    return f"f{number:08x}"


def folder_number(folder_id: str) -> int | None:
    """The number of a system folder's role or of a custom folder's id; None for anything else."""
    number = SYSTEM_FOLDERS.get(folder_id)
    if number is None and _CUSTOM_FOLDER.match(folder_id):
        number = int(folder_id[1:], 16)
        return number if number >= CUSTOM_FOLDER_MIN else None
    return number


def folder_id_of(number: int) -> str:
    """The folder id of a storage folder number: a role, or a custom folder's id ("" for
    numbers that are neither)."""
    if number in _ROLES:
        return _ROLES[number]
    return custom_folder_id(number) if CUSTOM_FOLDER_MIN <= number <= 0xFFFFFFFF else ""


def partition_token(partition_key: str) -> int:
    """The 64-bit ring token of a partition key (a user id, or a directory key)."""
    return int(_U64.unpack(hashlib.blake2b(partition_key.encode(), digest_size=8).digest())[0])


# Directory entries live in the partition of their key, except the outgoing queue's (and the
# custom folders', below):
# `queue:SHARD:ID` lives in partition `queue:SHARD`, so one shard's items share a replica
# set and a node can list a shard's due items from its own index.
QUEUE_PREFIX = "queue:"


# Spam training events are directory entries too: `spam:u:USER:MSG` lives with the user's
# mail (partition USER), `spam:g:K:USER:MSG` in global shard `spam:g:K`, and
# `spam:r:KEY:USER:MSG` in the sender's reputation `spam:r:KEY` (KEY has no colon).
SPAM_PREFIX = "spam:"
SPAM_USER_PREFIX = "spam:u:"


# A user's custom folders are directory entries `folders:USER:ID` in partition `folders:USER`,
# so one listing of that partition reads them all.
FOLDERS_PREFIX = "folders:"


def listable_partition(partition: str) -> bool:
    """Whether a directory partition holds several keys that a node lists (ListDirectory):
    a queue shard `queue:SHARD`, or a user's custom folders `folders:USER`."""
    for prefix in (QUEUE_PREFIX, FOLDERS_PREFIX):
        if partition.startswith(prefix):
            rest = partition[len(prefix):]
            return bool(rest) and ":" not in rest
    return False


def directory_partition(key: str) -> str:
    """The partition (and so the ring token) of a directory key."""
    for prefix in (QUEUE_PREFIX, FOLDERS_PREFIX):
        if key.startswith(prefix):
            shard, _, _ = key[len(prefix):].partition(":")
            return prefix + shard
    if key.startswith(SPAM_PREFIX):
        if key.startswith(SPAM_USER_PREFIX):
            return key[len(SPAM_USER_PREFIX):].partition(":")[0]
        return key.rsplit(":", 2)[0]
    return key
