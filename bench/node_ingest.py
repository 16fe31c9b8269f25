"""Ingest benchmark: messages stored and indexed by one storage node's engine, against raw RocksDB.

Run: python -m bench.node_ingest [--messages N] [--group G ...]
The messages are the search benchmark's generated mailbox, as MIME. Each is parsed and placed
(`Engine.prepare`, as the StoreMessage handler does in a worker thread), then stored with its
index entries by group commit (`run_group`: G mutations, one synced write batch), as a loaded
node does. The baseline, in the same run, puts the same raw messages into RocksDB with the same
group size and sync: the price of the mail model and the index over bare storage.
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import format_datetime, formataddr
from pathlib import Path

from bench.search_bench import USER, make_corpus
from search_node.index import COLUMN_FAMILIES as SEARCH_COLUMN_FAMILIES
from search_node.index import IndexDoc, SearchIndex
from storage_node.blobs import LocalBlobStore
from storage_node.engine import Engine, MessageState, NewMessage, run_group
from storage_node.indexing import EmbeddedIndex
from storage_node.rdict_store import RdictStore


def mime(doc: IndexDoc) -> bytes:
    """The doc as a plain RFC 5322 message (attachments left out: the node would parse them the same way)."""
    def addresses(pairs: tuple[tuple[str, str], ...]) -> str:
        return ", ".join(formataddr(p) for p in pairs)
    html = bool(doc.html)
    headers = [f"From: {addresses(doc.from_)}", f"To: {addresses(doc.to)}", f"Subject: {doc.subject}",
               f"Message-ID: <{doc.rfc822msgid}>",
               f"Date: {format_datetime(datetime.fromtimestamp(doc.received_ms / 1000, UTC))}",
               "MIME-Version: 1.0", f"Content-Type: text/{'html' if html else 'plain'}; charset=utf-8"]
    if doc.cc:
        headers.append(f"Cc: {addresses(doc.cc)}")
    return ("\r\n".join(headers) + "\r\n\r\n" + (doc.html if html else doc.text) + "\r\n").encode()


def state_of(doc: IndexDoc, raw: bytes) -> MessageState:
    return MessageState(user_id=USER, id=doc.id, version=1, tombstone=False, raw=raw, folder_id=doc.folder_id,
                        unread=doc.unread, starred=doc.starred, received_ms=doc.received_ms, thread_id="")


def rate(items: list, group: int, commit: Callable[[list], None]) -> float:
    started = time.perf_counter()
    for start in range(0, len(items), group):
        commit(items[start:start + group])
    return len(items) / (time.perf_counter() - started)


def node_rates(raws: list[bytes], docs: list[IndexDoc], groups: list[int], root: Path) -> dict[str, float]:
    blobs = LocalBlobStore(root / "blobs")  # shared, so a prepared body's reference holds in every engine
    preparer = Engine(root / "prepare", blobs)
    started = time.perf_counter()
    prepared = [preparer.prepare(state_of(doc, raw)) for doc, raw in zip(docs, raws)]
    out = {"prepare (MIME parse, body placed)": len(docs) / (time.perf_counter() - started)}
    preparer.close()
    for group in groups:
        for indexed in (True, False):
            engine = Engine(root / f"node{group}{indexed}", blobs, extra_column_families=SEARCH_COLUMN_FAMILIES,
                            index=EmbeddedIndex() if indexed else None)

            def store(batch: list[NewMessage], engine: Engine = engine, indexed: bool = indexed) -> None:
                for result in run_group(engine, [lambda txn, new=new: engine.store_message(txn, new) for new in batch]):
                    if isinstance(result, Exception):
                        raise result
                if indexed:  # the node's maintainer seals postings in batches of their own; timed with the rest
                    SearchIndex().maintain(engine, engine, USER)
            out[f"store{' + index' if indexed else ' alone'}, group of {group}"] = rate(prepared, group, store)
            engine.close()

        raw_db = RdictStore(str(root / f"raw{group}"), ["messages"], sync=True)

        def put(batch: list[tuple[bytes, bytes]], raw_db: RdictStore = raw_db) -> None:
            with raw_db.txn() as txn:
                for key, raw in batch:
                    txn.put("messages", key, raw)
        out[f"raw RocksDB put, group of {group}"] = rate([(doc.id.encode(), raw) for doc, raw in zip(docs, raws)],
                                                         group, put)
        raw_db.close()
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--group", type=int, nargs="+", default=[1, 32], help="mutations per synced batch")
    args = parser.parse_args(argv)
    docs = make_corpus(args.messages).docs
    raws = [mime(doc) for doc in docs]
    root = Path(tempfile.mkdtemp(prefix="node_ingest."))
    try:
        rates = node_rates(raws, docs, args.group, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"{args.messages} messages into one mailbox, every batch synced")
    for name, value in rates.items():
        print(f"{name:40s} {value:9,.0f} msg/s")
    for group in args.group:
        ours, raw = rates[f"store + index, group of {group}"], rates[f"raw RocksDB put, group of {group}"]
        print(f"group of {group}: store + index runs at {ours / raw:.3f}x raw RocksDB")


if __name__ == "__main__":
    main()
