"""The mailbox order on real processes, as a history (after Jepsen): writers deliver,
flag and delete through two routers at once while a follower reads the change feed
through both, and a storage node is killed with SIGKILL and restarted meanwhile.

The checker then proves what docs/architecture.md ("Mailbox order") promises: MODSEQs
are 1, 2, 3, ... with none missed or repeated by the follower; within a folder the UIDs
a reader sees only grow and no UID is given twice; every acknowledged delivery appears
exactly once as new, and every acknowledged change after it."""
from __future__ import annotations

import itertools
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field

import grpc
import pytest

from tests.cluster.grid import Grid, running
from tidings.v1 import mail_pb2, mail_pb2_grpc, types_pb2
from tidings_client.ids import new_entry_id

EMAIL = "history@example.test"
Kind = types_pb2.MailboxChange
RETRYABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Grid]:
    with running(tmp_path_factory.mktemp("order"), edges=()) as grid:
        yield grid


@pytest.fixture(scope="module")
def routers(grid: Grid) -> list[str]:
    return [grid.router_address, grid.start_router()]


def raw(subject: str, email: str = EMAIL) -> bytes:
    return (f"From: w@example.test\r\nTo: {email}\r\nSubject: {subject}\r\n"
            f"Message-ID: <{subject}@example.test>\r\n\r\nbody of {subject}\r\n").encode()


def retried(call: object, request: object, deadline_s: float = 60) -> object:
    """A call retried while replicas are unavailable (every write is idempotent)."""
    give_up = time.monotonic() + deadline_s
    while True:
        try:
            return call(request, timeout=10)  # type: ignore[operator]
        except grpc.RpcError as exc:
            if exc.code() not in RETRYABLE or time.monotonic() > give_up:  # type: ignore[attr-defined]
                raise
            time.sleep(0.05)


@dataclass
class History:
    delivered: list[str] = field(default_factory=list)                 # acknowledged message ids
    updated: dict[str, int] = field(default_factory=lambda: defaultdict(int))   # acked flag changes per id
    deleted: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)


def writer(address: str, user_id: str, n: int, history: History, name: str, email: str = EMAIL) -> None:
    with grpc.insecure_channel(address) as channel:
        mail = mail_pb2_grpc.MailStub(channel)
        mine: list[str] = []
        for i in range(n):
            answer = retried(mail.Deliver, mail_pb2.DeliverRequest(
                entry_id=new_entry_id(), raw=raw(f"{name}-{i}", email), recipients=[email]))
            message_id = answer.deliveries[0].id   # type: ignore[attr-defined]
            mine.append(message_id)
            with history.lock:
                history.delivered.append(message_id)
            if i % 3 == 1:
                retried(mail.UpdateMessage, mail_pb2.UpdateRequest(user_id=user_id, id=mine[-2], starred=True))
                with history.lock:
                    history.updated[mine[-2]] += 1
            if i % 5 == 4:
                retried(mail.UpdateMessage, mail_pb2.UpdateRequest(user_id=user_id, id=mine[-4], folder_id="archive"))
                with history.lock:
                    history.updated[mine[-4]] += 1


def follow(addresses: list[str], user_id: str, seen: list[types_pb2.MailboxChange], stop: threading.Event) -> None:
    """Read the feed through each router in turn, from the last state seen."""
    channels = [grpc.insecure_channel(a) for a in addresses]
    stubs = [mail_pb2_grpc.MailStub(c) for c in channels]
    state = 0
    try:
        for turn in itertools.count():
            # whether the writers were done before this read began: only such a read, caught
            # up, ends the follow (one begun before the last acknowledgement may miss it)
            stopping = stop.is_set()
            try:
                batch = stubs[turn % len(stubs)].Changes(
                    mail_pb2.ChangesRequest(user_id=user_id, since=state, limit=50), timeout=10)
            except grpc.RpcError as exc:
                if exc.code() not in RETRYABLE:  # type: ignore[attr-defined]
                    raise
                continue
            assert batch.old_state == state
            seen.extend(batch.changes)
            state = batch.new_state
            if not batch.has_more:
                if stopping:
                    return
                time.sleep(0.02)
    finally:
        for channel in channels:
            channel.close()


