"""Blob garbage collection: objects no live message refers to, deleted after a grace period.

Blobs are content-addressed and shared (one object for every message with the same large
body, across users and nodes), and a node drops a body row when its message is expunged or
its range moves away, never the object: nothing on one node knows whether another still
refers to it. So the collection is mark and sweep across the ring
(docs/architecture.md, "Objects in S3 and their collection"):

1. list the store's objects last modified before `now - grace`: the candidates;
2. mark: every node of the ring lists the refs its bodies hold (`BlobGc.ListBlobRefs`,
   served by each storage node), and the marks are unioned. A node that does not answer
   in full ends the collection here, deleting nothing: its refs are unknown;
3. sweep: each candidate no node marked is checked again (its modification time, since a
   put of the same content refreshes it) and deleted only if still older than the cutoff.

The collector is a storage node (`BlobGc.CollectBlobs`, which `tidings blobs gc` calls with
the ring's nodes): it already reaches the store, with its credentials.

The grace covers a blob put but not yet referenced (a put precedes the batch that refers
to it by milliseconds; a hint or a stream applies a body later, but puts it again then).
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import grpc
from prometheus_client import Counter

from storage_node import codec, keys
from storage_node.blobs import BlobStore
from storage_node.engine import Engine
from tidings.v1 import blobs_pb2, blobs_pb2_grpc

PAGE_BODIES = 10_000  # bodies scanned per ListBlobRefs page
PAGE_LIMIT_MAX = 100_000
REPORTED_REFS = 1000  # refs named in a report (the count is whole)
# S3 gives LastModified to the second (HEAD) and a directory's clock may differ a little:
# a modification time is taken as this much later than it reads, never as earlier
MTIME_SLACK_S = 1.0

BLOBS_COLLECTED = Counter("tidings_gc_blobs_total", "Unreferenced blobs deleted by blob GC (this node collecting)")


def blob_refs_page(engine: Engine, after: bytes, limit: int) -> tuple[list[str], bytes]:
    """The blob refs among the next `limit` bodies after key `after` (exclusive), and the key
    to resume after (empty at the end). Reads only each value's format byte to tell."""
    refs: list[str] = []
    start = after + b"\x00" if after else b""  # the first key after `after`
    last = b""
    for n, (key, value) in enumerate(engine.scan(keys.CF_BODIES, start, None)):
        if n == limit:
            return refs, last
        last = key
        if value[:1] == bytes([codec.BODY_BLOB_V1]):
            refs.append(value[1:].decode())
    return refs, b""


class BlobGcService(blobs_pb2_grpc.BlobGcServicer):
    """The node half of the mark (ListBlobRefs), and the collector (CollectBlobs); both off the
    event loop. One collection at a time on a node."""

    def __init__(self, engine: Engine, node_id: str, grace_s: float, store_name: str = "") -> None:
        self.engine = engine
        self.node_id = node_id
        self.grace_s = grace_s
        self.store_name = store_name
        self._collecting = asyncio.Lock()

    async def ListBlobRefs(self, request: blobs_pb2.BlobRefsRequest, context: Any) -> blobs_pb2.BlobRefsPage:
        limit = min(request.limit or PAGE_BODIES, PAGE_LIMIT_MAX)
        refs, after = await asyncio.to_thread(blob_refs_page, self.engine, bytes(request.after), limit)
        return blobs_pb2.BlobRefsPage(refs=refs, next=after, node_id=self.node_id)

    async def CollectBlobs(self, request: blobs_pb2.CollectBlobsRequest, context: Any) -> blobs_pb2.BlobGcReport:
        nodes = [NodeAddress(n.node_id, n.address) for n in request.nodes]
        grace_s = request.grace_s if request.grace_s > 0 else self.grace_s
        async with self._collecting:
            report = await asyncio.to_thread(collect_blobs, self.engine.blobs, nodes, grace_s, dry_run=request.dry_run,
                                             timeout_s=request.node_timeout_s or 60.0)
        BLOBS_COLLECTED.inc(0 if request.dry_run else len(report.deleted))
        return blobs_pb2.BlobGcReport(
            collector=self.node_id, store=self.store_name, grace_s=grace_s, objects=report.objects,
            candidates=report.candidates, marked=report.marked, deleted=len(report.deleted),
            deleted_refs=report.deleted[:REPORTED_REFS], refreshed=report.refreshed, unreachable=report.unreachable,
            swept=report.swept, dry_run=report.dry_run)


@dataclass(frozen=True)
class NodeAddress:
    node_id: str
    address: str


@dataclass
class BlobGcReport:
    objects: int = 0             # in the store
    candidates: int = 0          # older than the cutoff
    marked: int = 0              # distinct refs the nodes hold
    deleted: list[str] = field(default_factory=list)
    refreshed: int = 0           # unmarked candidates put again since the listing: kept
    unreachable: list[str] = field(default_factory=list)   # nodes that did not answer: nothing swept
    dry_run: bool = False

    @property
    def swept(self) -> bool:
        return not self.unreachable


def mark(nodes: Iterable[NodeAddress], timeout_s: float = 60.0,
         page: int = PAGE_BODIES) -> tuple[set[str], list[str]]:
    """Every ref the nodes' bodies hold, and the ids of nodes that did not answer in full."""
    marked: set[str] = set()
    unreachable: list[str] = []
    for node in nodes:
        try:
            with grpc.insecure_channel(node.address) as channel:
                stub = blobs_pb2_grpc.BlobGcStub(channel)
                after = b""
                while True:
                    answer = stub.ListBlobRefs(blobs_pb2.BlobRefsRequest(after=after, limit=page), timeout=timeout_s)
                    marked.update(answer.refs)
                    after = answer.next
                    if not after:
                        break
        except grpc.RpcError:
            unreachable.append(node.node_id)
    return marked, unreachable


def collect_blobs(store: BlobStore, nodes: list[NodeAddress], grace_s: float, *, now: float | None = None,
                  dry_run: bool = False, timeout_s: float = 60.0) -> BlobGcReport:
    """One collection (module docstring): list, mark, sweep. Blocking: run it in a thread."""
    cutoff = (time.time() if now is None else now) - grace_s
    report = BlobGcReport(dry_run=dry_run)
    candidates: list[str] = []
    for ref, modified in store.objects():
        report.objects += 1
        if modified + MTIME_SLACK_S < cutoff:
            candidates.append(ref)
    report.candidates = len(candidates)
    if not nodes:
        report.unreachable = ["(no nodes: the ring is empty)"]
        return report
    marked, report.unreachable = mark(nodes, timeout_s)
    report.marked = len(marked)
    if report.unreachable:
        return report
    for ref in candidates:
        if ref in marked:
            continue
        now_modified = store.modified(ref)
        if now_modified is None:
            continue  # gone already (another collector)
        if now_modified + MTIME_SLACK_S >= cutoff:
            report.refreshed += 1
            continue
        if not dry_run:
            store.delete(ref)
        report.deleted.append(ref)
    return report
