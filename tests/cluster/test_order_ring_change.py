"""The mailbox order across ring changes, on real processes: two writers deliver, star and
move through two routers while `node add` (3 -> 4) and then `node remove` (4 -> 3) run,
a follower reads Mail.Changes and another reads Mail.Mailbox throughout. The history
checker of test_mailbox_order then proves MODSEQs 1..n with no gap or repeat, UIDs only
growing per folder and never given twice, every acknowledged change present; UIDVALIDITY
holds through the change; the router not running the change learnt of it from a node's
fence; afterwards the view is the same with an old owner that kept
the user killed (so the new owner answers), and the owner that lost the user holds none
of its order. The nodes keep 4 chosen slots only, so the new owner cannot learn the
order slot by slot from the others: it has it from the stream (or a snapshot)."""
from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator

import grpc
import pytest

from router.ring import NodeInfo, Ring
from tests.cluster.grid import Grid, running
from tests.cluster.test_mailbox_order import History, check_history, follow, writer
from tidings.v1 import mail_pb2, mail_pb2_grpc, storage_pb2, storage_pb2_grpc, types_pb2

FOLDERS = ("inbox", "archive")
WRITES = 30                 # deliveries per writer at least (and a star every third, a move every fifth)
CHUNK = 5                   # deliveries of one writer() call
KEEP_SLOTS = 4              # chosen slots a replica keeps: a new owner cannot catch up slot by slot


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Grid]:
    keep = {f"storage-{i}": ("--order-keep-slots", str(KEEP_SLOTS)) for i in range(1, 5)}
    with running(tmp_path_factory.mktemp("order-ring"), edges=(), args=keep) as grid:
        grid.start_storage(4)
        yield grid


@pytest.fixture(scope="module")
def routers(grid: Grid) -> list[str]:
    return [grid.router_address, grid.start_router()]


def node(grid: Grid, index: int) -> storage_pb2_grpc.StorageNodeStub:
    return storage_pb2_grpc.StorageNodeStub(grpc.insecure_channel(grid.layout.storage_address(index)))


def served_ring(grid: Grid) -> Ring:
    return Ring.from_json(node(grid, 1).GetRing(storage_pb2.GetRingRequest(), timeout=10).json)


def owners(ring: Ring, user_id: str) -> set[str]:
    return {x.node_id for x in ring.preference_list(user_id, 3)}


def moving_user(grid: Grid, name: str, before: Ring, after: Ring) -> tuple[str, str]:
    """A new user whose replicas differ between the two rings: its address and id."""
    for i in range(50):
        user_id = grid.add_user(f"{name}{i}@example.test").user_id
        if owners(before, user_id) != owners(after, user_id):
            return f"{name}{i}@example.test", user_id
    raise AssertionError("no user moves")


class Views:
    """Mail.Mailbox of both folders, read through both routers in turn until stopped: a UID
    names one message only, UIDVALIDITY never changes, UIDNEXT is above every UID seen."""

    def __init__(self, routers: list[str], user_id: str) -> None:
        self.stubs = [mail_pb2_grpc.MailStub(grpc.insecure_channel(a)) for a in routers]
        self.user_id = user_id
        self.uidvalidity: dict[str, set[int]] = {f: set() for f in FOLDERS}
        self.named: dict[tuple[str, int, int], str] = {}
        self.reads = 0
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)

    def __enter__(self) -> Views:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(60)

    def _run(self) -> None:
        turn = 0
        try:
            while not self._stop.is_set():
                for folder in FOLDERS:
                    turn += 1
                    try:
                        view = self.stubs[turn % 2].Mailbox(mail_pb2.MailboxRequest(
                            user_id=self.user_id, folder_id=folder), timeout=10)
                    except grpc.RpcError as exc:
                        if exc.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                            raise
                        continue
                    self.check(folder, view)
                time.sleep(0.05)
        except BaseException as exc:    # reported by the test
            self.errors.append(exc)

    def check(self, folder: str, view: mail_pb2.MailboxView) -> None:
        self.reads += 1
        self.uidvalidity[folder].add(view.uidvalidity)
        assert len(self.uidvalidity[folder]) == 1, (folder, self.uidvalidity[folder])
        for entry in view.entries:
            assert entry.uid < view.uid_next, (folder, entry, view.uid_next)
            assert self.named.setdefault((folder, view.uidvalidity, entry.uid), entry.id) == entry.id, entry


def snapshot(mail: mail_pb2_grpc.MailStub, user_id: str) -> tuple[list[bytes], list[tuple[int, int, list[tuple[int, str]]]]]:
    """The user's whole feed and both folders' views (without the modseq the view was read at)."""
    feed = mail.Changes(mail_pb2.ChangesRequest(user_id=user_id, since=0, limit=1024), timeout=10)
    assert not feed.has_more
    views = []
    for folder in FOLDERS:
        view = mail.Mailbox(mail_pb2.MailboxRequest(user_id=user_id, folder_id=folder), timeout=10)
        views.append((view.uidvalidity, view.uid_next, [(e.uid, e.id) for e in view.entries]))
    return [c.SerializeToString() for c in feed.changes], views


