"""When an outgoing item is due: the earliest pending attempt, at once for a bounce owed,
the lease's end while leased, never once every recipient is done."""
from __future__ import annotations

from router.queue import due_ms, item_key, shard_of
from tidings.v1 import queue_pb2, types_pb2

State = types_pb2.QueueRecipient.State


def item(*states: tuple[int, int], lease_until: int = 0) -> queue_pb2.QueueItem:
    return queue_pb2.QueueItem(
        id="0" * 32, created_ms=1_000, lease_owner="w" if lease_until else "", lease_until_ms=lease_until,
        recipients=[types_pb2.QueueRecipient(address=f"r{i}@elsewhere.test", state=s, next_attempt_ms=t)
                    for i, (s, t) in enumerate(states)])


def test_the_earliest_pending_attempt() -> None:
    assert due_ms(item((State.DEFERRED, 9_000), (State.QUEUED, 0), (State.DELIVERED, 0)), 5_000) == 1_000
    assert due_ms(item((State.DEFERRED, 9_000), (State.DEFERRED, 7_000)), 5_000) == 7_000


def test_a_bounce_owed_is_due_now_and_done_items_never() -> None:
    assert due_ms(item((State.FAILED, 0), (State.DEFERRED, 9_000)), 5_000) == 5_000
    assert due_ms(item((State.DELIVERED, 0), (State.BOUNCED, 0)), 5_000) == 0


def test_a_live_lease_holds_the_item_until_it_ends() -> None:
    assert due_ms(item((State.QUEUED, 0), lease_until=8_000), 5_000) == 8_000
    assert due_ms(item((State.QUEUED, 0), lease_until=4_000), 5_000) == 1_000     # expired: due again


def test_keys_of_one_item_stay_in_its_shard() -> None:
    some_id = "0123456789abcdef0123456789abcdef"
    assert item_key(some_id) == f"queue:{shard_of(some_id)}:{some_id}"
    assert 0 <= shard_of(some_id) < 16
