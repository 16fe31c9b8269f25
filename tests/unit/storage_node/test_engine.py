"""The storage engine over a real RocksDB: the data model's rules, idempotence, LWW."""
from __future__ import annotations

import zlib
from pathlib import Path

import pytest

from storage_node import codec, keys
from storage_node.blobs import LocalBlobStore
from storage_node.engine import Change, Engine, run_group
from storage_node.errors import CorruptValue, InvalidArgument, NotFound
from tests.unit.storage_node.fixtures import OTHER, USER, apply, mid, new, raw_mail, state
from tidings_runtime.mime import parse_mail
from tidings_runtime.parsed_wire import from_wire, to_wire


@pytest.fixture
def engine(tmp_path: Path):
    e = Engine(tmp_path / "db", LocalBlobStore(tmp_path / "blobs"))
    yield e
    e.close()


def test_store_is_idempotent_and_counts(engine: Engine) -> None:
    created, _ = apply(engine, lambda t: engine.store_message(t, new(mid(1), 1000)))
    again, _ = apply(engine, lambda t: engine.store_message(t, new(mid(1), 1000)))
    assert (created, again) == (True, False)
    assert engine.folder_counts(USER)["inbox"].total == 1
    assert engine.folder_counts(USER)["inbox"].unread == 1


def test_listing_is_newest_first_with_exclusive_cursor(engine: Engine) -> None:
    run_group(engine, [lambda t, i=i: engine.store_message(t, new(mid(i), 1000 + i)) for i in range(1, 6)])
    first = engine.list_folder(USER, "inbox", False, 2, None)
    assert [r.id for r in first] == [mid(5), mid(4)]
    rest = engine.list_folder(USER, "inbox", False, 10, (first[-1].received_ms, first[-1].id))
    assert [r.id for r in rest] == [mid(3), mid(2), mid(1)]


def test_read_and_unread_move_between_tables(engine: Engine) -> None:
    run_group(engine, [lambda t, i=i: engine.store_message(t, new(mid(i), 1000 + i)) for i in range(1, 4)])
    apply(engine, lambda t: engine.update_message(t, Change(USER, mid(2), version=5, unread=False)))
    assert [r.id for r in engine.list_folder(USER, "inbox", True, 10, None)] == [mid(3), mid(1)]
    assert engine.folder_counts(USER)["inbox"].unread == 2
    apply(engine, lambda t: engine.update_message(t, Change(USER, mid(2), version=6, unread=True)))
    assert [r.id for r in engine.list_folder(USER, "inbox", True, 10, None)] == [mid(3), mid(2), mid(1)]
    assert engine.folder_counts(USER)["inbox"].unread == 3


def test_older_version_loses(engine: Engine) -> None:
    apply(engine, lambda t: engine.store_message(t, new(mid(1), 1000)))
    apply(engine, lambda t: engine.update_message(t, Change(USER, mid(1), version=10, starred=True)))
    held = apply(engine, lambda t: engine.update_message(t, Change(USER, mid(1), version=9, starred=False)))
    assert held.starred and held.version == 10


def test_move_and_expunge(engine: Engine) -> None:
    apply(engine, lambda t: engine.store_message(t, new(mid(1), 1000)))
    apply(engine, lambda t: engine.update_message(t, Change(USER, mid(1), version=2, folder_id="trash")))
    counts = engine.folder_counts(USER)
    assert (counts["inbox"].total, counts["trash"].total, counts["trash"].unread) == (0, 1, 1)
    apply(engine, lambda t: engine.update_message(t, Change(USER, mid(1), version=3, expunge=True)))
    assert engine.folder_counts(USER)["trash"].total == 0
    assert engine.record(USER, mid(1)).tombstone
    with pytest.raises(NotFound):
        engine.raw(USER, mid(1))
    # a late retry of the original delivery does not resurrect it
    created, held = apply(engine, lambda t: engine.store_message(t, new(mid(1), 1000)))
    assert not created and held.tombstone


def test_failed_mutation_leaves_nothing_and_spares_the_group(engine: Engine) -> None:
    results = run_group(engine, [
        lambda t: engine.store_message(t, new(mid(1), 1000)),
        lambda t: engine.store_message(t, new(mid(2), 1001, folder="nowhere")),
        lambda t: engine.store_message(t, new(mid(3), 1002)),
    ])
    assert isinstance(results[1], InvalidArgument)
    assert [r.id for r in engine.list_folder(USER, "inbox", False, 10, None)] == [mid(3), mid(1)]
    assert engine.record(USER, mid(2)) is None


def test_users_are_isolated(engine: Engine) -> None:
    apply(engine, lambda t: engine.store_message(t, new(mid(1), 1000)))
    assert engine.record(OTHER, mid(1)) is None
    assert engine.list_folder(OTHER, "inbox", False, 10, None) == []


def test_threads_and_message_id_lookup(engine: Engine) -> None:
    apply(engine, lambda t: engine.store_message(t, new(mid(1), 1000, raw=raw_mail("root"))))
    assert engine.lookup_thread(USER, ["nope@x", "root@example.test"]) == mid(1)[:16]
    assert [r.id for r in engine.thread(USER, mid(1)[:16])] == [mid(1)]


def test_raw_survives_reopen_byte_identical(tmp_path: Path) -> None:
    raw = raw_mail("persist", "x" * 300_000)  # over the inline limit: goes to the blob store
    e = Engine(tmp_path / "db", LocalBlobStore(tmp_path / "blobs"))
    apply(e, lambda t: e.store_message(t, new(mid(7), 1000, raw=raw, body=e.encode_body(raw))))
    e.close()
    e = Engine(tmp_path / "db", LocalBlobStore(tmp_path / "blobs"))
    try:
        assert e.raw(USER, mid(7)) == raw
        assert e.get(keys.CF_BODIES, keys.message(USER, mid(7)))[0] == codec.BODY_BLOB_V1
    finally:
        e.close()


def test_bodies_are_zstd_and_zlib_bodies_stay_readable(engine: Engine) -> None:
    raw = raw_mail("inline", "compressible words " * 200)
    apply(engine, lambda t: engine.store_message(t, new(mid(1), 1000, raw=raw)))
    assert engine.get(keys.CF_BODIES, keys.message(USER, mid(1)))[0] == codec.BODY_ZSTD_V1
    assert engine.raw(USER, mid(1)) == raw
    old = bytes([codec.BODY_ZLIB_V1]) + zlib.compress(raw, 6)      # as written before zstd
    apply(engine, lambda t: engine.store_message(t, new(mid(2), 1001, raw=raw, body=old)))
    assert engine.raw(USER, mid(2)) == raw
    with pytest.raises(CorruptValue):
        codec.decode_body(bytes([9]) + b"?")


def test_a_shipped_parse_prepares_what_the_bytes_would(engine: Engine) -> None:
    held = state(mid(3), 1)
    shipped = to_wire(parse_mail(held.raw))
    assert shipped is not None
    assert engine.prepare(held, from_wire(shipped)) == engine.prepare(held)


def test_same_millisecond_rows_page_without_overlap(engine: Engine) -> None:
    run_group(engine, [lambda t, i=i: engine.store_message(t, new(mid(i), 1000)) for i in range(1, 6)])
    first = engine.list_folder(USER, "inbox", False, 2, None)
    rest = engine.list_folder(USER, "inbox", False, 10, (first[-1].received_ms, first[-1].id))
    assert [r.id for r in first + rest] == [mid(i) for i in range(1, 6)]