def node_modseq(grid: Grid, index: int, user_id: str) -> int:
    return node(grid, index).OrderChanges(storage_pb2.OrderChangesRequest(user_id=user_id, since=0), timeout=10).modseq


def keep_writing(address: str, user_id: str, history: History, name: str, email: str,
                 changed: threading.Event) -> None:
    """test_mailbox_order's writer, a chunk after another, from before the change until a
    chunk begun after it and WRITES deliveries in all: the writes span the whole change."""
    for chunk in itertools.count(1):
        after = changed.is_set()
        writer(address, user_id, CHUNK, history, f"{name}-{chunk}", email)
        if after and chunk * CHUNK >= WRITES:
            return


def run_change(grid: Grid, routers: list[str], user: tuple[str, str], change: Callable[[], mail_pb2.RingReport]
               ) -> mail_pb2.RingReport:
    """Writers and followers around one ring change, and the history checked."""
    email, user_id = user
    history = History()
    seen: list[types_pb2.MailboxChange] = []
    stop = threading.Event()
    errors: list[BaseException] = []

    def run_follower() -> None:
        try:
            follow(routers, user_id, seen, stop)
        except BaseException as exc:    # reported below
            errors.append(exc)

    follower = threading.Thread(target=run_follower)
    changed = threading.Event()
    writers = [threading.Thread(target=keep_writing, args=(routers[i], user_id, history, f"w{i}", email, changed))
               for i in range(2)]
    with Views(routers, user_id) as views:
        follower.start()
        for thread in writers:
            thread.start()
        while len(history.delivered) < 4 and all(t.is_alive() for t in writers):
            time.sleep(0.01)
        report = change()
        changed.set()
        for thread in writers:
            thread.join(120)
        stop.set()
        follower.join(60)
    assert not errors and not views.errors, (errors, views.errors)
    assert len(history.delivered) >= 2 * WRITES and views.reads > 0
    final = grid.mail.Changes(mail_pb2.ChangesRequest(user_id=user_id, since=0, limit=1024), timeout=10)
    check_history(history, seen, list(final.changes))
    for folder in FOLDERS:            # UIDVALIDITY is unchanged by the ring change
        assert len({c.uidvalidity for c in seen if c.folder_id == folder and c.uid}) == 1, folder
    return report


def learned_from_a_fence(grid: Grid, version: int) -> bool:
    """The second router (not the one running the change) was refused by a node's fence
    and used joint quorums for ring `version` (router/order_config.py logs it)."""
    log = grid.cluster.processes["router-2"].log_path.read_text(errors="replace")
    return f"ring {version} is pending, joint quorums" in log


def same_view_without(grid: Grid, user_id: str, index: int) -> None:
    """The view read with storage node `index` killed is the view read before."""
    before = snapshot(grid.mail, user_id)
    grid.kill_storage(index)
    try:
        assert snapshot(grid.mail, user_id) == before
    finally:
        grid.start_storage(index)


def test_a_node_added_under_order_traffic_keeps_the_order(grid: Grid, routers: list[str]) -> None:
    old = served_ring(grid)
    joining = NodeInfo("4", grid.layout.storage_address(4), "zone-d")
    email, user_id = moving_user(grid, "grow", old, old.with_node(joining))
    report = run_change(grid, routers, (email, user_id), lambda: grid.admin.AddNode(mail_pb2.NodeChange(
        node_id="4", address=joining.address, zone=joining.zone), timeout=120))
    new = served_ring(grid)
    assert report.version == new.version == 2 and "4" in owners(new, user_id)
    assert learned_from_a_fence(grid, 2)
    (loser,) = owners(old, user_id) - owners(new, user_id)
    modseq = node_modseq(grid, 4, user_id)
    assert modseq == max(node_modseq(grid, int(i), user_id) for i in owners(new, user_id)) > 2 * WRITES
    assert node_modseq(grid, int(loser), user_id) == 0          # dropped with the range
    kept = sorted(owners(old, user_id) & owners(new, user_id))
    same_view_without(grid, user_id, int(kept[0]))


def test_a_node_removed_under_order_traffic_keeps_the_order(grid: Grid, routers: list[str]) -> None:
    old = served_ring(grid)
    assert "4" in old
    email, user_id = moving_user(grid, "shrink", old, old.without_node("4"))
    report = run_change(grid, routers, (email, user_id), lambda: grid.admin.RemoveNode(
        mail_pb2.NodeChange(node_id="4"), timeout=120))
    new = served_ring(grid)
    assert report.version == new.version == 3 and "4" not in new
    assert learned_from_a_fence(grid, 3)
    (gainer,) = owners(new, user_id) - owners(old, user_id)
    assert node_modseq(grid, int(gainer), user_id) > 2 * WRITES
    assert node_modseq(grid, 4, user_id) == 0
    kept = sorted(owners(old, user_id) & owners(new, user_id))
    same_view_without(grid, user_id, int(kept[0]))
