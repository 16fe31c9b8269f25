"""The mailbox order moved between replicas (ring changes, and a replica too far behind to
catch up by slots): whole users' CF_ORDER rows read at one instant, merged so that nothing
the receiver holds regresses (docs/architecture.md, "Mailbox order", Across ring changes).

The merge, per user:
- the promise: the higher ballot;
- chosen slots: the union (a slot's chosen value is the same wherever it is chosen);
- accepted values: per slot the one of the higher ballot, none for a slot chosen or folded;
- the fold (head's MODSEQ, folders and UIDs, placements, UID maps, change rows): the
  source's replaces the receiver's only if it is further (it folded more slots; a fold is
  a function of the chosen prefix, so the further one is the nearer one's continuation);
then every chosen slot that now follows the fold is folded.
"""
from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from storage_node import keys, mailbox_order
from storage_node.batch import Txn
from storage_node.errors import InvalidArgument
from storage_node.mailbox_order import ACCEPTED, CHANGE, CHOSEN, FOLDER_UID, HEAD, PLACE, PROMISE, Head, Limits
from storage_node.ranges import KeyBounds, TokenRange
from storage_node.rdict_store import RdictStore
from tidings.v1 import storage_pb2

FOLD_TAGS = (PLACE, CHANGE, FOLDER_UID)
TAGS = (PROMISE, ACCEPTED, CHOSEN, HEAD, *FOLD_TAGS)
SLOT_KEY_BYTES = keys.PARTITION_BYTES + 1 + 8


# -- reading ----------------------------------------------------------------------------
def read_batch(store: RdictStore, bounds: list[KeyBounds], after: bytes | None, batch_bytes: int
               ) -> tuple[list[tuple[bytes, bytes]], bytes | None]:
    """CF_ORDER rows within `bounds` past the key `after`, about `batch_bytes` of them, never
    ending inside a user: each user's rows come from one iterator (one instant, so a head and
    its fold rows agree). The key to resume after; None when the ranges are exhausted."""
    rows: list[tuple[bytes, bytes]] = []
    size = 0
    for low, high in bounds:
        if after is not None and high is not None and after >= high:
            continue
        start = low if after is None or after < low else after + b"\x00"
        for key, value in store.scan(keys.CF_ORDER, start, high):
            if size >= batch_bytes and key[:keys.PARTITION_BYTES] != rows[-1][0][:keys.PARTITION_BYTES]:
                return rows, rows[-1][0]
            rows.append((key, value))
            size += len(key) + len(value)
    return rows, None


# -- parsing what a peer sent -----------------------------------------------------------
@dataclass
class UserOrder:
    """One user's order rows as a source holds them."""

    user_id: str
    promise: int = 0
    accepted: dict[int, tuple[int, bytes]] = field(default_factory=dict)   # slot -> (ballot, OrderValue)
    chosen: dict[int, bytes] = field(default_factory=dict)                 # slot -> OrderValue
    head: Head | None = None
    fold: list[tuple[bytes, bytes]] = field(default_factory=list)          # PLACE, CHANGE, FOLDER_UID rows


def parse(rows: Iterable[storage_pb2.OrderRow], ranges: list[TokenRange]) -> list[UserOrder]:
    """The users of a streamed batch; InvalidArgument (nothing merged) for a row that is not
    an order row of the ranges."""
    users: dict[bytes, UserOrder] = {}
    for row in rows:
        key, value = row.key, row.value
        if len(key) <= keys.PARTITION_BYTES or key[keys.PARTITION_BYTES] not in TAGS:
            raise InvalidArgument(f"not a mailbox-order key: {key.hex()}")
        if not any(r.contains(keys.read_u64(key)) for r in ranges):
            raise InvalidArgument(f"an order row outside the ranges pulled: {key.hex()}")
        partition, tag = key[:keys.PARTITION_BYTES], key[keys.PARTITION_BYTES]
        user = users.get(partition)
        if user is None:
            user = users[partition] = UserOrder(partition[8:].hex())
        try:
            _take(user, tag, key, value)
        except (ValueError, KeyError, TypeError, struct.error) as exc:
            raise InvalidArgument(f"a malformed mailbox-order row {key.hex()}: {exc}") from None
    return list(users.values())


