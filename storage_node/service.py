"""The StorageNode gRPC servicer: protobuf in, engine call, protobuf out; errors mapped once."""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from functools import partial
from typing import Any, TypeVar

import grpc
from prometheus_client import Counter

from search_node.index import InvalidCursor, QuerySyntaxError, SearchIndex
from storage_node import codec, keys, mailbox_order, order_transfer, replication
from storage_node.batch import Txn
from storage_node.batches import run_batch, run_batches
from storage_node.commit import GroupCommitter
from storage_node.engine import (
    INLINE_BODY_LIMIT,
    Change,
    Engine,
    MessageState,
    NewMessage,
    check_new_message_id,
    check_user_id,
)
from storage_node.errors import BlobMissing, CorruptValue, InvalidArgument, NotFound, PeerUnavailable, StorageError
from storage_node.gc import collect_garbage
from storage_node.hints import HintStore
from storage_node.indexing import check_user, rebuild_user
from storage_node.model import DirectoryValue, FolderCounts, MessageRecord
from storage_node.order_fence import OrderFence
from storage_node.order_watch import OrderWatchers
from storage_node.ranges import TokenRange, check_ranges, union_bounds
from storage_node.replication import DirectoryItem, Item, ItemRef, ItemVersion
from storage_node.ring_map import RingStore
from storage_node.settings import Settings
from tidings.v1 import storage_pb2, storage_pb2_grpc, types_pb2
from tidings_runtime import spam_tokens
from tidings_runtime.channels import PeerPool
from tidings_runtime.parsed_wire import from_wire
from tidings_runtime.partitions import SYSTEM_FOLDERS, folder_id_of, listable_partition

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])
FOLDER_PAGE = 10_000      # entries of a folder's order view in one answer
MESSAGES_BYTES = 4 * 1024 * 1024   # bodies of one GetMessages answer, about (at least one)

# _INLINE: rocksdict holds the GIL through every get, multi_get and write (not through
# flush_wal, which RdictStore.write syncs with), so a worker thread around a point read buys
# no concurrency, only the hop's CPU
# (~25-50 us); the mail path's small reads run on the event loop (docs/performance.md, issue 19).

RPC_ERRORS = Counter("tidings_storage_rpc_errors_total", "Storage RPCs that ended in an error", ["method", "code"])
PEER_READY_S = 5.0
BATCHES = Counter("tidings_storage_batches_total",
                  "Batches served: Batch RPCs and requests of Batches streams (their calls are in calls_total)")
BATCHED = Counter("tidings_storage_batched_calls_total", "Calls that came in a batch")
CALLS = Counter("tidings_storage_calls_total", "Storage calls served, each call of a Batch counted apart",
                ["method"])

_STATUS: dict[type[StorageError], grpc.StatusCode] = {
    NotFound: grpc.StatusCode.NOT_FOUND,
    InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    CorruptValue: grpc.StatusCode.DATA_LOSS,
    BlobMissing: grpc.StatusCode.DATA_LOSS,
    PeerUnavailable: grpc.StatusCode.UNAVAILABLE,
}
STREAM_BYTES = Counter("tidings_stream_bytes_total", "Bytes of range streams (serialized batches)", ["direction"])
STREAM_ITEMS = Counter("tidings_stream_items_total", "Items of range streams", ["direction"])


async def _abort(context: grpc.aio.ServicerContext, method: str, exc: StorageError) -> None:
    code = _STATUS.get(type(exc), grpc.StatusCode.INTERNAL)
    RPC_ERRORS.labels(method, code.name).inc()
    await context.abort(code, str(exc))


def maps_errors(method: F) -> F:
    """Translate the engine's typed errors into gRPC statuses with their detail."""

    served = CALLS.labels(method.__name__)

    @functools.wraps(method)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Any:
        served.inc()
        try:
            return await method(self, request, context)
        except StorageError as exc:
            await _abort(context, method.__name__, exc)

    return wrapper  # type: ignore[return-value]


def _addresses(pairs: tuple[tuple[str, str], ...]) -> list[types_pb2.Address]:
    return [types_pb2.Address(name=n, email=e) for n, e in pairs]


