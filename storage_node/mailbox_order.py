"""The mailbox order on one replica: a Paxos acceptor per user, the slots chosen by it,
and their fold, in slot order, into UIDs, MODSEQs and the change rows the feed reads.

The acceptor is Multi-Paxos: one promise (a ballot) covers every slot of the user, so a
proposer that holds it accepts slot after slot in one round trip each. Each promise and
accept is a mutation of the group committer, synced before its answer. A chosen slot is
kept and folded once every slot before it is held, so every replica folds the same
sequence and derives the same UIDs and MODSEQs (docs/architecture.md, "Mailbox order").

Rows of CF_ORDER, under the user's partition (keys.order):
  PROMISE                 -> ballot
  ACCEPTED | slot         -> ballot | OrderValue
  CHOSEN | slot           -> OrderValue
  HEAD                    -> the fold's state (JSON: applied slot, MODSEQ, folders) and the
                             slots above it accepted or held chosen here (what a prepare reports)
  PLACE | message id      -> uid | folder id NUL thread id (uid 0: destroyed, never again)
  CHANGE | modseq         -> MailboxChange
  FOLDER_UID | folder NUL | uid -> message id | MODSEQ of its last change
"""
from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

from storage_node import keys
from storage_node.batch import Txn
from storage_node.rdict_store import RdictStore
from tidings.v1 import storage_pb2, types_pb2

PROMISE, ACCEPTED, CHOSEN, HEAD, PLACE, CHANGE, FOLDER_UID = range(1, 8)
CHOSEN_BALLOT = keys.MAX_U64          # a chosen slot outranks any accepted value
MAX_UID = 0xFFFFFFFF

Intent = storage_pb2.OrderIntent
Kind = types_pb2.MailboxChange


@dataclass
class FolderOrder:
    uidvalidity: int
    next_uid: int = 1


