"""The mailbox order on one replica: the Paxos acceptor's promises and accepts, chosen
slots folded in slot order into UIDs and MODSEQs, and the change rows they leave."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from storage_node import mailbox_order
from storage_node.batch import Txn
from storage_node.blobs import LocalBlobStore
from storage_node.engine import Engine
from tidings.v1 import storage_pb2, types_pb2

USER = "00112233aabbccdd"
Intent = storage_pb2.OrderIntent
Kind = types_pb2.MailboxChange


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = Engine(tmp_path / "db", LocalBlobStore(tmp_path / "blobs"))
    yield engine
    engine.close()


@contextmanager
def batch(engine: Engine) -> Iterator[Txn]:
    """One mutation's batch, written synced as the group committer would."""
    txn = engine.new_txn()
    yield txn
    engine.commit(txn)


def value(*intents: storage_pb2.OrderIntent, time_ms: int = 1_700_000_000_000) -> storage_pb2.OrderValue:
    return storage_pb2.OrderValue(intents=intents, time_ms=time_ms)


def created(message_id: str, folder_id: str = "inbox") -> storage_pb2.OrderIntent:
    return Intent(kind=Intent.CREATED, message_id=message_id, folder_id=folder_id, thread_id="t" + message_id)


def commit(engine: Engine, *slots: tuple[int, storage_pb2.OrderValue], limits: mailbox_order.Limits | None = None
           ) -> mailbox_order.Committed:
    with batch(engine) as txn:
        return mailbox_order.commit(txn, USER, list(slots), limits or mailbox_order.Limits())


def changes(engine: Engine, since: int = 0) -> list[types_pb2.MailboxChange]:
    rows, _ = mailbox_order.changes(engine, USER, since, 1000)
    return [types_pb2.MailboxChange.FromString(r) for r in rows]


def test_a_promise_refuses_lower_ballots_and_an_accept_is_reported_to_the_next_prepare(engine: Engine) -> None:
    with batch(engine) as txn:
        promise = mailbox_order.prepare(txn, USER, 1, 10)
    assert promise.promised and promise.chosen_through == 0 and not promise.accepted
    with batch(engine) as txn:
        assert not mailbox_order.prepare(txn, USER, 1, 9).promised
    with batch(engine) as txn:
        refused = mailbox_order.accept(txn, USER, 1, 9, value(created("a")))
    assert not refused.accepted and refused.promised_ballot == 10
    with batch(engine) as txn:
        assert mailbox_order.accept(txn, USER, 1, 10, value(created("a"))).accepted
    with batch(engine) as txn:
        later = mailbox_order.prepare(txn, USER, 1, 20)
    assert later.promised and later.highest_slot == 1
    assert [(s.slot, s.ballot, s.value.intents[0].message_id) for s in later.accepted] == [(1, 10, "a")]


def test_chosen_slots_fold_in_slot_order_into_uids_per_folder_and_one_modseq_per_change(engine: Engine) -> None:
    second = commit(engine, (2, value(created("c"), created("d", "spam"))))
    assert (second.applied, second.modseq, second.advanced) == (0, 0, False)     # slot 1 is missing
    done = commit(engine, (1, value(created("a"), created("b"))))
    assert (done.applied, done.modseq) == (2, 4)
    rows = changes(engine)
    assert [(r.modseq, r.kind, r.id, r.folder_id, r.uid) for r in rows] == [
        (1, Kind.MESSAGE_NEW, "a", "inbox", 1), (2, Kind.MESSAGE_NEW, "b", "inbox", 2),
        (3, Kind.MESSAGE_NEW, "c", "inbox", 3), (4, Kind.MESSAGE_NEW, "d", "spam", 1)]
    assert rows[0].uidvalidity == rows[2].uidvalidity != rows[3].uidvalidity
    assert mailbox_order.folder_uids(engine, USER, "inbox") == [(1, "a", 1), (2, "b", 2), (3, "c", 3)]
    assert mailbox_order.folder_uids(engine, USER, "inbox", after_uid=1, limit=1) == [(2, "b", 2)]
    again = commit(engine, (1, value(created("x"))))                            # slot 1 is folded already
    assert (again.modseq, again.advanced) == (4, False)


