"""IMAP's flags and keywords as mutable cells of a message: the record codec (old records still
read), the engine's updates (set, clear, unchanged, keywords added/removed/replaced, the bounds),
replica merges, the range digest and the replica wire carrying them."""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from storage_node import codec, replication
from storage_node.engine import Change, Engine
from storage_node.errors import InvalidArgument
from storage_node.model import MessageRecord
from storage_node.ranges import TokenRange, key_bounds
from storage_node.service import _from_item, _to_item, to_summary
from tests.unit.storage_node.fixtures import USER, apply, indexed_engine, mid, new, state
from tidings_runtime import keywords

# A record exactly as the codec wrote it before IMAP's cells existed (format 1).
OLD_RECORD = (b'\x01{"id":"00000000000000000000000000000001","t":"0000000000000001","ms":1700000000000,'
              b'"sz":321,"mid":"<a@b>","irt":"","refs":[],"f":[["Ann","ann@example.com"]],'
              b'"to":[["","bob@example.com"]],"cc":[],"bcc":[],"s":"Hi","sn":"Hello","a":[],"fo":1,'
              b'"u":true,"st":true,"v":42}')


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    e = indexed_engine(tmp_path)
    yield e
    e.close()


def held(engine: Engine, n: int = 1) -> MessageRecord:
    record = engine.record(USER, mid(n))
    assert record is not None
    return record


def update(engine: Engine, version: int, **cells: object) -> MessageRecord:
    return apply(engine, lambda t: engine.update_message(t, Change(USER, mid(1), version, **cells)))  # type: ignore[arg-type]


# -- codec ---------------------------------------------------------------------------

def test_an_old_record_reads_with_every_imap_flag_off() -> None:
    record = codec.decode_record(OLD_RECORD)
    assert (record.version, record.unread, record.starred, record.subject) == (42, True, True, "Hi")
    assert (record.answered, record.draft, record.deleted, record.keywords) == (False, False, False, ())
    assert codec.encode_record(record) == OLD_RECORD      # unflagged records keep format 1, byte for byte


def test_a_record_with_imap_flags_is_format_2_and_round_trips() -> None:
    record = replace(codec.decode_record(OLD_RECORD), answered=True, deleted=True, keywords=("$Forwarded", "$label1"))
    value = codec.encode_record(record)
    assert value[0] == codec.RECORD_JSON_V2
    assert codec.decode_record(value) == record
    assert not codec.is_tombstone(value)
    tomb = codec.encode_record(replace(record, tombstone=True))
    assert codec.is_tombstone(tomb) and codec.decode_record(tomb).tombstone


def test_cells_digest_tells_every_cell_apart() -> None:
    base = codec.decode_record(OLD_RECORD)
    variants = [base, replace(base, answered=True), replace(base, draft=True), replace(base, deleted=True),
                replace(base, keywords=("$Junk",)), replace(base, keywords=("$Junk", "x")), replace(base, unread=False),
                replace(base, starred=False), replace(base, folder_no=2)]
    assert len({v.cells() for v in variants}) == len(variants)
    assert replace(base, version=99).cells() == base.cells()
    assert replace(base, tombstone=True).cells() == b""


# -- keywords ------------------------------------------------------------------------

def test_keywords_are_atoms_bounded_and_case_insensitive() -> None:
    assert keywords.canonical(["b", "$Junk", "B", "a"]) == ("$Junk", "a", "b")
    assert keywords.changed(("$Junk", "x"), add=["y"], remove=["$JUNK"]) == ("x", "y")
    for bad in ["", "a b", "(x)", "a*", "\\Seen", "é", "x" * 65, "a]"]:
        with pytest.raises(keywords.BadKeyword):
            keywords.check_keyword(bad)
    keywords.check_keyword("x" * 64)
    with pytest.raises(keywords.BadKeyword):
        keywords.canonical([f"k{i}" for i in range(33)])
    assert len(keywords.canonical([f"k{i}" for i in range(32)])) == 32


# -- the engine ----------------------------------------------------------------------

def test_store_keeps_the_flags_given(engine: Engine) -> None:
    message = replace(new(mid(1), 1000), draft=True, keywords=("$label1",))
    apply(engine, lambda t: engine.store_message(t, message))
    record = held(engine)
    assert (record.draft, record.answered, record.deleted, record.keywords) == (True, False, False, ("$label1",))
    summary = to_summary(record)
    assert summary.draft and list(summary.keywords) == ["$label1"]


