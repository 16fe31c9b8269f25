"""The StorageNode gRPC servicer: protobuf in, engine call, protobuf out; errors mapped once."""
from __future__ import annotations

import asyncio
import functools
from typing import Any, Awaitable, Callable, TypeVar

import grpc
from prometheus_client import Counter

from storage_node import keys
from storage_node.commit import GroupCommitter
from storage_node.engine import Change, Engine, NewMessage, check_user_id
from storage_node.errors import BlobMissing, CorruptValue, InvalidArgument, NotFound, StorageError
from storage_node.indexing import check_user, rebuild_user
from storage_node.mime import parse_mail
from storage_node.model import DirectoryValue, MessageRecord
from search_node.index import InvalidCursor, QuerySyntaxError, SearchIndex
from tidings.v1 import storage_pb2, storage_pb2_grpc, types_pb2

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])

RPC_ERRORS = Counter("tidings_storage_rpc_errors_total", "Storage RPCs that ended in an error", ["method", "code"])

_STATUS: dict[type[StorageError], grpc.StatusCode] = {
    NotFound: grpc.StatusCode.NOT_FOUND,
    InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    CorruptValue: grpc.StatusCode.DATA_LOSS,
    BlobMissing: grpc.StatusCode.DATA_LOSS,
}


def maps_errors(method: F) -> F:
    """Translate the engine's typed errors into gRPC statuses with their detail."""

    @functools.wraps(method)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            return await method(self, request, context)
        except StorageError as exc:
            code = _STATUS.get(type(exc), grpc.StatusCode.INTERNAL)
            RPC_ERRORS.labels(method.__name__, code.name).inc()
            await context.abort(code, str(exc))

    return wrapper  # type: ignore[return-value]


def _addresses(pairs: tuple[tuple[str, str], ...]) -> list[types_pb2.Address]:
    return [types_pb2.Address(name=n, email=e) for n, e in pairs]


def to_summary(record: MessageRecord) -> types_pb2.MessageSummary:
    return types_pb2.MessageSummary(
        id=record.id, thread_id=record.thread_id, folder_id=keys.FOLDER_NAMES.get(record.folder_no, ""),
        to=_addresses(record.to), cc=_addresses(record.cc),
        subject=record.subject, snippet=record.snippet, received_ms=record.received_ms, size=record.size,
        unread=record.unread, starred=record.starred, has_attachments=record.has_attachments,
        version=record.version, **({"from": _addresses(record.from_)[0]} if record.from_ else {}),
    )


def _summaries(records: list[MessageRecord]) -> storage_pb2.NodeSummaries:
    return storage_pb2.NodeSummaries(
        messages=[to_summary(r) for r in records if not r.tombstone],
        tombstones=[r.id for r in records if r.tombstone],
    )