def to_summary(record: MessageRecord, headers: bool = False) -> types_pb2.MessageSummary:
    """The record's summary; with ``headers``, its kept header fields too (when it has them)."""
    summary = types_pb2.MessageSummary(
        id=record.id, thread_id=record.thread_id, folder_id=folder_id_of(record.folder_no),
        to=_addresses(record.to), cc=_addresses(record.cc),
        subject=record.subject, snippet=record.snippet, received_ms=record.received_ms, size=record.size,
        unread=record.unread, starred=record.starred, has_attachments=record.has_attachments,
        version=record.version, answered=record.answered, draft=record.draft, deleted=record.deleted,
        keywords=record.keywords, **({"from": _addresses(record.from_)[0]} if record.from_ else {}),
    )
    if headers and record.headers is not None:
        summary.headers = record.headers
    return summary


def _folder(folder_id: str, counts: FolderCounts) -> types_pb2.Folder:
    """A system folder with its name and role; a custom folder by id only (its name is the router's)."""
    system = folder_id in SYSTEM_FOLDERS
    return types_pb2.Folder(id=folder_id, name=folder_id.capitalize() if system else "", role=folder_id if system else "",
                            total=counts.total, unread=counts.unread)


def _ranges(ranges: Any) -> list[TokenRange]:
    return check_ranges([TokenRange(r.start, r.end) for r in ranges])


def _to_item(item: Item) -> storage_pb2.ReplicaItem:
    if isinstance(item, DirectoryItem):
        return storage_pb2.ReplicaItem(directory=storage_pb2.DirectoryEntry(
            key=item.key, value=item.value, version=item.version, found=True))
    return storage_pb2.ReplicaItem(message=storage_pb2.ReplicaMessage(**dataclasses.asdict(item)))


_STATE_FIELDS = [f.name for f in dataclasses.fields(MessageState)]


def _from_item(item: storage_pb2.ReplicaItem) -> Item:
    kind = item.WhichOneof("item")
    if kind == "directory":
        return DirectoryItem(item.directory.key, bytes(item.directory.value), item.directory.version)
    if kind == "message":
        state = {name: getattr(item.message, name) for name in _STATE_FIELDS}
        return MessageState(**{**state, "keywords": tuple(state["keywords"])})
    raise InvalidArgument("an empty replica item")


def _to_items(items: list[Item]) -> storage_pb2.ReplicaItems:
    return storage_pb2.ReplicaItems(items=[_to_item(i) for i in items])


def _counted(direction: str, batch: storage_pb2.ReplicaItems) -> storage_pb2.ReplicaItems:
    """Count a streamed batch ("in" or "out") in the stream metrics."""
    STREAM_ITEMS.labels(direction).inc(len(batch.items))
    STREAM_BYTES.labels(direction).inc(batch.ByteSize())
    return batch


def _batch_counted(request: storage_pb2.BatchRequest) -> storage_pb2.BatchRequest:
    BATCHES.inc()
    BATCHED.inc(len(request.calls))
    return request


def _to_version(held: ItemVersion) -> storage_pb2.ItemVersion:
    return storage_pb2.ItemVersion(ref=storage_pb2.ItemRef(**dataclasses.asdict(held.ref)),
                                   version=held.version, tombstone=held.tombstone, cells=held.cells)


def _digests(records: list[MessageRecord]) -> storage_pb2.StoredMessages:
    """Each copy's id, version and tombstone: what a digest read compares."""
    return storage_pb2.StoredMessages(messages=[
        storage_pb2.StoredMessage(summary=types_pb2.MessageSummary(id=r.id, version=r.version), tombstone=r.tombstone)
        for r in records])


def _summaries(records: list[MessageRecord]) -> storage_pb2.NodeSummaries:
    return storage_pb2.NodeSummaries(
        messages=[to_summary(r) for r in records if not r.tombstone],
        tombstones=[r.id for r in records if r.tombstone],
    )


