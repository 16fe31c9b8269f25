"""Custom folders in the storage node: the id spells the number of the keys, so a replica
files, counts, lists, indexes and replicates a custom folder's messages with no lookup."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from storage_node import keys, replication
from storage_node.engine import Change, Engine, folder_no
from storage_node.errors import InvalidArgument
from storage_node.replication import ItemRef
from storage_node.service import to_summary
from tests.unit.storage_node.fixtures import USER, apply, indexed_engine, mid, new, state
from tidings_runtime.partitions import (
    CUSTOM_FOLDER_MIN,
    custom_folder_id,
    directory_partition,
    folder_id_of,
    folder_number,
    listable_partition,
)

WORK = custom_folder_id(0x00012345)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    e = indexed_engine(tmp_path / "a")
    yield e
    e.close()


def test_ids_and_numbers_map_both_ways() -> None:
    assert WORK == "f00012345" and folder_number(WORK) == 0x12345 and folder_id_of(0x12345) == WORK
    assert [folder_id_of(folder_number(role) or 0) for role in keys.SYSTEM_FOLDERS] == list(keys.SYSTEM_FOLDERS)
    for bad in ("work", "f0000ffff", "F00012345", "f0001234", "f000123456", "f0001234g", ""):
        assert folder_number(bad) is None, bad
    assert folder_id_of(7) == "" and folder_id_of(CUSTOM_FOLDER_MIN) == "f00010000"
    with pytest.raises(InvalidArgument):
        folder_no("work")
    with pytest.raises(ValueError):
        custom_folder_id(5)


def test_folder_entries_share_a_listable_partition() -> None:
    assert directory_partition(f"folders:{USER}:{WORK}") == f"folders:{USER}"
    assert directory_partition("queue:3:abc") == "queue:3"
    assert listable_partition(f"folders:{USER}") and listable_partition("queue:3")
    assert not listable_partition(f"folders:{USER}:{WORK}") and not listable_partition("folders:")
    assert not listable_partition("account:ann@example.test")


def test_store_move_count_and_list_a_custom_folder(engine: Engine) -> None:
    apply(engine, lambda t: engine.store_message(t, new(mid(1), 1000, folder=WORK)))
    apply(engine, lambda t: engine.store_message(t, new(mid(2), 2000)))
    apply(engine, lambda t: engine.update_message(t, Change(USER, mid(2), version=5, folder_id=WORK, unread=False)))
    counts = engine.folder_counts(USER)
    assert list(counts)[:6] == list(keys.SYSTEM_FOLDERS)     # the system folders first, empty or not
    assert (counts[WORK].total, counts[WORK].unread, counts["inbox"].total) == (2, 1, 0)
    assert [r.id for r in engine.list_folder(USER, WORK, False, 10, None)] == [mid(2), mid(1)]
    assert to_summary(engine.record(USER, mid(1))).folder_id == WORK
    apply(engine, lambda t: engine.update_message(t, Change(USER, mid(1), version=6, folder_id="archive")))
    apply(engine, lambda t: engine.update_message(t, Change(USER, mid(2), version=6, folder_id="archive")))
    assert engine.folder_counts(USER)[WORK].total == 0       # counted, empty: the router decides to show it
    with pytest.raises(InvalidArgument):
        apply(engine, lambda t: engine.update_message(t, Change(USER, mid(1), version=7, folder_id="f0000ffff")))


def test_search_in_a_custom_folder_by_its_id(engine: Engine) -> None:
    apply(engine, lambda t: engine.store_message(t, new(mid(1), 1000, folder=WORK)))
    apply(engine, lambda t: engine.store_message(t, new(mid(2), 2000)))
    assert engine.index is not None
    search = engine.index.index.search     # type: ignore[attr-defined]
    assert search(engine, USER, f"in:{WORK}").ids == [mid(1)]
    apply(engine, lambda t: engine.update_message(t, Change(USER, mid(2), version=5, folder_id=WORK)))
    assert search(engine, USER, f"in:{WORK}").ids == [mid(2), mid(1)]


def test_replicas_exchange_custom_folder_messages(tmp_path: Path, engine: Engine) -> None:
    item = state(mid(1), 5, folder=WORK)
    prepared = replication.prepare_items(engine, [item])
    apply(engine, lambda t: replication.apply_prepared(engine, t, prepared))
    [held] = replication.read_items(engine, [ItemRef(USER, mid(1))])
    assert held == item
    other = indexed_engine(tmp_path / "b")
    try:
        prepared = replication.prepare_items(other, [held])
        apply(other, lambda t: replication.apply_prepared(other, t, prepared))
        assert other.folder_counts(USER)[WORK].total == 1
    finally:
        other.close()