def test_two_routers_and_a_killed_node_keep_the_order(grid: Grid, routers: list[str]) -> None:
    user_id = grid.add_user(EMAIL).user_id
    history = History()
    seen: list[types_pb2.MailboxChange] = []
    stop = threading.Event()
    follower_error: list[BaseException] = []

    def run_follower() -> None:
        try:
            follow(routers, user_id, seen, stop)
        except BaseException as exc:    # reported by the test below
            follower_error.append(exc)

    follower = threading.Thread(target=run_follower)
    follower.start()
    writers = [threading.Thread(target=writer, args=(routers[i % 2], user_id, 50, history, f"w{i}"))
               for i in range(4)]
    for thread in writers:
        thread.start()
    time.sleep(1.0)
    grid.kill_storage(2)
    time.sleep(1.5)
    grid.start_storage(2)
    for thread in writers:
        thread.join(120)
    stop.set()
    follower.join(60)
    assert not follower_error, follower_error
    assert len(history.delivered) == 200

    everything = grid.mail.Changes(mail_pb2.ChangesRequest(user_id=user_id, since=0, limit=1024), timeout=10)
    assert not everything.has_more
    check_history(history, seen, list(everything.changes))


def check_history(history: History, seen: list[types_pb2.MailboxChange], final: list[types_pb2.MailboxChange]) -> None:
    # the follower saw every change once, in MODSEQ order, none missed: the feed itself
    assert [c.modseq for c in seen] == list(range(1, len(seen) + 1))
    assert [c.SerializeToString() for c in seen] == [c.SerializeToString() for c in final]
    # UIDs only grow within a folder (and UIDVALIDITY holds), and none is given twice
    last_uid: dict[str, int] = {}
    given: set[tuple[str, int, int]] = set()
    for change in seen:
        if change.kind == Kind.MESSAGE_NEW or (change.kind == Kind.MESSAGE_UPDATED and change.from_folder_id):
            assert change.uid > last_uid.get(change.folder_id, 0), change
            last_uid[change.folder_id] = change.uid
            slot = (change.folder_id, change.uidvalidity, change.uid)
            assert slot not in given, change
            given.add(slot)
    # every acknowledged delivery is new exactly once, and each acked change follows it
    news = [c.id for c in seen if c.kind == Kind.MESSAGE_NEW]
    assert sorted(news) == sorted(history.delivered)
    first_seen = {c.id: c.modseq for c in seen if c.kind == Kind.MESSAGE_NEW}
    updates: dict[str, int] = defaultdict(int)
    for change in seen:
        if change.kind == Kind.MESSAGE_UPDATED:
            assert change.modseq > first_seen[change.id]
            updates[change.id] += 1
    for message_id, count in history.updated.items():
        assert updates[message_id] >= count, message_id


def test_a_new_mailbox_has_an_empty_feed_and_a_bad_limit_is_refused(grid: Grid) -> None:
    user_id = grid.add_user("fresh@example.test").user_id
    empty = grid.mail.Changes(mail_pb2.ChangesRequest(user_id=user_id, since=0), timeout=10)
    assert (empty.old_state, empty.new_state, empty.has_more, list(empty.changes)) == (0, 0, False, [])
    with pytest.raises(grpc.RpcError) as bad:
        grid.mail.Changes(mail_pb2.ChangesRequest(user_id=user_id, since=0, limit=5000), timeout=10)
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_a_watch_on_one_router_hears_of_a_change_another_router_made(grid: Grid, routers: list[str]) -> None:
    """The router learns from the storage nodes' notices, not only from its own commits: the
    event comes well before the watch's own re-read (router/change_feed.py WATCH_POLL_S)."""
    user_id = grid.add_user("watched@example.test").user_id
    with grpc.insecure_channel(routers[0]) as first, grpc.insecure_channel(routers[1]) as second:
        stream = mail_pb2_grpc.MailStub(first).Watch(mail_pb2.ChangesRequest(user_id=user_id, since=0), timeout=30)
        time.sleep(0.5)                 # the watch is waiting
        sent = time.monotonic()
        answer = mail_pb2_grpc.MailStub(second).Deliver(mail_pb2.DeliverRequest(
            entry_id=new_entry_id(), raw=raw("elsewhere"), recipients=["watched@example.test"]), timeout=30)
        batch = next(stream)
        heard = time.monotonic() - sent
        stream.cancel()
    assert [(c.kind, c.id) for c in batch.changes] == [(Kind.MESSAGE_NEW, answer.deliveries[0].id)]
    assert heard < 2.0, heard