class SummaryCache:
    """Encoded record -> its MessageSummary, for the listings and searches: decoding a record's
    JSON and building the summary cost ~10 us each, 0.5 ms a page of 50; a hit ~0.5 us. Keyed by
    the encoded value itself, so a changed record (any cell, its version) is a miss, never stale.
    At most `size` entries, the oldest put first out, apart for summaries with their kept header
    fields (IMAP's reads) and without (every other). Tombstones are not kept."""

    def __init__(self, size: int = 8192) -> None:
        self.size = size
        self._held: OrderedDict[bytes, types_pb2.MessageSummary] = OrderedDict()
        self._headed: OrderedDict[bytes, types_pb2.MessageSummary] = OrderedDict()   # with header fields

    def summaries(self, values: list[bytes], headers: bool = False) -> storage_pb2.NodeSummaries:
        messages, tombstones = self.of(values, headers)
        return storage_pb2.NodeSummaries(messages=messages, tombstones=tombstones)

    def of(self, values: list[bytes], headers: bool = False) -> tuple[list[types_pb2.MessageSummary], list[str]]:
        """The summaries of the live records among `values`, in order, and the tombstones' ids."""
        held = self._headed if headers else self._held
        messages: list[types_pb2.MessageSummary] = []
        tombstones: list[str] = []
        for value in values:
            summary = held.get(value)
            if summary is None:
                record = codec.decode_record(value)
                if record.tombstone:
                    tombstones.append(record.id)
                    continue
                summary = held[value] = to_summary(record, headers)
                if len(held) > self.size:
                    held.popitem(last=False)
            messages.append(summary)
        return messages, tombstones