@dataclass
class Head:
    applied: int = 0           # every slot up to here is folded
    modseq: int = 0            # the last change's MODSEQ
    highest: int = 0           # the highest slot accepted or chosen here
    low_water: int = 0         # change rows at or below are compacted away
    last_uidvalidity: int = 0
    folders: dict[str, FolderOrder] = field(default_factory=dict)
    accepted: list[int] = field(default_factory=list)   # slots above `applied` with an accepted value here
    held: list[int] = field(default_factory=list)       # slots above `applied` held chosen, waiting for a gap

    def folder(self, folder_id: str, time_ms: int) -> FolderOrder:
        """The folder's order, begun (with a UIDVALIDITY above every earlier one) on first use."""
        held = self.folders.get(folder_id)
        if held is None:
            self.last_uidvalidity = min(max(time_ms // 1000, self.last_uidvalidity + 1), MAX_UID)
            held = self.folders[folder_id] = FolderOrder(self.last_uidvalidity)
        return held


@dataclass(frozen=True)
class Limits:
    """What a replica keeps: chosen slots (for replicas that missed some) and change rows."""

    keep_slots: int = 100_000
    keep_changes: int = 100_000


def encode_head(head: Head) -> bytes:
    return json.dumps({
        "a": head.applied, "m": head.modseq, "h": head.highest, "l": head.low_water, "v": head.last_uidvalidity,
        "f": {name: [f.uidvalidity, f.next_uid] for name, f in head.folders.items()},
        "p": head.accepted, "c": head.held,
    }, separators=(",", ":")).encode()


def decode_head(value: bytes | None) -> Head:
    if value is None:
        return Head()
    raw = json.loads(value)
    return Head(raw["a"], raw["m"], raw["h"], raw["l"], raw["v"],
                {name: FolderOrder(v, n) for name, (v, n) in raw["f"].items()}, raw.get("p", []), raw.get("c", []))


def head(store: Txn | RdictStore, user_id: str) -> Head:
    return decode_head(store.get(keys.CF_ORDER, keys.order(user_id, HEAD)))


def slot_key(user_id: str, tag: int, slot: int) -> bytes:
    return keys.order(user_id, tag, keys.u64(slot))


def _folder_uid_key(user_id: str, folder_id: str, uid: int) -> bytes:
    return keys.order(user_id, FOLDER_UID, folder_id.encode() + b"\x00" + struct.pack(">I", uid))


# -- the acceptor -----------------------------------------------------------------------
def promised_ballot(txn: Txn, user_id: str) -> int:
    value = txn.get(keys.CF_ORDER, keys.order(user_id, PROMISE))
    return 0 if value is None else keys.read_u64(value)


def _scan_slots(store: RdictStore, user_id: str, tag: int, after: int, through: int
                ) -> Iterator[tuple[int, bytes]]:
    """(slot, value) of one tag's slot rows in (after, through], committed state only."""
    start = slot_key(user_id, tag, after + 1)
    end = slot_key(user_id, tag, through) + b"\x00" if through < keys.MAX_U64 else keys.prefix_end(
        keys.order(user_id, tag))
    for key, value in store.scan(keys.CF_ORDER, start, end):
        yield keys.read_u64(key, len(key) - 8), value


def prepare(txn: Txn, user_id: str, from_slot: int, ballot: int) -> storage_pb2.OrderPromise:
    """Promise `ballot` for every slot, if no higher one was promised; report what this
    replica accepted (or holds chosen, unfolded) from max(from_slot, applied + 1) on. It
    reads the slots the head names through the batch, so it may share a group commit with
    the accepts before it."""
    promised = promised_ballot(txn, user_id)
    state = head(txn, user_id)
    answer = storage_pb2.OrderPromise(promised=ballot >= promised, promised_ballot=max(ballot, promised),
                                      chosen_through=state.applied, highest_slot=state.highest)
    if ballot > promised:
        txn.put(keys.CF_ORDER, keys.order(user_id, PROMISE), keys.u64(ballot))
    first = max(from_slot, state.applied + 1)
    reported: dict[int, storage_pb2.OrderAcceptedSlot] = {}
    for slot in sorted(s for s in state.accepted if s >= first):
        value = txn.get(keys.CF_ORDER, slot_key(user_id, ACCEPTED, slot))
        if value is not None:
            reported[slot] = storage_pb2.OrderAcceptedSlot(
                slot=slot, ballot=keys.read_u64(value), value=storage_pb2.OrderValue.FromString(value[8:]))
    for slot in sorted(s for s in state.held if s >= first):
        value = txn.get(keys.CF_ORDER, slot_key(user_id, CHOSEN, slot))
        if value is not None:
            reported[slot] = storage_pb2.OrderAcceptedSlot(
                slot=slot, ballot=CHOSEN_BALLOT, value=storage_pb2.OrderValue.FromString(value))
    answer.accepted.extend(reported[s] for s in sorted(reported))
    return answer


def accept(txn: Txn, user_id: str, slot: int, ballot: int, value: storage_pb2.OrderValue
           ) -> storage_pb2.OrderAcceptReply:
    """Accept `value` for `slot` unless a higher ballot was promised or the slot is chosen."""
    chosen = txn.get(keys.CF_ORDER, slot_key(user_id, CHOSEN, slot))
    state = head(txn, user_id)
    if chosen is not None or slot <= state.applied:      # (without the value: compacted away)
        reply = storage_pb2.OrderAcceptReply(accepted=False, already_chosen=True,
                                             promised_ballot=promised_ballot(txn, user_id))
        if chosen is not None:
            reply.chosen_value.CopyFrom(storage_pb2.OrderValue.FromString(chosen))
        return reply
    promised = promised_ballot(txn, user_id)
    if ballot < promised:
        return storage_pb2.OrderAcceptReply(accepted=False, promised_ballot=promised)
    if ballot > promised:
        txn.put(keys.CF_ORDER, keys.order(user_id, PROMISE), keys.u64(ballot))
    txn.put(keys.CF_ORDER, slot_key(user_id, ACCEPTED, slot), keys.u64(ballot) + value.SerializeToString())
    if slot not in state.accepted or slot > state.highest:
        state.highest = max(state.highest, slot)
        state.accepted = sorted({*state.accepted, slot})
        txn.put(keys.CF_ORDER, keys.order(user_id, HEAD), encode_head(state))
    return storage_pb2.OrderAcceptReply(accepted=True, promised_ballot=ballot)


# -- chosen slots and their fold --------------------------------------------------------
@dataclass(frozen=True)
class Committed:
    applied: int
    modseq: int
    advanced: bool       # the fold moved on (watchers are told)


def commit(txn: Txn, user_id: str, slots: list[tuple[int, storage_pb2.OrderValue]], limits: Limits) -> Committed:
    """Hold each chosen slot, then fold every held slot that follows the applied one."""
    state = head(txn, user_id)
    before = state.modseq, state.applied
    held = set(state.held)
    for slot, value in slots:
        if slot <= state.applied:
            continue
        txn.put(keys.CF_ORDER, slot_key(user_id, CHOSEN, slot), value.SerializeToString())
        held.add(slot)
        state.highest = max(state.highest, slot)
    settle(txn, user_id, state, held, limits)
    return Committed(state.applied, state.modseq, (state.modseq, state.applied) != before)


def settle(txn: Txn, user_id: str, state: Head, held: set[int], limits: Limits) -> None:
    """Fold every held slot that follows the applied one, forget accepted values of slots now
    chosen, compact, and write the head."""
    while state.applied + 1 in held:
        chosen = txn.get(keys.CF_ORDER, slot_key(user_id, CHOSEN, state.applied + 1))
        assert chosen is not None, "a held slot has its chosen row"
        _fold(txn, user_id, state, storage_pb2.OrderValue.FromString(chosen))
        state.applied += 1
    for slot in state.accepted:      # an accepted value of a slot now chosen is no longer needed
        if slot <= state.applied or slot in held:
            txn.delete(keys.CF_ORDER, slot_key(user_id, ACCEPTED, slot))
    state.accepted = [s for s in state.accepted if s > state.applied and s not in held]
    state.held = sorted(s for s in held if s > state.applied)
    _compact(txn, user_id, state, limits)
    txn.put(keys.CF_ORDER, keys.order(user_id, HEAD), encode_head(state))


def _compact(txn: Txn, user_id: str, state: Head, limits: Limits) -> None:
    """Drop chosen slots and change rows beyond what is kept, in steps of a quarter."""
    if state.applied > limits.keep_slots + max(1, limits.keep_slots // 4):
        txn.delete_range(keys.CF_ORDER, slot_key(user_id, CHOSEN, 0),
                         slot_key(user_id, CHOSEN, state.applied - limits.keep_slots + 1))
    if state.modseq - state.low_water > limits.keep_changes + max(1, limits.keep_changes // 4):
        low = state.modseq - limits.keep_changes
        txn.delete_range(keys.CF_ORDER, slot_key(user_id, CHANGE, 0), slot_key(user_id, CHANGE, low + 1))
        state.low_water = low


@dataclass(frozen=True)
class Place:
    uid: int             # 0: destroyed
    folder_id: str
    thread_id: str


def _place(txn: Txn, user_id: str, message_id: str) -> Place | None:
    value = txn.get(keys.CF_ORDER, keys.order(user_id, PLACE, message_id.encode()))
    if value is None:
        return None
    folder_id, thread_id = value[4:].decode().split("\x00")
    return Place(struct.unpack_from(">I", value)[0], folder_id, thread_id)


def _put_place(txn: Txn, user_id: str, message_id: str, place: Place) -> None:
    value = struct.pack(">I", place.uid) + f"{place.folder_id}\x00{place.thread_id}".encode()
    txn.put(keys.CF_ORDER, keys.order(user_id, PLACE, message_id.encode()), value)


class _Fold:
    """One slot's intents applied to the head: each change gets the next MODSEQ."""

    def __init__(self, txn: Txn, user_id: str, state: Head, time_ms: int) -> None:
        self.txn, self.user_id, self.state, self.time_ms = txn, user_id, state, time_ms

    def emit(self, kind: int, message_id: str, folder_id: str, thread_id: str = "", uid: int = 0,
             from_folder_id: str = "", from_uid: int = 0) -> None:
        self.state.modseq += 1
        folder = self.state.folders.get(folder_id)
        change = types_pb2.MailboxChange(
            modseq=self.state.modseq, kind=kind, id=message_id, folder_id=folder_id, thread_id=thread_id, uid=uid,
            uidvalidity=folder.uidvalidity if folder else 0, from_folder_id=from_folder_id, from_uid=from_uid,
            time_ms=self.time_ms)
        self.txn.put(keys.CF_ORDER, slot_key(self.user_id, CHANGE, self.state.modseq), change.SerializeToString())
        if kind in (Kind.MESSAGE_NEW, Kind.MESSAGE_UPDATED):     # the folder's view: UID -> message, MODSEQ
            self.txn.put(keys.CF_ORDER, _folder_uid_key(self.user_id, folder_id, uid),
                         message_id.encode() + keys.u64(self.state.modseq))

    def arrive(self, message_id: str, folder_id: str, thread_id: str) -> int:
        """A new UID for the message in the folder."""
        folder = self.state.folder(folder_id, self.time_ms)
        uid = folder.next_uid
        folder.next_uid += 1
        _put_place(self.txn, self.user_id, message_id, Place(uid, folder_id, thread_id))
        return uid

    def leave(self, message_id: str, place: Place) -> None:
        self.txn.delete(keys.CF_ORDER, _folder_uid_key(self.user_id, place.folder_id, place.uid))

    def apply(self, intent: storage_pb2.OrderIntent) -> None:
        kind = intent.kind
        if kind in (Intent.FOLDER_CHANGED, Intent.FOLDER_DELETED):
            if kind == Intent.FOLDER_CHANGED:
                self.state.folder(intent.folder_id, self.time_ms)
            self.emit(Kind.FOLDER_UPDATED, intent.folder_id, intent.folder_id)
            if kind == Intent.FOLDER_DELETED:
                self.state.folders.pop(intent.folder_id, None)
            return
        place = _place(self.txn, self.user_id, intent.message_id)
        if place is not None and place.uid == 0:
            return                                  # destroyed: nothing of it comes back
        if place is None:
            if kind == Intent.DESTROYED or not intent.folder_id:
                return
            uid = self.arrive(intent.message_id, intent.folder_id, intent.thread_id)
            self.emit(Kind.MESSAGE_NEW, intent.message_id, intent.folder_id, intent.thread_id, uid)
        elif kind == Intent.DESTROYED:
            self.leave(intent.message_id, place)
            _put_place(self.txn, self.user_id, intent.message_id, Place(0, place.folder_id, place.thread_id))
            self.emit(Kind.MESSAGE_DELETED, intent.message_id, place.folder_id, place.thread_id, place.uid)
        elif kind == Intent.MOVED and intent.folder_id and intent.folder_id != place.folder_id:
            self.leave(intent.message_id, place)
            uid = self.arrive(intent.message_id, intent.folder_id, place.thread_id)
            self.emit(Kind.MESSAGE_UPDATED, intent.message_id, intent.folder_id, place.thread_id, uid,
                      place.folder_id, place.uid)
        elif kind in (Intent.UPDATED, Intent.MOVED):
            self.emit(Kind.MESSAGE_UPDATED, intent.message_id, place.folder_id, place.thread_id, place.uid)
        # a second CREATED of a message already placed: a retry, ignored


def _fold(txn: Txn, user_id: str, state: Head, value: storage_pb2.OrderValue) -> None:
    fold = _Fold(txn, user_id, state, value.time_ms)
    for intent in value.intents:
        fold.apply(intent)


# -- reads ------------------------------------------------------------------------------
def chosen_slots(store: RdictStore, user_id: str, after: int, through: int) -> list[tuple[int, bytes]]:
    return list(_scan_slots(store, user_id, CHOSEN, after, through))


def changes(store: RdictStore, user_id: str, since: int, limit: int) -> tuple[list[bytes], Head]:
    """Serialized change rows after `since` (at most `limit`), and the head they were read under."""
    state = head(store, user_id)
    rows = []
    for _, value in _scan_slots(store, user_id, CHANGE, since, state.modseq):
        rows.append(value)
        if len(rows) >= limit:
            break
    return rows, state


def folder_uids(store: RdictStore, user_id: str, folder_id: str, after_uid: int = 0, limit: int | None = None
                ) -> list[tuple[int, str, int]]:
    """(uid, message id, MODSEQ of its last change) of the folder's messages above
    `after_uid`, by UID."""
    prefix = keys.order(user_id, FOLDER_UID, folder_id.encode() + b"\x00")
    out = []
    for key, value in store.scan(keys.CF_ORDER, prefix + struct.pack(">I", after_uid + 1), keys.prefix_end(prefix)):
        out.append((struct.unpack(">I", key[-4:])[0], value[:-8].decode(), keys.read_u64(value, len(value) - 8)))
        if limit is not None and len(out) >= limit:
            break
    return out
