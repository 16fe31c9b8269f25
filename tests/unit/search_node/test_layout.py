"""The on-disk layout is frozen: a fixed mailbox, indexed, changed and maintained at fixed times,
stores exactly the bytes it stored before the key serializer moved into keys.py (no migration)."""
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from search_node import maintenance, segments
from search_node.index import COLUMN_FAMILIES, SearchIndex
from search_node.keys import ALL, DOCS_CF, bitmap_key, user_prefix
from search_node.tiers import read_bitmap
from storage_node.rdict_store import RdictStore
from tests.unit.search_node.test_differential import make_mailbox

USER = "0123456789abcdef"
# sha256 of every (cf, key, value) the scenario below leaves, directory nonces masked; computed
# with the code before keys.py existed.
LAYOUT_DIGEST = "2bc25679b027660f555e354801a6b0eec1e08a4520881d15b48b70c6da504957"


def _digest(store: RdictStore) -> str:
    user = user_prefix(USER)
    h = hashlib.sha256()
    for cf in COLUMN_FAMILIES:
        for key, value in store.scan(cf, b"", None):
            if cf == DOCS_CF and key == user + b"g":
                value = value[8:]  # the directory's random nonce
            h.update(b"%d:%s:%d:%s:%d:%s;" % (len(cf), cf.encode(), len(key), key, len(value), value))
    return h.hexdigest()


def test_the_stored_bytes_are_those_of_the_old_layout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(segments, "SEAL_DOCS", 4)
    monkeypatch.setattr(segments, "MAX_SPAN", 4 * 8 ** 3)
    monkeypatch.setattr(segments, "SUMMARY_SPAN", 4 * 8 ** 2)  # summaries from 256-doc segments
    docs = make_mailbox()[:307]
    index, store = SearchIndex(), RdictStore(str(tmp_path / "db"), COLUMN_FAMILIES)
    try:
        user = user_prefix(USER)
        for n, doc in enumerate(docs):
            with store.txn() as txn:
                index.add(txn, USER, doc)
            if n % 50 == 49 and n < 300:  # a round every 50 s: it purges what the round before retired
                now = 1_000_000 + n * 1_000
                while (step := maintenance.plan_step(store, user, read_bitmap(store, DOCS_CF, bitmap_key(user, ALL)),
                                                      now)) is not None:
                    with store.txn() as txn:
                        assert maintenance.apply(txn, step, now)
        with store.txn() as txn:
            for doc in docs[::7]:
                index.update(txn, USER, doc.id, folder_id="archive", unread=not doc.unread, starred=True)
            for doc in docs[3::11]:
                index.remove(txn, USER, doc.id)
        assert _digest(store) == LAYOUT_DIGEST
    finally:
        store.close()