class StorageService(storage_pb2_grpc.StorageNodeServicer):
    def __init__(self, engine: Engine, committer: GroupCommitter, search_index: SearchIndex | None = None,
                 node_id: str = "", hints: HintStore | None = None, peers: PeerPool | None = None,
                 settings: Settings | None = None) -> None:
        self.node_id = node_id
        self.engine = engine
        self.committer = committer
        self.search_index = search_index or SearchIndex()
        self.peers = peers or PeerPool()
        self.hints = hints or HintStore(engine, committer, self.peers)
        self.ring = RingStore(engine, committer)
        self.settings = settings or Settings()
        self.order_limits = mailbox_order.Limits(self.settings.order_keep_slots, self.settings.order_keep_changes)
        self.order_watchers = OrderWatchers()
        self.order_fence = OrderFence.load(engine)
        self.summaries = SummaryCache()
        self.closing = asyncio.Event()     # set as the node stops: Batches streams end (run_batches)

    def _prepare(self, request: storage_pb2.StoreMessageRequest) -> NewMessage:
        check_user_id(request.user_id)
        check_new_message_id(request.id)
        return self.engine.prepare(MessageState(
            user_id=request.user_id, id=request.id, version=request.version, tombstone=False,
            raw=bytes(request.raw), folder_id=request.folder_id or "inbox", unread=request.unread,
            starred=request.starred, received_ms=request.received_ms, thread_id=request.thread_id,
            answered=request.answered, draft=request.draft, deleted=request.deleted,
            keywords=tuple(request.keywords),
        ), from_wire(request.parsed) if request.HasField("parsed") else None)

    async def _prepared_apart(self, requests: Sequence[storage_pb2.StoreMessageRequest]) -> list[NewMessage | None]:
        """Each large message prepared in a thread first (its body goes to the object store,
        outside the batch); None for the others, parsed and compressed in the committer's
        worker, one thread hop, not two (issue 19)."""
        return [await asyncio.to_thread(self._prepare, r) if len(r.raw) > INLINE_BODY_LIMIT else None
                for r in requests]

    def _store(self, txn: Txn, request: storage_pb2.StoreMessageRequest, new: NewMessage | None
               ) -> storage_pb2.StoreMessageResponse:
        created, record = self.engine.store_message(txn, new or self._prepare(request))
        return storage_pb2.StoreMessageResponse(created=created, summary=to_summary(record))

    @maps_errors
    async def StoreMessage(self, request: storage_pb2.StoreMessageRequest, context: Any) -> storage_pb2.StoreMessageResponse:
        [new] = await self._prepared_apart([request])
        return await self.committer.submit(lambda txn: self._store(txn, request, new))

    @maps_errors
    async def UpdateMessage(self, request: storage_pb2.UpdateMessageRequest, context: Any) -> types_pb2.MessageSummary:
        check_user_id(request.user_id)
        change = Change(
            user_id=request.user_id, id=request.id, version=request.version,
            unread=request.unread if request.HasField("unread") else None,
            starred=request.starred if request.HasField("starred") else None,
            folder_id=request.folder_id if request.HasField("folder_id") else None,
            expunge=request.expunge,
            answered=request.answered if request.HasField("answered") else None,
            draft=request.draft if request.HasField("draft") else None,
            deleted=request.deleted if request.HasField("deleted") else None,
            keywords_add=tuple(request.add_keywords), keywords_remove=tuple(request.remove_keywords),
            keywords_set=tuple(request.keywords.names) if request.HasField("keywords") else None,
        )
        record = await self.committer.submit(lambda txn: self.engine.update_message(txn, change))
        return to_summary(record)

    @maps_errors
    async def GetMessage(self, request: storage_pb2.NodeMessageRef, context: Any) -> storage_pb2.StoredMessage:
        check_user_id(request.user_id)
        record = await asyncio.to_thread(self.engine.record, request.user_id, request.id)
        if record is None:
            raise NotFound(f"no message {request.id}")
        if record.tombstone:
            return storage_pb2.StoredMessage(summary=to_summary(record), tombstone=True)
        raw = await asyncio.to_thread(self.engine.raw, request.user_id, request.id)
        return storage_pb2.StoredMessage(summary=to_summary(record), raw=raw)

    @maps_errors
    async def GetSummaries(self, request: storage_pb2.NodeMessageRefs, context: Any) -> storage_pb2.NodeSummaries:
        check_user_id(request.user_id)
        values = self.engine.record_values(request.user_id, list(request.ids))
        return self.summaries.summaries(values, request.headers)  # inline (_INLINE)

    @maps_errors
    async def GetMessages(self, request: storage_pb2.NodeMessagesRequest, context: Any) -> storage_pb2.StoredMessages:
        check_user_id(request.user_id)
        if not request.raw:    # the digest read: multi-get of the records, inline (_INLINE)
            return _digests(self.engine.records(request.user_id, list(request.ids)))
        return await asyncio.to_thread(self._messages, request)

    def _messages(self, request: storage_pb2.NodeMessagesRequest) -> storage_pb2.StoredMessages:
        answer = storage_pb2.StoredMessages()
        size = 0
        for record in self.engine.records(request.user_id, list(dict.fromkeys(request.ids))):
            if size >= MESSAGES_BYTES:
                answer.more.append(record.id)
                continue
            summary = to_summary(record, request.headers)
            if record.tombstone:
                answer.messages.add(summary=summary, tombstone=True)
                continue
            raw = self.engine.raw(request.user_id, record.id)
            size += len(raw)
            answer.messages.add(summary=summary, raw=raw)
        return answer

    @maps_errors
    async def ListFolder(self, request: storage_pb2.NodeListFolderRequest, context: Any) -> storage_pb2.NodeSummaries:
        check_user_id(request.user_id)
        after = (request.after_received_ms, request.after_id) if request.after_id else None
        # a point read and one bounded scan (at most 1000 records): inline (_INLINE)
        state = mailbox_order.head(self.engine, request.user_id)
        values = self.engine.list_folder_values(request.user_id, request.folder_id, request.unread_only,
                                                max(1, min(request.limit or 50, 1000)), after)
        answer = self.summaries.summaries(values, request.headers)
        answer.state = state.modseq
        return answer

    @maps_errors
    async def ListFolders(self, request: storage_pb2.NodeUserRef, context: Any) -> storage_pb2.NodeFolders:
        check_user_id(request.user_id)
        state = mailbox_order.head(self.engine, request.user_id)  # point reads and a short scan: inline (_INLINE)
        counts = self.engine.folder_counts(request.user_id)
        return storage_pb2.NodeFolders(state=state.modseq, folders=[
            _folder(folder_id, c) for folder_id, c in counts.items()
        ])

    @maps_errors
    async def GetThread(self, request: storage_pb2.NodeThreadRequest, context: Any) -> storage_pb2.NodeSummaries:
        check_user_id(request.user_id)
        if len(request.thread_id) != 2 * keys.THREAD_BYTES:
            raise NotFound(f"no thread {request.thread_id!r}")
        return _summaries(await asyncio.to_thread(self.engine.thread, request.user_id, request.thread_id))

    @maps_errors
    async def LookupThreads(self, request: storage_pb2.LookupThreadsRequest, context: Any) -> storage_pb2.LookupThreadsResponse:
        check_user_id(request.user_id)
        found = self.engine.lookup_thread(request.user_id, list(request.message_ids))  # point reads: inline (_INLINE)
        return storage_pb2.LookupThreadsResponse(thread_id=found)

    @maps_errors
    async def PutDirectory(self, request: storage_pb2.DirectoryEntry, context: Any) -> storage_pb2.DirectoryEntry:
        entry = DirectoryValue(value=bytes(request.value), version=request.version)
        held = await self.committer.submit(lambda txn: self.engine.put_directory(txn, request.key, entry))
        return storage_pb2.DirectoryEntry(key=request.key, value=held.value, version=held.version, found=True)

    @maps_errors
    async def GetDirectory(self, request: storage_pb2.DirectoryKey, context: Any) -> storage_pb2.DirectoryEntry:
        held = self.engine.directory(request.key)  # a point read: inline (_INLINE)
        if held is None:
            return storage_pb2.DirectoryEntry(key=request.key, found=False)
        return storage_pb2.DirectoryEntry(key=request.key, value=held.value, version=held.version, found=True)

    @maps_errors
    async def ListDirectory(self, request: storage_pb2.DirectoryListRequest, context: Any
                            ) -> storage_pb2.DirectoryEntries:
        if not listable_partition(request.partition):
            raise InvalidArgument(f"not a listable directory partition: {request.partition!r}")
        limit = min(request.limit or 100, 1000)
        due_by = None if request.all else request.before_ms
        # one bounded scan (at most 1000 entries; a user's folders: a few): inline (_INLINE)
        found = self.engine.list_directory(request.partition, limit, due_by_ms=due_by, after_key=request.after_key)
        return storage_pb2.DirectoryEntries(entries=[
            storage_pb2.DirectoryEntry(key=key, value=held.value, version=held.version, found=True)
            for key, held in found])

    def _spam_counts(self, request: storage_pb2.SpamCountsRequest) -> storage_pb2.SpamCountsResponse:
        tokens = list(dict.fromkeys(request.tokens))[:2 * spam_tokens.MAX_TOKENS]
        if request.HasField("text"):    # the text's tokens, then the ones named
            t = request.text
            text_tokens = spam_tokens.tokens_of(t.subject, t.text, t.html, getattr(t, "from"))
            tokens = list(dict.fromkeys([*text_tokens, *tokens]))
        found = self.engine.spam_counts(request.model, tokens)
        return storage_pb2.SpamCountsResponse(
            spam_messages=found.spam_messages, ham_messages=found.ham_messages, tokens=found.tokens,
            counts=[storage_pb2.SpamTokenCount(spam=s, ham=h) for s, h in found.counts])

    @maps_errors
    async def SpamCounts(self, request: storage_pb2.SpamCountsRequest, context: Any) -> storage_pb2.SpamCountsResponse:
        if not request.model:
            raise InvalidArgument("no spam model named")
        return self._spam_counts(request)  # one multi-get and a tokenizer: inline (_INLINE)

    def _search(self, request: storage_pb2.NodeSearchRequest) -> storage_pb2.NodeSearchResponse:
        limit = request.limit or 50
        state = mailbox_order.head(self.engine, request.user_id).modseq
        try:
            found = self.search_index.search(self.engine, request.user_id, request.query, limit, request.cursor or None)
        except QuerySyntaxError as exc:
            raise InvalidArgument(f"query: {exc}") from None
        except InvalidCursor:
            raise InvalidArgument(f"malformed cursor {request.cursor!r}") from None
        except ValueError as exc:
            raise InvalidArgument(str(exc)) from None
        live, _ = self.summaries.of(self.engine.record_values(request.user_id, found.ids))
        by_id = {s.id: s for s in live}     # a tombstone is not listed
        return storage_pb2.NodeSearchResponse(
            messages=[by_id[i] for i in found.ids if i in by_id],
            next_cursor=found.next_cursor or "", total=found.total, state=state)

    @maps_errors
    async def Search(self, request: storage_pb2.NodeSearchRequest, context: Any) -> storage_pb2.NodeSearchResponse:
        check_user_id(request.user_id)
        # Python and rocksdict reads holding the GIL throughout (~1-2 ms): a worker thread would
        # not let the loop run meanwhile, only add two hops (_INLINE)
        return self._search(request)

    def _users(self, request: storage_pb2.IndexRequest) -> list[str]:
        if request.all:
            return list(self.engine.user_ids())
        check_user_id(request.user_id)
        return [request.user_id]

    @maps_errors
    async def RebuildIndex(self, request: storage_pb2.IndexRequest, context: Any) -> storage_pb2.IndexReport:
        users = await asyncio.to_thread(self._users, request)
        report = storage_pb2.IndexReport(node_id=self.node_id, users=len(users))
        for user_id in users:
            rebuilt = await self.committer.submit(
                partial(rebuild_user, self.engine, self.search_index, user_id=user_id), alone=True)
            report.documents += rebuilt.documents
            report.blobs_missing += len(rebuilt.blobs_missing)
            report.problems.extend(f"user {user_id}: message {m}: blob missing, indexed without its body"
                                   for m in rebuilt.blobs_missing)
        return report

    @maps_errors
    async def CheckIndex(self, request: storage_pb2.IndexRequest, context: Any) -> storage_pb2.IndexReport:
        users = await asyncio.to_thread(self._users, request)
        report = storage_pb2.IndexReport(node_id=self.node_id, users=len(users))
        for user_id in users:
            count, problems = await asyncio.to_thread(check_user, self.engine, self.search_index, user_id)
            report.documents += count
            report.problems.extend(f"user {user_id}: {p}" for p in problems)
        return report

    # -- replication ---------------------------------------------------------------------
    @maps_errors
    async def RangeDigests(self, request: storage_pb2.RangeDigestsRequest, context: Any) -> storage_pb2.RangeDigestsResponse:
        ranges = _ranges(request.ranges)
        answer = storage_pb2.RangeDigestsResponse()
        for token_range, wire in zip(ranges, request.ranges):
            digest, count = await asyncio.to_thread(replication.range_digest, self.engine, token_range)
            answer.digests.add(range=wire, digest=digest, items=count)
        return answer

    @maps_errors
    async def RangeEntries(self, request: storage_pb2.RangeEntriesRequest, context: Any) -> storage_pb2.RangeEntriesResponse:
        bounds = union_bounds(_ranges(request.ranges))
        held = await asyncio.to_thread(replication.range_entries, self.engine, bounds)
        return storage_pb2.RangeEntriesResponse(items=[_to_version(h) for h in held])

    @maps_errors
    async def ReadItems(self, request: storage_pb2.ReadItemsRequest, context: Any) -> storage_pb2.ReplicaItems:
        refs = [ItemRef(r.user_id, r.id, r.directory_key) for r in request.refs]
        return _to_items(await asyncio.to_thread(replication.read_items, self.engine, refs))

    @maps_errors
    async def ApplyItems(self, request: storage_pb2.ReplicaItems, context: Any) -> storage_pb2.ApplyItemsResponse:
        items = [_from_item(i) for i in request.items]
        return storage_pb2.ApplyItemsResponse(applied=await replication.apply_items(self.engine, self.committer, items))

    async def StreamRanges(self, request: storage_pb2.StreamRangesRequest, context: Any
                           ) -> AsyncIterator[storage_pb2.ReplicaItems]:
        try:
            async for batch in self._stream(request):
                yield batch
        except StorageError as exc:  # maps_errors' translation, for a streaming method
            await _abort(context, "StreamRanges", exc)

    async def _stream(self, request: storage_pb2.StreamRangesRequest) -> AsyncIterator[storage_pb2.ReplicaItems]:
        bounds = union_bounds(_ranges(request.ranges))
        batch_bytes = request.batch_bytes if request.batch_bytes > 0 else replication.DEFAULT_BATCH_BYTES
        after: replication.Position | None = None
        while not request.order_only:
            items, after = await asyncio.to_thread(replication.read_batch, self.engine, bounds, after, batch_bytes)
            if items:
                yield _counted("out", _to_items(items))
            if after is None:
                break
        past: bytes | None = None          # then the mailbox order's rows, whole users a batch
        while True:
            rows, past = await asyncio.to_thread(order_transfer.read_batch, self.engine, bounds, past, batch_bytes)
            if rows:
                yield _counted("out", storage_pb2.ReplicaItems(
                    order_rows=[storage_pb2.OrderRow(key=k, value=v) for k, v in rows]))
            if past is None:
                return

    @maps_errors
    async def PullRanges(self, request: storage_pb2.PullRangesRequest, context: Any) -> storage_pb2.PullRangesResponse:
        ranges = _ranges(request.ranges)
        if not request.source_address:
            raise InvalidArgument("no source address to pull from")
        stub = self.peers.stub(request.source_address)
        answer = storage_pb2.PullRangesResponse()
        # a channel still backing off from the source's last absence (a restarted node) would
        # fail the stream at once: let it reconnect first, for a few seconds at most
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.peers.channel(request.source_address).channel_ready(), PEER_READY_S)
        try:
            async for batch in stub.StreamRanges(storage_pb2.StreamRangesRequest(
                    ranges=request.ranges, order_only=request.order_only)):
                if batch.items:
                    await replication.apply_items(self.engine, self.committer, [_from_item(i) for i in batch.items])
                if batch.order_rows:
                    answer.order_users += await self._merge_order(order_transfer.parse(batch.order_rows, ranges))
                _counted("in", batch)
                answer.items += len(batch.items)
                answer.bytes += batch.ByteSize()
        except grpc.aio.AioRpcError as exc:
            raise PeerUnavailable(f"streaming from {request.source_address}: {exc.code().name} {exc.details()}") from None
        return answer

    async def _merge_order(self, users: list[order_transfer.UserOrder]) -> int:
        merged = await self.committer.submit(partial(order_transfer.merge, users=users, limits=self.order_limits))
        for done in merged:
            if done.advanced:
                self.order_watchers.tell(done.user_id, done.modseq)
        return len(merged)

    @maps_errors
    async def DropRanges(self, request: storage_pb2.DropRangesRequest, context: Any) -> storage_pb2.DropRangesResponse:
        bounds = union_bounds(_ranges(request.ranges))
        dropped = await self.committer.submit(lambda txn: replication.drop_ranges(self.engine, txn, bounds), alone=True)
        return storage_pb2.DropRangesResponse(items=dropped)

    @maps_errors
    async def PutHint(self, request: storage_pb2.Hint, context: Any) -> storage_pb2.HintAck:
        await self.hints.put(request)
        return storage_pb2.HintAck()

    @maps_errors
    async def HintStatus(self, request: storage_pb2.HintStatusRequest, context: Any) -> storage_pb2.HintStatusResponse:
        return storage_pb2.HintStatusResponse(pending=[
            storage_pb2.HintStatusResponse.Pending(target_node_id=t, count=n) for t, n in self.hints.status().items()])

    @maps_errors
    async def PutRing(self, request: storage_pb2.RingMap, context: Any) -> storage_pb2.RingMap:
        return await self.ring.put(request)

    @maps_errors
    async def GetRing(self, request: storage_pb2.GetRingRequest, context: Any) -> storage_pb2.RingMap:
        return await asyncio.to_thread(self.ring.get)

    @maps_errors
    async def CollectGarbage(self, request: storage_pb2.GcRequest, context: Any) -> storage_pb2.GcReport:
        if request.grace_ms < 0:
            raise InvalidArgument(f"negative grace {request.grace_ms} ms")
        result = await collect_garbage(self.engine, self.committer, self.hints,
                                       request.grace_ms or self.settings.grace_ms)
        return storage_pb2.GcReport(tombstones_dropped=result.tombstones, hints_dropped=result.hints)

    # -- mailbox order -------------------------------------------------------------------
    @maps_errors
    async def OrderPrepare(self, request: storage_pb2.OrderPrepareRequest, context: Any) -> storage_pb2.OrderPromise:
        check_user_id(request.user_id)
        return await self.committer.submit(lambda txn: self.order_fence.guard(
            request.config, lambda: mailbox_order.prepare(txn, request.user_id, request.from_slot, request.ballot),
            storage_pb2.OrderPromise))

    @maps_errors
    async def OrderAccept(self, request: storage_pb2.OrderAcceptRequest, context: Any) -> storage_pb2.OrderAcceptReply:
        check_user_id(request.user_id)
        if request.slot < 1:
            raise InvalidArgument("slots start at 1")
        if any(store.user_id != request.user_id for store in request.stores):
            raise InvalidArgument("an accept stores its own user's messages only")
        apart = await self._prepared_apart(request.stores)

        def accept(txn: Txn) -> storage_pb2.OrderAcceptReply:
            # the messages first, in the accept's own write: a replica that accepts holds them
            stored = [self._store(txn, store, new) for store, new in zip(request.stores, apart)]
            reply = self.order_fence.guard(request.config, lambda: mailbox_order.accept(
                txn, request.user_id, request.slot, request.ballot, request.value), storage_pb2.OrderAcceptReply)
            reply.stored.extend(stored)
            return reply

        return await self.committer.submit(accept)

    @maps_errors
    async def SetOrderFence(self, request: storage_pb2.OrderFence, context: Any) -> storage_pb2.OrderFence:
        return await self.committer.submit(lambda txn: self.order_fence.set(txn, request))

    @maps_errors
    async def OrderCommit(self, request: storage_pb2.OrderCommitRequest, context: Any) -> storage_pb2.OrderCommitReply:
        check_user_id(request.user_id)
        slots = [(s.slot, s.value) for s in request.slots if s.slot >= 1]
        done = await self.committer.submit(
            lambda txn: mailbox_order.commit(txn, request.user_id, slots, self.order_limits))
        if done.advanced:
            self.order_watchers.tell(request.user_id, done.modseq)
        return storage_pb2.OrderCommitReply(applied_through=done.applied, modseq=done.modseq)

    @maps_errors
    async def OrderSlots(self, request: storage_pb2.OrderSlotsRequest, context: Any) -> storage_pb2.OrderSlotsReply:
        check_user_id(request.user_id)
        through = min(request.through_slot or keys.MAX_U64, request.after_slot + 1000)
        held = await asyncio.to_thread(mailbox_order.chosen_slots, self.engine, request.user_id,
                                       request.after_slot, through)
        return storage_pb2.OrderSlotsReply(slots=[
            storage_pb2.OrderAcceptedSlot(slot=slot, ballot=mailbox_order.CHOSEN_BALLOT,
                                          value=storage_pb2.OrderValue.FromString(value)) for slot, value in held])

    @maps_errors
    async def OrderChanges(self, request: storage_pb2.OrderChangesRequest, context: Any) -> storage_pb2.OrderChangesReply:
        check_user_id(request.user_id)
        limit = max(1, min(request.limit or 256, 1024))
        rows, state = await asyncio.to_thread(mailbox_order.changes, self.engine, request.user_id, request.since, limit)
        return storage_pb2.OrderChangesReply(changes=[types_pb2.MailboxChange.FromString(r) for r in rows],
                                             modseq=state.modseq, low_water=state.low_water)

    @maps_errors
    async def OrderFolder(self, request: storage_pb2.OrderFolderRequest, context: Any) -> storage_pb2.OrderFolderReply:
        check_user_id(request.user_id)
        limit = max(1, min(request.limit or FOLDER_PAGE, FOLDER_PAGE))
        return await asyncio.to_thread(self._order_folder, request, limit)

    def _order_folder(self, request: storage_pb2.OrderFolderRequest, limit: int) -> storage_pb2.OrderFolderReply:
        state = mailbox_order.head(self.engine, request.user_id)
        folder = state.folders.get(request.folder_id)
        rows = mailbox_order.folder_uids(self.engine, request.user_id, request.folder_id, request.after_uid, limit + 1)
        return storage_pb2.OrderFolderReply(
            uidvalidity=folder.uidvalidity if folder else 0, uid_next=folder.next_uid if folder else 1,
            modseq=state.modseq, has_more=len(rows) > limit,
            entries=[types_pb2.MailboxEntry(uid=u, id=i, modseq=m) for u, i, m in rows[:limit]])

    async def WatchOrder(self, request: storage_pb2.WatchOrderRequest, context: Any
                         ) -> AsyncIterator[storage_pb2.OrderNotice]:
        async for user_id, modseq in self.order_watchers.subscribe():
            yield storage_pb2.OrderNotice(user_id=user_id, modseq=modseq)

    async def Batch(self, request: storage_pb2.BatchRequest, context: Any) -> storage_pb2.BatchResponse:
        return await run_batch(self, _batch_counted(request))

    async def Batches(self, requests: AsyncIterator[storage_pb2.BatchRequest], context: Any
                      ) -> AsyncIterator[storage_pb2.BatchResponse]:
        async for response in run_batches(self, (_batch_counted(r) async for r in requests), self.closing):
            yield response
