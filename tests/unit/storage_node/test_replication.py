"""Replication on one node without gRPC: digests, entries, batches, dropping ranges,
garbage collection, the hint store, range deletes in a Txn, reopening with new CFs."""
from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from search_node.index import COLUMN_FAMILIES as SEARCH_COLUMN_FAMILIES
from search_node.index import SearchIndex
from storage_node import keys, replication
from storage_node.batch import Txn
from storage_node.blobs import LocalBlobStore
from storage_node.commit import GroupCommitter
from storage_node.engine import Engine
from storage_node.errors import InvalidArgument
from storage_node.gc import collect_garbage
from storage_node.hints import HintStore, check_hint
from storage_node.model import DirectoryValue
from storage_node.ranges import TokenRange, key_bounds, union_bounds
from storage_node.rdict_store import RdictStore
from storage_node.replication import DirectoryItem, ItemRef
from tests.unit.storage_node.fixtures import OTHER, USER, apply, indexed_engine, mid, state
from tidings.v1 import storage_pb2
from tidings_runtime.hlc import first_version_at

WHOLE = TokenRange(0, 0)
NOW_MS = 1_700_000_000_000


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    e = indexed_engine(tmp_path / "a")
    yield e
    e.close()


def fill(engine: Engine, items: list[replication.Item]) -> int:
    prepared = replication.prepare_items(engine, items)
    return apply(engine, lambda t: replication.apply_prepared(engine, t, prepared))


def sample() -> list[replication.Item]:
    return [state(mid(1), 5), state(mid(2), 6, tombstone=True), state(mid(3), 7, user=OTHER),
            DirectoryItem("account:alice@example.test", b'{"user":"x"}', 3)]


def range_around(user: str) -> TokenRange:
    token = keys.partition_token(user)
    return TokenRange(token - 1, token)


def test_digests_agree_whatever_the_order_and_differ_on_any_version(tmp_path: Path, engine: Engine) -> None:
    other = indexed_engine(tmp_path / "b")
    try:
        assert fill(engine, sample()) == 4
        assert fill(other, list(reversed(sample()))) == 4
        digest, count = replication.range_digest(engine, WHOLE)
        assert (digest, count) == replication.range_digest(other, WHOLE) and count == 4
        fill(other, [state(mid(1), 9, unread=False)])
        assert replication.range_digest(other, WHOLE)[0] != digest
        assert replication.range_digest(other, range_around(OTHER)) == replication.range_digest(engine, range_around(OTHER))
    finally:
        other.close()


def test_digest_and_entries_cover_only_the_range(engine: Engine) -> None:
    fill(engine, sample())
    assert replication.range_digest(engine, range_around(OTHER))[1] == 1
    entries = replication.range_entries(engine, key_bounds(range_around(USER)))
    assert [(e.ref, e.version, e.tombstone) for e in entries] == [
        (ItemRef(USER, mid(1)), 5, False), (ItemRef(USER, mid(2)), 6, True)]
    whole = replication.range_entries(engine, key_bounds(WHOLE))
    assert len(whole) == 4 and ItemRef(directory_key="account:alice@example.test") in [e.ref for e in whole]


def test_read_items_gives_full_items_and_skips_unknown(engine: Engine) -> None:
    fill(engine, sample())
    got = replication.read_items(engine, [ItemRef(USER, mid(1)), ItemRef(USER, mid(2)), ItemRef(USER, mid(9)),
                                          ItemRef(USER, "nonsense"), ItemRef(directory_key="account:alice@example.test"),
                                          ItemRef(directory_key="domain:nowhere")])
    assert got[0] == state(mid(1), 5)
    assert got[1].tombstone and got[1].raw == b""
    assert got[2] == sample()[3]
    assert len(got) == 3


def test_batches_cover_every_item_once_in_key_order(engine: Engine) -> None:
    fill(engine, sample())
    bounds = union_bounds([WHOLE])
    seen: list[replication.Item] = []
    after = None
    batches = 0
    while True:
        items, after = replication.read_batch(engine, bounds, after, batch_bytes=1)
        seen += items
        batches += 1
        if after is None:
            break
    assert batches >= 4 and len(seen) == 4
    everything, done = replication.read_batch(engine, bounds, None, 1 << 20)
    assert done is None and everything == seen


def test_drop_ranges_removes_items_rows_counters_and_search(engine: Engine) -> None:
    fill(engine, sample())
    bounds = key_bounds(range_around(USER))
    assert apply(engine, lambda t: replication.drop_ranges(engine, t, bounds)) == 2
    assert engine.record(USER, mid(1)) is None and engine.record(USER, mid(2)) is None
    assert engine.list_folder(USER, "inbox", False, 10, None) == []
    assert engine.folder_counts(USER)["inbox"].total == 0
    for cf in SEARCH_COLUMN_FAMILIES:
        user = bytes.fromhex(USER)
        assert list(engine.scan(cf, user, keys.prefix_end(user))) == []
    assert engine.record(OTHER, mid(3)) is not None
    assert SearchIndex().search(engine, OTHER, "replicated").ids == [mid(3)]
    assert engine.directory("account:alice@example.test") is not None


def test_drop_whole_ring_reaches_the_last_key(engine: Engine) -> None:
    fill(engine, sample())
    assert apply(engine, lambda t: replication.drop_ranges(engine, t, union_bounds([WHOLE]))) == 4
    assert replication.range_digest(engine, WHOLE)[1] == 0


