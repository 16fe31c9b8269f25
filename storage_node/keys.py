"""Every RocksDB key byte of a storage node is built here, big-endian, so byte order is API order.

A partition is one user. Each per-user key starts with the partition's 64-bit ring
token and then the user id, so a token range of the ring is one contiguous key range
(anti-entropy and streaming scan ranges, not users). Time-clustered keys store the
inverted receive time, so a forward scan is newest first.
"""
from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable

from tidings_runtime.partitions import SYSTEM_FOLDERS, directory_partition, partition_token

MAX_U64 = (1 << 64) - 1
_U64 = struct.Struct(">Q")
_U32 = struct.Struct(">I")


def u64(value: int) -> bytes:
    return _U64.pack(value)


def read_u64(data: bytes, offset: int = 0) -> int:
    return _U64.unpack_from(data, offset)[0]


# Column families of the mail data model (the search index adds its own).
CF_DIRECTORY = "directory"     # token | directory key            -> versioned entry
CF_FOLDERS = "folders"         # partition | folder               -> counters
CF_BY_FOLDER = "by_folder"     # partition | folder | inv ms | id -> summary
CF_UNREAD = "unread"           # partition | folder | inv ms | id -> summary (unread only)
CF_MESSAGES = "messages"       # partition | id                   -> message record
CF_BODIES = "bodies"           # partition | id                   -> raw body (compressed or blob ref)
CF_THREADS = "threads"         # partition | thread | ms | id     -> b""
CF_MSGIDS = "msgids"           # partition | hash(Message-Id)     -> thread id
CF_QUEUE_DUE = "queue_due"     # token | queue partition | 0 | due | key -> b"" (derived from directory)
CF_SPAM = "spam_counts"        # token | model | 0 | spam token -> spam(8) | ham(8) (derived from directory)
CF_ORDER = "order"             # partition | tag | ...             -> the mailbox order (storage_node.mailbox_order)
MAIL_COLUMN_FAMILIES = (
    CF_DIRECTORY, CF_FOLDERS, CF_BY_FOLDER, CF_UNREAD, CF_MESSAGES, CF_BODIES, CF_THREADS, CF_MSGIDS,
    CF_QUEUE_DUE, CF_SPAM, CF_ORDER,
)
# Column families of the node itself, outside every token range.
CF_HINTS = "hints"             # target node | 0x00 | version | seq  -> serialized Hint
CF_META = "meta"               # name                               -> node state (the ring map)
NODE_COLUMN_FAMILIES = (CF_HINTS, CF_META)
RING_KEY = b"ring"

FOLDER_NAMES: dict[int, str] = {number: role for role, number in SYSTEM_FOLDERS.items()}

ID_BYTES = 16
USER_BYTES = 8
THREAD_BYTES = 8
PARTITION_BYTES = 8 + USER_BYTES


def partition(user_id: str) -> bytes:
    """Token then user: the prefix of every key of one user's partition."""
    return u64(partition_token(user_id)) + bytes.fromhex(user_id)


def directory(key: str) -> bytes:
    return u64(partition_token(directory_partition(key))) + key.encode()


def directory_partition_range(partition: str) -> tuple[bytes, bytes]:
    """Every directory key of a partition of several keys (the queue's `queue:SHARD:`)."""
    start = u64(partition_token(partition)) + (partition + ":").encode()
    return start, prefix_end(start)


def queue_due(key: str, due_ms: int) -> bytes:
    """The due index: partition token | partition | 0x00 | due ms | key."""
    return derived_prefix(directory_partition(key)) + u64(due_ms) + key.encode()


def derived_prefix(partition: str) -> bytes:
    """Where a replica keeps what it derives from a multi-key partition's entries (the queue's
    due index, a spam model's counts): the partition's token | partition | 0x00."""
    return u64(partition_token(partition)) + partition.encode() + b"\x00"



def spam_count(model: str, token: str) -> bytes:
    return derived_prefix(model) + token.encode()   # the empty token holds the model's message totals


def folder(user_id: str, folder_no: int) -> bytes:
    return partition(user_id) + _U32.pack(folder_no)


def inverted_ms(received_ms: int) -> int:
    return MAX_U64 - received_ms


def listing(user_id: str, folder_no: int, received_ms: int, message_id: str) -> bytes:
    """Key shared by by_folder and unread: newest first within a folder."""
    return folder(user_id, folder_no) + u64(inverted_ms(received_ms)) + bytes.fromhex(message_id)


def message(user_id: str, message_id: str) -> bytes:
    return partition(user_id) + bytes.fromhex(message_id)


def messages(user_id: str, message_ids: Iterable[str]) -> list[bytes]:
    """message() of each id, the partition prefix made once (a page or a search reads 50)."""
    prefix = partition(user_id)
    return [prefix + bytes.fromhex(m) for m in message_ids]


def thread(user_id: str, thread_id: str) -> bytes:
    return partition(user_id) + bytes.fromhex(thread_id)


def thread_entry(user_id: str, thread_id: str, received_ms: int, message_id: str) -> bytes:
    return thread(user_id, thread_id) + u64(received_ms) + bytes.fromhex(message_id)


def msgid(user_id: str, rfc822_msgid: str) -> bytes:
    digest = hashlib.blake2b(rfc822_msgid.strip().strip("<>").encode(), digest_size=16).digest()
    return partition(user_id) + digest


def order(user_id: str, tag: int, rest: bytes = b"") -> bytes:
    """A mailbox-order key: partition | tag | rest (tags: storage_node.mailbox_order)."""
    return partition(user_id) + bytes((tag,)) + rest


def hint_target(target_node_id: str) -> bytes:
    """The prefix of every hint for one target node."""
    return target_node_id.encode() + b"\x00"


def hint(target_node_id: str, version: int, seq: int) -> bytes:
    """Hints of one target sort by the mutation's version: the replay order."""
    return hint_target(target_node_id) + u64(version) + u64(seq)


def parse_hint(key: bytes) -> tuple[str, int]:
    """(target node id, mutation version) of a hint key."""
    return key[:-17].decode(), read_u64(key, len(key) - 16)


def prefix_end(prefix: bytes) -> bytes:
    """The smallest key greater than every key starting with prefix."""
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        return b"\xff" * (len(prefix) + 1)
    return stripped[:-1] + bytes([stripped[-1] + 1])