def test_a_retried_creation_is_ignored_a_move_takes_a_new_uid_and_a_destroyed_message_stays_gone(engine: Engine) -> None:
    commit(engine, (1, value(created("a"), created("b"))))
    commit(engine, (2, value(created("a"), Intent(kind=Intent.MOVED, message_id="a", folder_id="archive"))))
    commit(engine, (3, value(Intent(kind=Intent.UPDATED, message_id="b", folder_id="inbox"),
                             Intent(kind=Intent.DESTROYED, message_id="b"), created("b"))))
    rows = changes(engine, since=2)
    assert [(r.modseq, r.kind, r.id, r.folder_id, r.uid, r.from_folder_id, r.from_uid) for r in rows] == [
        (3, Kind.MESSAGE_UPDATED, "a", "archive", 1, "inbox", 1),
        (4, Kind.MESSAGE_UPDATED, "b", "inbox", 2, "", 0),
        (5, Kind.MESSAGE_DELETED, "b", "inbox", 2, "", 0)]
    assert mailbox_order.folder_uids(engine, USER, "inbox") == []
    assert mailbox_order.folder_uids(engine, USER, "archive") == [(1, "a", 3)]
    commit(engine, (4, value(created("e"))))
    assert changes(engine, since=5)[0].uid == 3          # inbox UIDs 1 and 2 are never given again


def test_a_deleted_folder_comes_back_with_a_higher_uidvalidity(engine: Engine) -> None:
    commit(engine, (1, value(Intent(kind=Intent.FOLDER_CHANGED, folder_id="f1"), created("a", "f1"))))
    commit(engine, (2, value(Intent(kind=Intent.DESTROYED, message_id="a"),
                             Intent(kind=Intent.FOLDER_DELETED, folder_id="f1"))))
    commit(engine, (3, value(created("b", "f1"))))       # same clock: the validity still rises
    rows = changes(engine)
    assert [r.kind for r in rows] == [Kind.FOLDER_UPDATED, Kind.MESSAGE_NEW, Kind.MESSAGE_DELETED,
                                      Kind.FOLDER_UPDATED, Kind.MESSAGE_NEW]
    assert rows[-1].uid == 1 and rows[-1].uidvalidity > rows[1].uidvalidity


def test_an_accept_for_a_chosen_slot_answers_the_chosen_value(engine: Engine) -> None:
    commit(engine, (1, value(created("a"))))
    with batch(engine) as txn:
        reply = mailbox_order.accept(txn, USER, 1, 99, value(created("z")))
    assert reply.already_chosen and not reply.accepted and reply.chosen_value.intents[0].message_id == "a"


def test_old_change_rows_and_slots_are_compacted_and_the_low_water_mark_says_so(engine: Engine) -> None:
    limits = mailbox_order.Limits(keep_slots=4, keep_changes=4)
    for slot in range(1, 12):
        commit(engine, (slot, value(created(f"m{slot}"))), limits=limits)
    rows, head = mailbox_order.changes(engine, USER, 0, 100)
    assert head.modseq == 11 and head.low_water > 0
    assert [types_pb2.MailboxChange.FromString(r).modseq for r in rows] == list(range(head.low_water + 1, 12))
    assert [slot for slot, _ in mailbox_order.chosen_slots(engine, USER, 0, 100)][-1] == 11
    assert len(mailbox_order.chosen_slots(engine, USER, 0, 100)) < 11


def test_a_prepare_in_the_same_batch_as_an_accept_reports_it(engine: Engine) -> None:
    """Prepares share group commits: what an accept earlier in the batch wrote is reported."""
    with batch(engine) as txn:
        assert mailbox_order.accept(txn, USER, 1, 10, value(created("a"))).accepted
        later = mailbox_order.prepare(txn.child(), USER, 1, 20)
    assert [(s.slot, s.ballot) for s in later.accepted] == [(1, 10)]
    commit(engine, (1, value(created("a"))))
    with batch(engine) as txn:
        assert not mailbox_order.prepare(txn, USER, 1, 30).accepted      # chosen and folded: nothing to finish
    assert mailbox_order.head(engine, USER).accepted == []


def test_a_chosen_slot_held_behind_a_gap_is_reported_by_a_prepare(engine: Engine) -> None:
    commit(engine, (2, value(created("b"))))
    with batch(engine) as txn:
        promise = mailbox_order.prepare(txn, USER, 1, 5)
    assert [(s.slot, s.ballot) for s in promise.accepted] == [(2, mailbox_order.CHOSEN_BALLOT)]
    assert promise.chosen_through == 0 and promise.highest_slot == 2
