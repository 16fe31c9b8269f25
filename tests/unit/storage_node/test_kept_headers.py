"""The kept header fields beside the record (IMAP's ENVELOPE without the body): kept at store
time and by a replica's copy, in the listings only when asked, dropped by a tombstone; a record
written before they existed reads without them (the reader falls back to the body) and is
rewritten without them."""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from storage_node import codec, keys
from storage_node.engine import Change, Engine
from storage_node.service import SummaryCache, to_summary
from tests.unit.storage_node.fixtures import USER, apply, indexed_engine, mid, raw_mail, state
from tidings_runtime.kept_headers import kept

# A record exactly as the codec wrote it before the kept header fields existed.
OLD_RECORD = (b'\x01{"id":"00000000000000000000000000000001","t":"0000000000000001","ms":1700000000000,'
              b'"sz":321,"mid":"<a@b>","irt":"","refs":[],"f":[["Ann","ann@example.com"]],'
              b'"to":[["","bob@example.com"]],"cc":[],"bcc":[],"s":"Hi","sn":"Hello","a":[],"fo":1,'
              b'"u":true,"st":true,"v":42}')


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    e = indexed_engine(tmp_path)
    yield e
    e.close()


def test_a_stored_message_keeps_its_header_fields_and_lists_them_when_asked(engine: Engine) -> None:
    message = state(mid(1), 5)
    apply(engine, lambda t: engine.store_message(t, engine.prepare(message)))
    record = engine.record(USER, mid(1))
    assert record is not None and record.headers == kept(message.raw) and record.headers
    assert b"Subject: m0001\n" in record.headers
    values = engine.list_folder_values(USER, "inbox", False, 10, None)
    assert codec.decode_record(values[0]).headers == record.headers     # the listing's copy has them too
    cache = SummaryCache()
    assert cache.summaries(values, headers=True).messages[0].headers == record.headers
    assert not cache.summaries(values).messages[0].HasField("headers")
    updated = apply(engine, lambda t: engine.update_message(t, Change(USER, mid(1), 6, unread=False)))
    assert updated.headers == record.headers                          # a change of cells keeps them


def test_a_record_from_before_reads_without_them_and_is_rewritten_the_same(engine: Engine) -> None:
    record = codec.decode_record(OLD_RECORD)
    assert record.headers is None
    assert codec.encode_record(record) == OLD_RECORD
    assert not to_summary(record, headers=True).HasField("headers")   # the reader must read the body
    apply(engine, lambda t: engine.store_message(t, engine.prepare(state(mid(1), 5))))
    stored = engine.record(USER, mid(1))
    assert stored is not None and stored.headers is not None
    before = codec.encode_record(replace(stored, headers=None))     # as it was written before
    apply(engine, lambda t: t.put(keys.CF_MESSAGES, keys.message(USER, mid(1)), before))
    changed = apply(engine, lambda t: engine.update_message(t, Change(USER, mid(1), 50, starred=True)))
    assert changed.headers is None and changed.starred


def test_a_tombstone_drops_them_and_is_still_told_apart_unread(engine: Engine) -> None:
    apply(engine, lambda t: engine.store_message(t, engine.prepare(state(mid(2), 5))))
    tomb = apply(engine, lambda t: engine.update_message(t, Change(USER, mid(2), 9, expunge=True)))
    assert tomb.tombstone and tomb.headers is None
    value = codec.encode_record(tomb)
    assert codec.is_tombstone(value) and b'"h":' not in value
    live = codec.encode_record(replace(tomb, tombstone=False, headers=b"Subject: x\r\n"))
    assert not codec.is_tombstone(live) and codec.decode_record(live).headers == b"Subject: x\r\n"


def test_any_bytes_round_trip(engine: Engine) -> None:
    raw = b"Subject: \xe9t\xe9 \xff\r\nFrom: a@example.org\r\n\r\nbody"
    block = kept(raw)
    assert block is not None
    message = replace(state(mid(3), 5), raw=raw)
    apply(engine, lambda t: engine.store_message(t, engine.prepare(message)))
    record = engine.record(USER, mid(3))
    assert record is not None and record.headers == block
    assert kept(raw_mail("x")) is not None