def test_update_sets_clears_and_leaves_unset_cells_alone(engine: Engine) -> None:
    apply(engine, lambda t: engine.store_message(t, new(mid(1), 1000)))
    update(engine, 2, answered=True, deleted=True, keywords_add=("$Forwarded", "$Junk"))
    record = held(engine)
    assert (record.answered, record.draft, record.deleted, record.keywords) == (True, False, True, ("$Forwarded", "$Junk"))
    update(engine, 3, starred=True)                                  # nothing of IMAP's named: unchanged
    record = held(engine)
    assert (record.starred, record.answered, record.deleted, record.keywords) == (True, True, True, ("$Forwarded", "$Junk"))
    update(engine, 4, deleted=False, keywords_remove=("$junk",))
    record = held(engine)
    assert (record.answered, record.deleted, record.keywords) == (True, False, ("$Forwarded",))
    update(engine, 5, keywords_set=("z", "a"), keywords_add=("ignored",))
    assert held(engine).keywords == ("a", "z")
    update(engine, 4, answered=False)                                # older: last writer wins
    assert held(engine).answered and held(engine).version == 5
    # the listing copy carries the cells too
    [listed] = engine.list_folder(USER, "inbox", False, 10, None)
    assert listed == held(engine)


def test_bad_keywords_are_refused_and_change_nothing(engine: Engine) -> None:
    apply(engine, lambda t: engine.store_message(t, new(mid(1), 1000)))
    with pytest.raises(InvalidArgument):
        update(engine, 2, keywords_add=("not an atom",))
    update(engine, 3, keywords_add=tuple(f"k{i}" for i in range(30)))
    with pytest.raises(InvalidArgument):
        update(engine, 4, keywords_add=("x1", "x2", "x3"))           # 33 with those held
    assert len(held(engine).keywords) == 30 and held(engine).version == 3


def test_expunge_clears_the_imap_cells(engine: Engine) -> None:
    apply(engine, lambda t: engine.store_message(t, new(mid(1), 1000)))
    update(engine, 2, deleted=True, keywords_add=("$Junk",))
    update(engine, 3, expunge=True)
    record = held(engine)
    assert record.tombstone and not record.deleted and record.keywords == () and record.cells() == b""


# -- replicas ------------------------------------------------------------------------

def test_a_replica_merge_carries_the_cells(engine: Engine) -> None:
    apply(engine, lambda t: engine.apply_replica(t, replace(state(mid(1), 5), answered=True, keywords=("b", "a"))))
    record = held(engine)
    assert record.answered and record.keywords == ("a", "b")
    assert apply(engine, lambda t: engine.apply_replica(t, replace(state(mid(1), 6), deleted=True)))
    record = held(engine)
    assert (record.answered, record.deleted, record.keywords) == (False, True, ())
    as_held = replication.message_state(engine, USER, record)
    assert (as_held.deleted, as_held.keywords) == (True, ())


def test_equal_versions_differing_in_keywords_converge(tmp_path: Path) -> None:
    a = replace(state(mid(1), 5), keywords=("$Junk",))
    b = replace(state(mid(1), 5), keywords=("$NotJunk",))
    ends = []
    for i, order in enumerate([(a, b), (b, a)]):
        e = indexed_engine(tmp_path / str(i))
        try:
            for s in order:
                apply(e, lambda t, s=s, e=e: e.apply_replica(t, s))
            ends.append(held(e).keywords)
        finally:
            e.close()
    assert ends[0] == ends[1]


def test_the_range_digest_changes_with_the_imap_cells(engine: Engine) -> None:
    whole = TokenRange(0, 0)
    apply(engine, lambda t: engine.store_message(t, new(mid(1), 1000)))
    before = replication.range_digest(engine, whole)
    for version, cells in enumerate([{"answered": True}, {"draft": True}, {"deleted": True},
                                     {"keywords_add": ("$label1",)}], start=2):
        update(engine, version, **cells)
        after = replication.range_digest(engine, whole)
        assert after != before and after[1] == 1
        before = after
    [entry] = replication.range_entries(engine, key_bounds(whole))
    assert entry.cells == held(engine).cells()


def test_the_replica_wire_carries_the_cells() -> None:
    item = replace(state(mid(1), 5), answered=True, draft=True, deleted=True, keywords=("$Junk", "x"))
    wire = _to_item(item)
    assert list(wire.message.keywords) == ["$Junk", "x"] and wire.message.deleted
    assert _from_item(wire) == item
