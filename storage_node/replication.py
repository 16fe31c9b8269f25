"""Replication on one node: range digests and entries, reading, applying and streaming items, dropping ranges.

An item is a message of a user (CF messages) or a directory entry (CF directory); both are
keyed by the partition token first, so the items of a token range are key ranges of two
column families, merged here into one stream in key order.
"""
from __future__ import annotations

import asyncio
import hashlib
import heapq
from collections.abc import Iterator
from dataclasses import dataclass

from search_node import keys as search_keys
from search_node.index import COLUMN_FAMILIES as SEARCH_COLUMN_FAMILIES
from storage_node import codec, keys
from storage_node.batch import Txn
from storage_node.commit import GroupCommitter
from storage_node.engine import Engine, MessageState, NewMessage, check_new_message_id, check_user_id, folder_no
from storage_node.errors import InvalidArgument, NotFound
from storage_node.model import DirectoryValue, MessageRecord
from storage_node.ranges import KeyBounds, TokenRange, key_bounds
from tidings_runtime.partitions import folder_id_of

ITEM_COLUMN_FAMILIES = (keys.CF_MESSAGES, keys.CF_DIRECTORY)
DEFAULT_BATCH_BYTES = 1 << 20


@dataclass(frozen=True)
class ItemRef:
    """A message (user_id and id) or a directory entry (directory_key)."""

    user_id: str = ""
    id: str = ""
    directory_key: str = ""

    def check(self) -> None:
        if bool(self.directory_key) == bool(self.user_id or self.id):
            raise InvalidArgument(f"an item ref names a message or a directory entry: {self}")
        if self.user_id or self.id:
            check_user_id(self.user_id)


@dataclass(frozen=True)
class DirectoryItem:
    key: str
    value: bytes
    version: int


Item = MessageState | DirectoryItem


@dataclass(frozen=True)
class ItemVersion:
    ref: ItemRef
    version: int
    tombstone: bool
    cells: bytes = b""  # MessageRecord.cells: a live message's cells, hashed


@dataclass(frozen=True)
class Stored:
    """One row of an item column family."""

    key: bytes
    cf: str
    value: bytes

    @property
    def position(self) -> tuple[bytes, str]:
        return self.key, self.cf

    @property
    def ref(self) -> ItemRef:
        if self.cf == keys.CF_DIRECTORY:
            return ItemRef(directory_key=self.key[8:].decode())
        return ItemRef(user_id=self.key[8:keys.PARTITION_BYTES].hex(), id=self.key[keys.PARTITION_BYTES:].hex())

    def version(self) -> ItemVersion:
        if self.cf == keys.CF_DIRECTORY:
            return ItemVersion(self.ref, codec.decode_directory(self.value).version, False)
        record = codec.decode_record(self.value)
        return ItemVersion(self.ref, record.version, record.tombstone, record.cells())


Position = tuple[bytes, str]


def stored_items(engine: Engine, bounds: list[KeyBounds], after: Position | None = None) -> Iterator[Stored]:
    """The item rows within `bounds` (disjoint, in key order), in key order, past `after`."""

    def rows(cf: str) -> Iterator[Stored]:
        for low, high in bounds:
            start = low if after is None else max(low, after[0])
            for key, value in engine.scan(cf, start, high):
                if after is None or (key, cf) > after:
                    yield Stored(key, cf, value)

    return heapq.merge(*(rows(cf) for cf in ITEM_COLUMN_FAMILIES), key=lambda s: s.position)


# -- anti-entropy ----------------------------------------------------------------------
def range_digest(engine: Engine, token_range: TokenRange) -> tuple[bytes, int]:
    """blake2b over (key, version, tombstone, cells) of every item of the range, in key order; and
    the count. The cells (folder, flags, keywords: empty for a tombstone) tell apart copies of one
    version that differ (a replica that missed an update, then took a later one of other cells)."""
    digest = hashlib.blake2b(digest_size=16)
    count = 0
    for stored in stored_items(engine, key_bounds(token_range)):
        held = stored.version()
        if stored.cf == keys.CF_MESSAGES:
            digest.update(b"m" + stored.key + keys.u64(held.version) + bytes([held.tombstone]) + held.cells)
        else:
            digest.update(b"d" + stored.key + keys.u64(held.version))
        count += 1
    return digest.digest(), count


def range_entries(engine: Engine, bounds: list[KeyBounds]) -> list[ItemVersion]:
    return [stored.version() for stored in stored_items(engine, bounds)]


# -- reading items ---------------------------------------------------------------------
def message_state(engine: Engine, user_id: str, record: MessageRecord) -> MessageState:
    return MessageState(
        user_id=user_id, id=record.id, version=record.version, tombstone=record.tombstone,
        raw=b"" if record.tombstone else engine.raw(user_id, record.id),
        folder_id=folder_id_of(record.folder_no), unread=record.unread, starred=record.starred,
        received_ms=record.received_ms, thread_id=record.thread_id, answered=record.answered,
        draft=record.draft, deleted=record.deleted, keywords=record.keywords,
    )