def _take(user: UserOrder, tag: int, key: bytes, value: bytes) -> None:
    if tag in (ACCEPTED, CHOSEN) and len(key) != SLOT_KEY_BYTES:
        raise ValueError("a slot key is partition | tag | slot")
    if tag == PROMISE:
        user.promise = keys.read_u64(value)
    elif tag == ACCEPTED:
        storage_pb2.OrderValue.FromString(value[8:])
        user.accepted[keys.read_u64(key, len(key) - 8)] = keys.read_u64(value), value[8:]
    elif tag == CHOSEN:
        storage_pb2.OrderValue.FromString(value)
        user.chosen[keys.read_u64(key, len(key) - 8)] = value
    elif tag == HEAD:
        user.head = mailbox_order.decode_head(value)
    else:
        user.fold.append((key, value))


# -- merging ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Merged:
    user_id: str
    modseq: int
    advanced: bool       # the receiver's fold moved on (its watchers are told)


def merge(txn: Txn, users: list[UserOrder], limits: Limits) -> list[Merged]:
    return [merge_user(txn, user, limits) for user in users]


def merge_user(txn: Txn, source: UserOrder, limits: Limits) -> Merged:
    """Merge one user's rows from another replica into this one's (the rules above)."""
    user_id = source.user_id
    state = mailbox_order.head(txn, user_id)
    before = state.modseq, state.applied
    if source.promise > mailbox_order.promised_ballot(txn, user_id):
        txn.put(keys.CF_ORDER, keys.order(user_id, PROMISE), keys.u64(source.promise))
    if source.head is not None and source.head.applied > state.applied:
        _take_fold(txn, user_id, state, source)
    held = {s for s in state.held if s > state.applied}
    for slot, value in sorted(source.chosen.items()):
        if txn.get(keys.CF_ORDER, mailbox_order.slot_key(user_id, CHOSEN, slot)) is None:
            txn.put(keys.CF_ORDER, mailbox_order.slot_key(user_id, CHOSEN, slot), value)
        if slot > state.applied:
            held.add(slot)
    accepted = set(state.accepted)
    for slot, (ballot, value) in sorted(source.accepted.items()):
        if slot <= state.applied or slot in held:
            continue
        key = mailbox_order.slot_key(user_id, ACCEPTED, slot)
        mine = txn.get(keys.CF_ORDER, key)
        if mine is None or keys.read_u64(mine) < ballot:
            txn.put(keys.CF_ORDER, key, keys.u64(ballot) + value)
        accepted.add(slot)
    state.accepted = sorted(accepted)
    state.highest = max(state.highest, source.head.highest if source.head else 0, *held, *accepted)
    mailbox_order.settle(txn, user_id, state, held, limits)
    return Merged(user_id, state.modseq, (state.modseq, state.applied) != before)


def _take_fold(txn: Txn, user_id: str, state: Head, source: UserOrder) -> None:
    """Replace this replica's fold of the user by the source's further one."""
    assert source.head is not None
    for tag in FOLD_TAGS:
        prefix = keys.order(user_id, tag)
        txn.delete_range(keys.CF_ORDER, prefix, keys.prefix_end(prefix))
    for key, value in source.fold:
        txn.put(keys.CF_ORDER, key, value)
    theirs = source.head
    state.applied, state.modseq, state.low_water = theirs.applied, theirs.modseq, theirs.low_water
    state.last_uidvalidity, state.folders = theirs.last_uidvalidity, theirs.folders


def user_rows(store: RdictStore, user_id: str) -> Iterator[tuple[bytes, bytes]]:
    """Every CF_ORDER row of one user (for tests and checks)."""
    prefix = keys.partition(user_id)
    return store.scan(keys.CF_ORDER, prefix, keys.prefix_end(prefix))