class StorageService(storage_pb2_grpc.StorageNodeServicer):
    def __init__(self, engine: Engine, committer: GroupCommitter, search_index: SearchIndex | None = None,
                 node_id: str = "") -> None:
        self.node_id = node_id
        self.engine = engine
        self.committer = committer
        self.search_index = search_index or SearchIndex()

    def _prepare(self, request: storage_pb2.StoreMessageRequest) -> NewMessage:
        """Parse and place the body (blob first, so a reference never dangles); no RocksDB writes."""
        check_user_id(request.user_id)
        if len(request.id) != 32:
            raise InvalidArgument(f"malformed message id {request.id!r}")
        raw = bytes(request.raw)
        return NewMessage(
            user_id=request.user_id, id=request.id, thread_id=request.thread_id or request.id[:16],
            folder_id=request.folder_id or "inbox", unread=request.unread, starred=request.starred,
            received_ms=request.received_ms, version=request.version, size=len(raw),
            parsed=parse_mail(raw), body_value=self.engine.encode_body(raw),
        )

    @maps_errors
    async def StoreMessage(self, request: storage_pb2.StoreMessageRequest, context: Any) -> storage_pb2.StoreMessageResponse:
        new = await asyncio.to_thread(self._prepare, request)
        created, record = await self.committer.submit(lambda txn: self.engine.store_message(txn, new))
        return storage_pb2.StoreMessageResponse(created=created, summary=to_summary(record))

    @maps_errors
    async def UpdateMessage(self, request: storage_pb2.UpdateMessageRequest, context: Any) -> types_pb2.MessageSummary:
        check_user_id(request.user_id)
        change = Change(
            user_id=request.user_id, id=request.id, version=request.version,
            unread=request.unread if request.HasField("unread") else None,
            starred=request.starred if request.HasField("starred") else None,
            folder_id=request.folder_id if request.HasField("folder_id") else None,
            expunge=request.expunge,
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
        records = await asyncio.to_thread(self.engine.records, request.user_id, list(request.ids))
        return _summaries(records)

    @maps_errors
    async def ListFolder(self, request: storage_pb2.NodeListFolderRequest, context: Any) -> storage_pb2.NodeSummaries:
        check_user_id(request.user_id)
        after = (request.after_received_ms, request.after_id) if request.after_id else None
        records = await asyncio.to_thread(
            self.engine.list_folder, request.user_id, request.folder_id, request.unread_only,
            max(1, min(request.limit or 50, 1000)), after)
        return _summaries(records)

    @maps_errors
    async def ListFolders(self, request: storage_pb2.NodeUserRef, context: Any) -> storage_pb2.NodeFolders:
        check_user_id(request.user_id)
        counts = await asyncio.to_thread(self.engine.folder_counts, request.user_id)
        return storage_pb2.NodeFolders(folders=[
            types_pb2.Folder(id=role, name=role.capitalize(), role=role, total=c.total, unread=c.unread)
            for role, c in counts.items()
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
        found = await asyncio.to_thread(self.engine.lookup_thread, request.user_id, list(request.message_ids))
        return storage_pb2.LookupThreadsResponse(thread_id=found)

    @maps_errors
    async def PutDirectory(self, request: storage_pb2.DirectoryEntry, context: Any) -> storage_pb2.DirectoryEntry:
        entry = DirectoryValue(value=bytes(request.value), version=request.version)
        held = await self.committer.submit(lambda txn: self.engine.put_directory(txn, request.key, entry))
        return storage_pb2.DirectoryEntry(key=request.key, value=held.value, version=held.version, found=True)

    @maps_errors
    async def GetDirectory(self, request: storage_pb2.DirectoryKey, context: Any) -> storage_pb2.DirectoryEntry:
        held = await asyncio.to_thread(self.engine.directory, request.key)
        if held is None:
            return storage_pb2.DirectoryEntry(key=request.key, found=False)
        return storage_pb2.DirectoryEntry(key=request.key, value=held.value, version=held.version, found=True)

    def _search(self, request: storage_pb2.NodeSearchRequest) -> storage_pb2.NodeSearchResponse:
        limit = request.limit or 50
        try:
            found = self.search_index.search(self.engine, request.user_id, request.query, limit, request.cursor or None)
        except QuerySyntaxError as exc:
            raise InvalidArgument(f"query: {exc}") from None
        except InvalidCursor:
            raise InvalidArgument(f"malformed cursor {request.cursor!r}") from None
        except ValueError as exc:
            raise InvalidArgument(str(exc)) from None
        by_id = {r.id: r for r in self.engine.records(request.user_id, found.ids)}
        return storage_pb2.NodeSearchResponse(
            messages=[to_summary(by_id[i]) for i in found.ids if i in by_id and not by_id[i].tombstone],
            next_cursor=found.next_cursor or "", total=found.total)

    @maps_errors
    async def Search(self, request: storage_pb2.NodeSearchRequest, context: Any) -> storage_pb2.NodeSearchResponse:
        check_user_id(request.user_id)
        return await asyncio.to_thread(self._search, request)

    def _users(self, request: storage_pb2.IndexRequest) -> list[str]:
        if request.all:
            return list(self.engine.user_ids())
        check_user_id(request.user_id)
        return [request.user_id]

    @maps_errors
    async def RebuildIndex(self, request: storage_pb2.IndexRequest, context: Any) -> storage_pb2.IndexReport:
        users = await asyncio.to_thread(self._users, request)
        documents = 0
        for user_id in users:
            documents += await self.committer.submit(
                lambda txn, u=user_id: rebuild_user(self.engine, self.search_index, txn, u), alone=True)
        return storage_pb2.IndexReport(node_id=self.node_id, users=len(users), documents=documents)

    @maps_errors
    async def CheckIndex(self, request: storage_pb2.IndexRequest, context: Any) -> storage_pb2.IndexReport:
        users = await asyncio.to_thread(self._users, request)
        report = storage_pb2.IndexReport(node_id=self.node_id, users=len(users))
        for user_id in users:
            count, problems = await asyncio.to_thread(check_user, self.engine, self.search_index, user_id)
            report.documents += count
            report.problems.extend(f"user {user_id}: {p}" for p in problems)
        return report