def read_item(engine: Engine, ref: ItemRef) -> Item | None:
    """The item as this replica holds it; None when it holds nothing under that ref."""
    ref.check()
    if ref.directory_key:
        held = engine.directory(ref.directory_key)
        return None if held is None else DirectoryItem(ref.directory_key, held.value, held.version)
    try:
        record = engine.record(ref.user_id, ref.id)
    except NotFound:  # a malformed message id names nothing
        return None
    return None if record is None else message_state(engine, ref.user_id, record)


def read_items(engine: Engine, refs: list[ItemRef]) -> list[Item]:
    for ref in refs:
        ref.check()
    held = [read_item(engine, ref) for ref in refs]
    return [item for item in held if item is not None]


def item_of(engine: Engine, stored: Stored) -> Item:
    if stored.cf == keys.CF_DIRECTORY:
        held = codec.decode_directory(stored.value)
        return DirectoryItem(stored.ref.directory_key, held.value, held.version)
    return message_state(engine, stored.ref.user_id, codec.decode_record(stored.value))


def item_bytes(item: Item) -> int:
    return len(item.raw) if isinstance(item, MessageState) else len(item.value)


def read_batch(engine: Engine, bounds: list[KeyBounds], after: Position | None,
               batch_bytes: int) -> tuple[list[Item], Position | None]:
    """The next items past `after`, about `batch_bytes` of raw (at least one item); the
    position to resume from, None when the ranges are exhausted."""
    items: list[Item] = []
    size = 0
    for stored in stored_items(engine, bounds, after):
        items.append(item_of(engine, stored))
        size += item_bytes(items[-1]) + len(stored.key)
        if size >= batch_bytes:
            return items, stored.position
    return items, None


# -- applying items --------------------------------------------------------------------
def check_item(item: Item) -> None:
    if isinstance(item, DirectoryItem):
        if not item.key:
            raise InvalidArgument("a directory item without a key")
        return
    check_user_id(item.user_id)
    check_new_message_id(item.id)
    if not item.tombstone:
        folder_no(item.folder_id)


Prepared = tuple[Item, NewMessage | None]


def prepare_items(engine: Engine, items: list[Item]) -> list[Prepared]:
    """Check every item (bad input changes nothing), and parse the live messages this
    replica does not hold, off the commit path."""
    for item in items:
        check_item(item)
    return [(item, _prepare_if_new(engine, item)) for item in items]


def _prepare_if_new(engine: Engine, item: Item) -> NewMessage | None:
    if not isinstance(item, MessageState) or item.tombstone:
        return None
    if engine.get(keys.CF_MESSAGES, keys.message(item.user_id, item.id)) is not None:
        return None
    return engine.prepare(item)


def apply_prepared(engine: Engine, txn: Txn, prepared: list[Prepared]) -> int:
    """Merge the items (Engine.apply_replica, put_directory's LWW); how many changed."""
    changed = 0
    for item, new in prepared:
        if isinstance(item, DirectoryItem):
            changed += engine.apply_directory(txn, item.key, DirectoryValue(item.value, item.version))
        else:
            changed += engine.apply_replica(txn, item, new)
    return changed


async def apply_items(engine: Engine, committer: GroupCommitter, items: list[Item]) -> int:
    """Apply items from another replica in one synced batch (all or nothing)."""
    prepared = await asyncio.to_thread(prepare_items, engine, items)
    return await committer.submit(lambda txn: apply_prepared(engine, txn, prepared))


# -- dropping ranges -------------------------------------------------------------------
def drop_ranges(engine: Engine, txn: Txn, bounds: list[KeyBounds]) -> int:
    """Delete every item of the ranges from every mail column family, and the search index
    of every user whose partition lies in them; returns the items dropped. Reads committed
    state: run it in a batch of its own. Blobs in the object store stay: they are
    content-addressed and may be shared by messages this node (or another) still holds."""
    users = [user for low, high in bounds for user in engine.user_ids(low, high)]
    dropped = sum(1 for _ in stored_items(engine, bounds))
    for cf in keys.MAIL_COLUMN_FAMILIES:
        last = engine.last_key(cf)
        for low, high in bounds:
            end = high if high is not None else (None if last is None else last + b"\x00")
            if end is not None and low < end:
                txn.delete_range(cf, low, end)
    for cf in filter(engine.has_column_family, SEARCH_COLUMN_FAMILIES):
        for user in users:
            txn.delete_range(cf, *search_keys.user_range(search_keys.user_prefix(user)))
    return dropped