def test_drop_a_range_past_every_key_is_a_no_op(engine: Engine) -> None:
    fill(engine, sample())
    last = max(keys.partition_token(u) for u in (USER, OTHER, "account:alice@example.test"))
    beyond = union_bounds([TokenRange(last, keys.MAX_U64)])
    assert apply(engine, lambda t: replication.drop_ranges(engine, t, beyond)) == 0
    assert replication.range_digest(engine, WHOLE)[1] == 4


def test_bad_items_change_nothing(engine: Engine) -> None:
    for bad in (state(mid(1), 1, user="zz"), state("short", 1), state(mid(1), 1, folder="nowhere"),
                DirectoryItem("", b"", 1)):
        with pytest.raises(InvalidArgument):
            replication.prepare_items(engine, [state(mid(5), 1), bad])
    assert replication.range_digest(engine, WHOLE)[1] == 0


def test_txn_range_delete_keeps_later_puts(engine: Engine) -> None:
    def mutate(txn: Txn) -> None:
        txn.put(keys.CF_META, b"a1", b"x")
        txn.delete_range(keys.CF_META, b"a", b"b")
        assert txn.get(keys.CF_META, b"a1") is None and txn.get(keys.CF_META, b"a0") is None
        child = txn.child()
        child.put(keys.CF_META, b"a2", b"kept")
        child.fold_into(txn)

    apply(engine, lambda t: t.put(keys.CF_META, b"a0", b"old"))
    apply(engine, mutate)
    assert [k for k, _ in engine.scan(keys.CF_META, b"a", b"b")] == [b"a2"]


def test_reopen_adds_the_new_column_families(tmp_path: Path) -> None:
    old = RdictStore(str(tmp_path / "db"), [*keys.MAIL_COLUMN_FAMILIES, *SEARCH_COLUMN_FAMILIES], sync=True)
    old.close()
    engine = Engine(tmp_path / "db", LocalBlobStore(tmp_path / "blobs"), extra_column_families=SEARCH_COLUMN_FAMILIES)
    try:
        apply(engine, lambda t: t.put(keys.CF_HINTS, b"k", b"v"))
    finally:
        engine.close()
    engine = Engine(tmp_path / "db", LocalBlobStore(tmp_path / "blobs"))
    try:
        assert engine.get(keys.CF_HINTS, b"k") == b"v"
    finally:
        engine.close()


def hint(target: str, version: int) -> storage_pb2.Hint:
    return storage_pb2.Hint(target_node_id=target, target_address="127.0.0.1:1", directory=storage_pb2.DirectoryEntry(
        key=f"domain:{version}.test", value=b"{}", version=version))


def test_hints_are_durable_and_counted_per_target(tmp_path: Path) -> None:
    async def put_some() -> None:
        engine = indexed_engine(tmp_path)
        committer = GroupCommitter(engine)
        committer.start()
        hints = HintStore(engine, committer)
        for target, version in (("2", 5), ("3", 1), ("2", 4)):
            await hints.put(hint(target, version))
        assert hints.status() == {"2": 2, "3": 1}
        await committer.stop()
        engine.close()

    asyncio.run(put_some())
    engine = indexed_engine(tmp_path)
    try:
        async def reopened() -> None:
            hints = HintStore(engine, GroupCommitter(engine))
            assert hints.status() == {"2": 2, "3": 1}
        asyncio.run(reopened())
        versions = [keys.parse_hint(k)[1] for k, _ in engine.scan(keys.CF_HINTS, b"2\x00", b"2\x01")]
        assert versions == [4, 5]
    finally:
        engine.close()


def test_bad_hints_are_refused(engine: Engine) -> None:
    for bad in (storage_pb2.Hint(target_node_id="2", target_address="x"),
                storage_pb2.Hint(target_node_id="", target_address="x", directory=storage_pb2.DirectoryEntry(key="k")),
                storage_pb2.Hint(target_node_id="2", target_address="x",
                                 update=storage_pb2.UpdateMessageRequest(user_id="bad", id=mid(1)))):
        with pytest.raises(InvalidArgument):
            check_hint(bad)


def test_gc_drops_old_tombstones_and_hints_only(engine: Engine) -> None:
    old, recent = first_version_at(NOW_MS - 20_000), first_version_at(NOW_MS - 1_000)
    fill(engine, [state(mid(1), old, tombstone=True), state(mid(2), recent, tombstone=True), state(mid(3), old)])

    async def run() -> tuple[int, int, dict[str, int]]:
        committer = GroupCommitter(engine)
        committer.start()
        hints = HintStore(engine, committer)
        await hints.put(hint("2", old))
        await hints.put(hint("2", recent))
        result = await collect_garbage(engine, committer, hints, grace_ms=10_000, now_ms=NOW_MS)
        await committer.stop()
        return result.tombstones, result.hints, hints.status()

    assert asyncio.run(run()) == (1, 1, {"2": 1})
    assert engine.record(USER, mid(1)) is None
    assert engine.record(USER, mid(2)).tombstone
    assert not engine.record(USER, mid(3)).tombstone


def test_directory_items_apply_lww(engine: Engine) -> None:
    fill(engine, [DirectoryItem("domain:x", b"new", 5)])
    assert fill(engine, [DirectoryItem("domain:x", b"old", 4)]) == 0
    assert engine.directory("domain:x") == DirectoryValue(b"new", 5)
