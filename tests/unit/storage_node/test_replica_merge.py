"""Engine.apply_replica: the merge rule of replicated messages (newer live version wins, a
tombstone wins over any live version, a held tombstone never comes back), with counters,
the unread table and the search index kept true."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from search_node.index import SearchIndex
from storage_node import keys
from storage_node.engine import Change, Engine
from storage_node.errors import NotFound
from storage_node.indexing import check_user
from storage_node.model import DirectoryValue
from tests.unit.storage_node.fixtures import USER, apply, indexed_engine, mid, state


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    e = indexed_engine(tmp_path)
    yield e
    e.close()


def merge(engine: Engine, *states: object) -> list[bool]:
    return [apply(engine, lambda t, s=s: engine.apply_replica(t, s)) for s in states]


def unread_ids(engine: Engine, folder: str = "inbox") -> list[str]:
    return [r.id for r in engine.list_folder(USER, folder, True, 100, None)]


def searched(engine: Engine, query: str) -> list[str]:
    return SearchIndex().search(engine, USER, query).ids


def assert_true_state(engine: Engine) -> None:
    """Counters, unread table and search index agree with the stored messages."""
    live = list(engine.user_records(USER))
    for role, counts in engine.folder_counts(USER).items():
        here = [r for r in live if keys.FOLDER_NAMES[r.folder_no] == role]
        assert (counts.total, counts.unread) == (len(here), sum(r.unread for r in here)), role
        assert sorted(unread_ids(engine, role)) == sorted(r.id for r in here if r.unread)
    assert sorted(searched(engine, "is:unread")) == sorted(r.id for r in live if r.unread)
    count, problems = check_user(engine, SearchIndex(), USER)
    assert (count, problems) == (len(live), [])


def test_not_held_live_is_stored_exactly_and_once(engine: Engine) -> None:
    assert merge(engine, state(mid(1), 7, folder="archive", starred=True)) == [True]
    record = engine.record(USER, mid(1))
    assert (record.version, record.folder_no, record.unread, record.starred) == (7, 6, True, True)
    assert b"replicated body" in engine.raw(USER, mid(1))
    assert searched(engine, "replicated") == [mid(1)]
    assert_true_state(engine)
    assert merge(engine, state(mid(1), 7, folder="archive", starred=True)) == [False]
    assert engine.folder_counts(USER)["archive"].total == 1


def test_not_held_tombstone_is_a_bare_record(engine: Engine) -> None:
    assert merge(engine, state(mid(1), 9, tombstone=True)) == [True]
    record = engine.record(USER, mid(1))
    assert record.tombstone and record.version == 9
    assert engine.get(keys.CF_BODIES, keys.message(USER, mid(1))) is None
    assert engine.list_folder(USER, "inbox", False, 10, None) == []
    assert_true_state(engine)


def test_newer_live_version_sets_folder_and_flags(engine: Engine) -> None:
    merge(engine, state(mid(1), 5), state(mid(2), 5))
    assert merge(engine, state(mid(1), 6, folder="trash", unread=False, starred=True)) == [True]
    record = engine.record(USER, mid(1))
    assert (record.version, keys.FOLDER_NAMES[record.folder_no], record.unread, record.starred) == (6, "trash", False, True)
    assert unread_ids(engine) == [mid(2)]
    assert searched(engine, "is:unread") == [mid(2)]
    assert_true_state(engine)


def test_older_live_version_changes_nothing(engine: Engine) -> None:
    merge(engine, state(mid(1), 5))
    assert merge(engine, state(mid(1), 4, unread=False, folder="spam")) == [False]
    assert merge(engine, state(mid(1), 5)) == [False]     # the same copy again
    assert engine.record(USER, mid(1)).version == 5
    assert unread_ids(engine) == [mid(1)]
    assert_true_state(engine)


def test_equal_versions_that_differ_converge_on_the_larger_cells(tmp_path: Path) -> None:
    """Copies of one version with different cells (a replica that missed an update, then took a
    later one of other cells): each replica keeps whichever has the larger cells digest, so two
    replicas that exchange their copies end the same, whatever the order."""
    a, b = state(mid(1), 5, unread=False, folder="spam"), state(mid(1), 5, starred=True)
    ends = []
    for i, (first, second) in enumerate([(a, b), (b, a)]):
        e = indexed_engine(tmp_path / str(i))
        try:
            merge(e, first, second)
            record = e.record(USER, mid(1))
            ends.append((record.folder_no, record.unread, record.starred, record.cells()))
            assert_true_state(e)
        finally:
            e.close()
    assert ends[0] == ends[1]


@pytest.mark.parametrize("version", [3, 9])
def test_tombstone_of_any_version_expunges_live(engine: Engine, version: int) -> None:
    merge(engine, state(mid(1), 5), state(mid(2), 5))
    assert merge(engine, state(mid(1), version, tombstone=True)) == [True]
    record = engine.record(USER, mid(1))
    assert record.tombstone and record.version == version
    with pytest.raises(NotFound):
        engine.raw(USER, mid(1))
    assert unread_ids(engine) == [mid(2)]
    assert searched(engine, "replicated") == [mid(2)]
    assert_true_state(engine)


def test_held_tombstone_never_comes_back(engine: Engine) -> None:
    merge(engine, state(mid(1), 5), state(mid(1), 6, tombstone=True))
    assert merge(engine, state(mid(1), 99)) == [False]
    assert engine.record(USER, mid(1)).tombstone
    assert_true_state(engine)


def test_tombstones_converge_on_the_highest_version(engine: Engine) -> None:
    merge(engine, state(mid(1), 6, tombstone=True))
    assert merge(engine, state(mid(1), 4, tombstone=True), state(mid(1), 8, tombstone=True)) == [False, True]
    assert engine.record(USER, mid(1)).version == 8


def test_update_expunge_wins_over_a_newer_live_version(engine: Engine) -> None:
    merge(engine, state(mid(1), 10))
    held = apply(engine, lambda t: engine.update_message(t, Change(USER, mid(1), version=3, expunge=True)))
    assert held.tombstone and held.version == 3
    assert_true_state(engine)


def test_directory_is_last_writer_wins(engine: Engine) -> None:
    def put(version: int, value: bytes) -> bool:
        return apply(engine, lambda t: engine.apply_directory(t, "account:a@x", DirectoryValue(value, version)))

    assert [put(2, b"two"), put(1, b"one"), put(2, b"again"), put(3, b"three")] == [True, False, False, True]
    assert engine.directory("account:a@x") == DirectoryValue(b"three", 3)