def test_a_folder_view_lists_uids_and_modseqs_and_a_new_folder_gets_its_uidvalidity(grid: Grid) -> None:
    email = "viewed@example.test"
    user_id = grid.add_user(email).user_id
    empty = grid.mail.Mailbox(mail_pb2.MailboxRequest(user_id=user_id, folder_id="archive"), timeout=10)
    assert empty.uidvalidity > 0 and empty.uid_next == 1 and not empty.entries
    ids = [grid.mail.Deliver(mail_pb2.DeliverRequest(entry_id=new_entry_id(), raw=raw(f"v{i}"), recipients=[email]),
                             timeout=30).deliveries[0].id for i in range(3)]
    grid.mail.UpdateMessage(mail_pb2.UpdateRequest(user_id=user_id, id=ids[0], starred=True), timeout=10)
    grid.mail.UpdateMessage(mail_pb2.UpdateRequest(user_id=user_id, id=ids[1], folder_id="archive"), timeout=10)
    inbox = grid.mail.Mailbox(mail_pb2.MailboxRequest(user_id=user_id, folder_id="inbox"), timeout=10)
    assert [(e.uid, e.id) for e in inbox.entries] == [(1, ids[0]), (3, ids[2])]
    assert inbox.uid_next == 4 and inbox.highest_modseq >= max(e.modseq for e in inbox.entries)
    assert inbox.entries[0].modseq > inbox.entries[1].modseq          # the flag change came last but one
    archive = grid.mail.Mailbox(mail_pb2.MailboxRequest(user_id=user_id, folder_id="archive"), timeout=10)
    assert archive.uidvalidity == empty.uidvalidity and [(e.uid, e.id) for e in archive.entries] == [(1, ids[1])]
    paged = grid.mail.Mailbox(mail_pb2.MailboxRequest(user_id=user_id, folder_id="inbox", limit=1), timeout=10)
    assert [e.uid for e in paged.entries] == [1] and paged.has_more
    with pytest.raises(grpc.RpcError) as unknown:
        grid.mail.Mailbox(mail_pb2.MailboxRequest(user_id=user_id, folder_id="f0badbad"), timeout=10)
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND


def test_a_router_with_a_stale_lead_orders_while_a_node_is_down(grid: Grid, routers: list[str]) -> None:
    """Another router took the mailbox over, then a node died: this router's accept and prepare
    meet one refusal and one failure; it must retry with a higher ballot, not answer UNAVAILABLE
    (red before: "1 of 2 acceptors answered")."""
    email = "stale@example.test"
    user_id = grid.add_user(email).user_id
    with grpc.insecure_channel(routers[1]) as channel:
        other = mail_pb2_grpc.MailStub(channel)
        first = grid.mail.Deliver(mail_pb2.DeliverRequest(entry_id=new_entry_id(), raw=raw("stale-1"),
                                                          recipients=[email]), timeout=30).deliveries[0].id
        other.UpdateMessage(mail_pb2.UpdateRequest(user_id=user_id, id=first, starred=True), timeout=10)
        grid.kill_storage(2)
        try:
            grid.mail.UpdateMessage(mail_pb2.UpdateRequest(user_id=user_id, id=first, unread=False), timeout=10)
        finally:
            grid.start_storage(2)
    feed = grid.mail.Changes(mail_pb2.ChangesRequest(user_id=user_id, since=0), timeout=10)
    assert [c.kind for c in feed.changes] == [Kind.MESSAGE_NEW, Kind.MESSAGE_UPDATED, Kind.MESSAGE_UPDATED]
