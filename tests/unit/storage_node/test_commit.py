"""Group commit's stop: a batch already in its worker thread is written to the end before
stop returns, so the engine can be closed after it (the WAL sync lets the GIL go, so a close
on the loop's thread would otherwise meet the write)."""
from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

from storage_node import keys
from storage_node.batch import Txn
from storage_node.commit import GroupCommitter
from tests.unit.storage_node.fixtures import indexed_engine


def test_stop_waits_for_the_batch_in_its_thread(tmp_path: Path) -> None:
    engine = indexed_engine(tmp_path)
    in_thread = threading.Event()

    def slow_put(txn: Txn) -> None:
        in_thread.set()
        time.sleep(0.3)
        txn.put(keys.CF_META, b"stop-test", b"written")

    async def scenario() -> None:
        committer = GroupCommitter(engine)
        committer.start()
        writer = asyncio.ensure_future(committer.submit(slow_put))
        while not in_thread.is_set():
            await asyncio.sleep(0.01)
        await committer.stop()
        writer.cancel()
        assert engine.get(keys.CF_META, b"stop-test") == b"written"

    asyncio.run(scenario())
    engine.close()
