"""The mailbox order moved between replicas: whole users read at one instant, merged so
that nothing the receiver holds regresses (a stale stream never lowers a promise or an
accepted ballot, a nearer fold never replaces a further one), and slots held behind a
gap fold once the prefix arrives."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from storage_node import keys, mailbox_order, order_transfer
from storage_node.blobs import LocalBlobStore
from storage_node.engine import Engine
from storage_node.errors import InvalidArgument
from storage_node.ranges import TokenRange, key_bounds
from tests.unit.storage_node.test_mailbox_order import batch, created
from tidings.v1 import storage_pb2, types_pb2

USER = "00112233aabbccdd"
OTHER = "ffeeddccbbaa9988"
WHOLE = TokenRange(0, 0)
Intent = storage_pb2.OrderIntent
LIMITS = mailbox_order.Limits()


@pytest.fixture
def engines(tmp_path: Path) -> Iterator[list[Engine]]:
    held = [Engine(tmp_path / f"db{i}", LocalBlobStore(tmp_path / f"blobs{i}")) for i in range(3)]
    yield held
    for engine in held:
        engine.close()



def moved(message_id: str, folder_id: str) -> storage_pb2.OrderIntent:
    return Intent(kind=Intent.MOVED, message_id=message_id, folder_id=folder_id)


SLOTS = {1: [created("a"), created("b")], 2: [moved("a", "archive")], 3: [created("c")],
         4: [Intent(kind=Intent.DESTROYED, message_id="b")], 5: [created("d", "archive")]}


def value(slot: int) -> storage_pb2.OrderValue:
    return storage_pb2.OrderValue(intents=SLOTS[slot], time_ms=1_700_000_000_000 + slot)


def commit(engine: Engine, *slots: int, user: str = USER) -> None:
    with batch(engine) as txn:
        mailbox_order.commit(txn, user, [(s, value(s)) for s in slots], LIMITS)


def transfer(source: Engine, receiver: Engine, batch_bytes: int = 1 << 20) -> list[order_transfer.Merged]:
    """StreamRanges' order part from `source`, PullRanges' merge into `receiver`."""
    merged: list[order_transfer.Merged] = []
    after: bytes | None = None
    while True:
        rows, after = order_transfer.read_batch(source, key_bounds(WHOLE), after, batch_bytes)
        users = order_transfer.parse([storage_pb2.OrderRow(key=k, value=v) for k, v in rows], [WHOLE])
        with batch(receiver) as txn:
            merged += order_transfer.merge(txn, users, LIMITS)
        if after is None:
            return merged


def fold_rows(engine: Engine, user: str = USER) -> list[tuple[bytes, bytes]]:
    """The fold's rows (placements, changes, UID maps) and the head's fold fields."""
    state = mailbox_order.head(engine, user)
    rows = [(k, v) for k, v in order_transfer.user_rows(engine, user)
            if k[keys.PARTITION_BYTES] in order_transfer.FOLD_TAGS]
    return [*rows, (b"head", repr((state.applied, state.modseq, state.folders)).encode())]


def prepare(engine: Engine, ballot: int) -> storage_pb2.OrderPromise:
    with batch(engine) as txn:
        return mailbox_order.prepare(txn, USER, 1, ballot)


def accept(engine: Engine, slot: int, ballot: int, message_id: str) -> bool:
    with batch(engine) as txn:
        return mailbox_order.accept(txn, USER, slot, ballot, storage_pb2.OrderValue(
            intents=[created(message_id)])).accepted


def test_a_stale_stream_never_lowers_a_promise_or_an_accepted_ballot(engines: list[Engine]) -> None:
    old, new, _ = engines
    assert prepare(old, 20).promised and accept(old, 1, 20, "stale")
    assert prepare(new, 50).promised and accept(new, 1, 50, "fresh")
    transfer(old, new)
    assert not prepare(new, 30).promised                  # 50 still holds
    report = prepare(new, 60)
    assert [(s.slot, s.ballot, s.value.intents[0].message_id) for s in report.accepted] == [(1, 50, "fresh")]


def test_a_higher_promise_and_accepted_value_are_taken_and_reported(engines: list[Engine]) -> None:
    old, new, _ = engines
    assert prepare(old, 40).promised and accept(old, 2, 40, "x")
    assert prepare(new, 10).promised and accept(new, 2, 10, "y")
    transfer(old, new)
    assert not prepare(new, 30).promised and not accept(new, 3, 30, "z")
    report = prepare(new, 45)
    assert [(s.slot, s.ballot, s.value.intents[0].message_id) for s in report.accepted] == [(2, 40, "x")]


def test_a_nearer_fold_never_replaces_a_further_one_and_a_further_one_is_taken(engines: list[Engine]) -> None:
    behind, ahead, _ = engines
    commit(behind, 1, 2)
    commit(ahead, 1, 2, 3, 4)
    further = fold_rows(ahead)
    assert [m.advanced for m in transfer(behind, ahead)] == [False]
    assert fold_rows(ahead) == further
    assert [m.advanced for m in transfer(ahead, behind)] == [True]
    assert fold_rows(behind) == further
    assert mailbox_order.head(behind, USER).applied == 4
    assert transfer(ahead, behind)[0].advanced is False and fold_rows(behind) == further    # idempotent


def test_slots_held_behind_a_gap_fold_once_the_prefix_arrives(engines: list[Engine]) -> None:
    source, receiver, reference = engines
    commit(source, 1, 2, 3)
    commit(receiver, 5)                                   # chosen, waiting for 1..4
    commit(receiver, 4)
    assert mailbox_order.head(receiver, USER).applied == 0
    merged = transfer(source, receiver)
    commit(reference, 1, 2, 3, 4, 5)
    assert merged[0].advanced and mailbox_order.head(receiver, USER).applied == 5
    assert fold_rows(receiver) == fold_rows(reference)
    feed, _ = mailbox_order.changes(receiver, USER, 0, 100)
    assert [types_pb2.MailboxChange.FromString(r).modseq for r in feed] == list(range(1, 7))


def test_a_batch_never_splits_a_user_and_every_row_is_sent(engines: list[Engine]) -> None:
    source, _, _ = engines
    commit(source, 1, 2, 3)
    commit(source, 1, 2, user=OTHER)
    after: bytes | None = None
    batches = []
    while True:
        rows, after = order_transfer.read_batch(source, key_bounds(WHOLE), after, 1)
        batches.append(rows)
        if after is None:
            break
    users = [{k[:keys.PARTITION_BYTES] for k, _ in rows} for rows in batches if rows]
    assert len(users) == 2 and all(len(u) == 1 for u in users)
    everything = list(source.scan(keys.CF_ORDER, b"", None))
    assert [row for rows in batches for row in rows] == everything


def test_rows_outside_the_ranges_or_malformed_are_refused(engines: list[Engine]) -> None:
    source, _, _ = engines
    commit(source, 1)
    rows = [storage_pb2.OrderRow(key=k, value=v) for k, v in order_transfer.user_rows(source, USER)]
    token = keys.read_u64(rows[0].key)
    elsewhere = TokenRange(token, (token + 10) % (1 << 64))
    with pytest.raises(InvalidArgument, match="outside the ranges"):
        order_transfer.parse(rows, [elsewhere])
    head = keys.order(USER, mailbox_order.HEAD)
    with pytest.raises(InvalidArgument, match="malformed"):
        order_transfer.parse([storage_pb2.OrderRow(key=head, value=b"{not json")], [WHOLE])
    with pytest.raises(InvalidArgument, match="not a mailbox-order key"):
        order_transfer.parse([storage_pb2.OrderRow(key=keys.partition(USER) + b"\x63", value=b"")], [WHOLE])
