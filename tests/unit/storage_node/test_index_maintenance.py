"""The node's index maintainer: stores through the engine mark the user, rounds seal their postings
through the group committer, and searches give the same answers before and after."""
from __future__ import annotations

import asyncio
from pathlib import Path

from search_node import segments
from search_node.index import SearchIndex
from search_node.postings import user_prefix
from storage_node.commit import GroupCommitter
from storage_node.index_maintenance import IDLE_ROUNDS, IndexMaintainer
from storage_node.indexing import EmbeddedIndex, check_user
from tests.unit.storage_node.fixtures import USER, apply, indexed_engine, mid, new, raw_mail


def test_rounds_seal_stored_mail_and_searches_agree(tmp_path: Path) -> None:
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
        assert await maintainer.run_round() == 3
        postings = segments.Postings(engine, user_prefix(USER))
        assert postings.directory.sealed == segments.SEAL_DOCS * 3 and len(postings.fresh) == 5
        assert {q: index.search(engine, USER, q, limit=1000) for q in before} == before
        assert before["quarterly"].total == total and before['"numbers 7"'].ids == [mid(7)]
        assert check_user(engine, index, USER) == (total, [])
        for _ in range(IDLE_ROUNDS):  # nothing more to seal: the user is forgotten
            assert await maintainer.run_round() == 0
        assert not maintainer.pending
        await committer.stop()

    asyncio.run(scenario())
    engine.close()
