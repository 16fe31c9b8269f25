"""The node's index maintainer: stores through the engine mark the user, rounds seal their postings
through the group committer, and searches give the same answers before and after."""
from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from search_node import segments
from search_node.index import SearchIndex
from search_node.keys import retired_range, user_prefix
from search_node.segment_reader import Postings
from storage_node import index_maintenance
from storage_node.commit import GroupCommitter
from storage_node.index_maintenance import IndexMaintainer
from storage_node.indexing import EmbeddedIndex, check_user
from tests.unit.storage_node.fixtures import USER, apply, indexed_engine, mid, new, raw_mail


def test_rounds_seal_stored_mail_and_searches_agree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(segments, "GRACE_MS", 0)  # retired data is purged by the next step
    monkeypatch.setattr(index_maintenance, "FORGET_AFTER_S", 0.0)
    engine = indexed_engine(tmp_path)
    index = SearchIndex()

    async def scenario() -> None:
        committer = GroupCommitter(engine)
        committer.start()
        maintainer = IndexMaintainer(engine, committer, index)
        assert isinstance(engine.index, EmbeddedIndex)
        engine.index.on_added = maintainer.touched
        total = segments.SEAL_DOCS * 3 + 5
        for n in range(total):
            raw = raw_mail(f"report {n % 3}", f"quarterly numbers {n} follow")
            apply(engine, lambda txn, n=n, raw=raw: engine.store_message(txn, new(mid(n), 1000 + n, raw=raw)))
        before = {q: index.search(engine, USER, q, limit=1000) for q in ("quarterly", '"numbers 7"', "report*")}
        restarted = IndexMaintainer(engine, committer, index)  # knows the user from the index's mark alone
        assert await restarted.resume() == 1 and restarted.pending == [USER]
        assert await maintainer.run_round() == 4  # three seals, then the purge of the last one's leftovers
        user = user_prefix(USER)
        assert not list(engine.scan("search_docs", *retired_range(user)))
        postings = Postings(engine, user_prefix(USER))
        assert postings.directory.sealed == segments.SEAL_DOCS * 3 and len(postings.fresh) == 5
        assert {q: index.search(engine, USER, q, limit=1000) for q in before} == before
        assert before["quarterly"].total == total and before['"numbers 7"'].ids == [mid(7)]
        assert check_user(engine, index, USER) == (total, [])
        assert await maintainer.run_round() == 0  # nothing more to do: the user is forgotten, here and in the index
        assert not maintainer.pending and await restarted.resume() == 0
        await committer.stop()

    asyncio.run(scenario())
    engine.close()
