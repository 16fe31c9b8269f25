"""The router's gRPC servicers (tidings.v1.Mail and Admin): protobuf in and out, one
error mapping; the work is the coordinator's and the directory's."""
from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc
from prometheus_client import Counter, Histogram

from router import idempotency
from router.anti_entropy import AntiEntropy
from router.call_stream import CarriedCalls
from router.change_feed import ChangeFeed
from router.coordinator import Coordinator, Outcome
from router.directory import Directory
from router.dkim_keys import DkimKeys, SigningKey
from router.drafts import Drafts
from router.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    RouterError,
    Unauthenticated,
    Unavailable,
)
from router.folders import Folders
from router.membership import Membership
from router.replicas import Replicas
from router.ring import NodeInfo
from router.spam import parse_header
from tidings.v1 import mail_pb2, mail_pb2_grpc, storage_pb2, types_pb2
from tidings_runtime.addresses import AddressError, canonical, parse_domain
from tidings_runtime.cursor import InvalidCursor
from tidings_runtime.ids import is_entry_id
from tidings_runtime.mime import find_attachment, parse_mail
from tidings_runtime.together import both

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])

INDEX_TIMEOUT = 3600.0  # a rebuild of every user on a node is long; it is an operator's command
RPCS = Counter("tidings_router_rpcs_total", "Router RPCs by method and status", ["method", "code"])
LATENCY = Histogram("tidings_router_rpc_seconds", "Router RPC latency", ["method"])

_STATUS: dict[type[Exception], grpc.StatusCode] = {
    AddressError: grpc.StatusCode.INVALID_ARGUMENT,     # its message names the text and why
    InvalidCursor: grpc.StatusCode.INVALID_ARGUMENT,
    Unavailable: grpc.StatusCode.UNAVAILABLE,
    NotFound: grpc.StatusCode.NOT_FOUND,
    InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
}


def _status_of(exc: RouterError | AddressError | InvalidCursor) -> grpc.StatusCode:
    for cls in type(exc).__mro__:
        if cls in _STATUS:
            return _STATUS[cls]
    return grpc.StatusCode.INTERNAL


def rpc(method: F) -> F:
    """Count, time, and translate the router's typed errors to gRPC statuses."""

    @functools.wraps(method)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Any:
        with LATENCY.labels(method.__name__).time():
            try:
                response = await method(self, request, context)
            except (RouterError, AddressError, InvalidCursor) as exc:
                code = _status_of(exc)
                RPCS.labels(method.__name__, code.name).inc()
                await context.abort(code, str(exc))
            RPCS.labels(method.__name__, "OK").inc()
            return response

    return wrapper  # type: ignore[return-value]


def _account(account: Any) -> types_pb2.Account:
    return types_pb2.Account(user_id=account.user_id, email=account.email)


def _addresses(pairs: tuple[tuple[str, str], ...]) -> list[types_pb2.Address]:
    return [types_pb2.Address(name=n, email=e) for n, e in pairs]


def _delivery(d: Any) -> mail_pb2.DeliverResponse.Delivery:
    return mail_pb2.DeliverResponse.Delivery(recipient=d.recipient, user_id=d.user_id, id=d.id, thread_id=d.thread_id)


def _deliver_response(outcome: Outcome, entry_id: str, claimed: idempotency.Claim | None) -> mail_pb2.DeliverResponse:
    response = mail_pb2.DeliverResponse(deliveries=[_delivery(d) for d in outcome.delivered],
                                        queued=outcome.queued, entry_id=entry_id,
                                        message_id=claimed.message_id if claimed else "",
                                        replayed=claimed.replayed if claimed else False)
    if outcome.sent is not None:
        response.sent_copy.CopyFrom(_delivery(outcome.sent))
    return response


class MailService(mail_pb2_grpc.MailServicer):
    def __init__(self, coordinator: Coordinator, directory: Directory, feed: ChangeFeed | None = None) -> None:
        self.coordinator = coordinator
        self.directory = directory
        self.claims = directory
        self.folders = Folders(coordinator, coordinator.custom_folders)
        self.drafts = Drafts(coordinator, self.claims)
        self.feed = feed if feed is not None else ChangeFeed(coordinator.replicas)
        self.carried = CarriedCalls(self)

    @rpc
    async def Authenticate(self, request: mail_pb2.AuthenticateRequest, context: Any) -> types_pb2.Account:
        return _account(await self.directory.authenticate(request.email, request.password))

    @rpc
    async def CheckRecipient(self, request: mail_pb2.CheckRecipientRequest, context: Any) -> mail_pb2.CheckRecipientResponse:
        Status = mail_pb2.CheckRecipientResponse.Status
        try:
            email = canonical(request.address)
        except AddressError as exc:     # an answer, not a failure: the caller refuses it for good
            return mail_pb2.CheckRecipientResponse(status=Status.MALFORMED, reason=exc.reason)
        account = await self.directory.known_account(email)
        if account is not None:
            return mail_pb2.CheckRecipientResponse(status=Status.LOCAL_USER, account=_account(account))
        hosted = await self.directory.is_hosted(email.rpartition("@")[2])
        return mail_pb2.CheckRecipientResponse(status=Status.UNKNOWN_USER if hosted else Status.NOT_HOSTED)

    async def _claim(self, request: mail_pb2.DeliverRequest) -> idempotency.Claim | None:
        """The entry id to deliver under: an earlier request's with this key or digest, if any."""
        if request.idempotency_key:
            entry = idempotency.idempotency_entry(request.sender_user_id, request.idempotency_key)
            return await idempotency.claim(self.claims, entry, bytes(request.request_hash), request.entry_id,
                                           request.message_id, idempotency.IDEMPOTENCY_TTL_MS)
        if request.dedupe_digest:
            digest = bytes(request.dedupe_digest)
            return await idempotency.claim(self.claims, idempotency.dedupe_entry(digest), digest,
                                           request.entry_id, "", idempotency.DEDUPE_TTL_MS)
        return None

    @rpc
    async def Deliver(self, request: mail_pb2.DeliverRequest, context: Any) -> mail_pb2.DeliverResponse:
        if not is_entry_id(request.entry_id):
            raise InvalidArgument(f"malformed entry id {request.entry_id!r}")
        try:
            analysed = await self.coordinator.analyse(
                bytes(request.raw), list(request.recipients), request.folder_id, request.sender_user_id,
                request.mail_from, request.bounce, request.screening if request.HasField("screening") else None)
            # The claim's write round and the screening's reads (spam counts, threads) at once,
            # started in one turn of the loop so that each node gets its share as one batch:
            # screening writes nothing, so a claim that adopts an earlier entry id loses nothing.
            claimed, screened = await both(self._claim(request), self.coordinator.screen(analysed))
        except NotFound as exc:  # an unknown recipient is the caller's mistake here
            raise FailedPrecondition(str(exc)) from exc
        entry_id = claimed.entry_id if claimed is not None else request.entry_id
        outcome = await self.coordinator.file(screened, entry_id, fresh=claimed is None or not claimed.replayed)
        return _deliver_response(outcome, entry_id, claimed)

    @rpc
    async def ImportMessage(self, request: mail_pb2.ImportMessageRequest,
                            context: Any) -> mail_pb2.ImportMessageResponse:
        created, summary = await self.coordinator.import_message(
            request.email, request.entry_id, bytes(request.raw), request.folder_id, request.unread, request.starred,
            request.answered, request.draft, list(request.keywords))
        return mail_pb2.ImportMessageResponse(created=created, summary=summary)

    @rpc
    async def ListFolders(self, request: mail_pb2.UserRef, context: Any) -> mail_pb2.FolderList:
        folders, state = await self.folders.listing(request.user_id)
        return mail_pb2.FolderList(folders=folders, state=state)

    @rpc
    async def ListMessages(self, request: mail_pb2.ListMessagesRequest, context: Any) -> mail_pb2.MessagePage:
        page, next_cursor, state = await self.coordinator.list_messages(
            request.user_id, request.folder_id, request.unread_only, request.limit, request.cursor, request.headers)
        return mail_pb2.MessagePage(messages=page, next_cursor=next_cursor, state=state)

    @rpc
    async def GetMessage(self, request: mail_pb2.MessageRef, context: Any) -> types_pb2.MessageDetail:
        held = await self.coordinator.stored(request.user_id, request.id)
        parsed = await asyncio.to_thread(parse_mail, bytes(held.raw))
        outgoing = await self.coordinator.queue.find(request.id) if held.summary.folder_id == "sent" else None
        delivery = outgoing.recipients if outgoing is not None and outgoing.sender_user_id == request.user_id else []
        verdict = parse_header(bytes(held.raw)) if held.summary.folder_id != "sent" else None
        return types_pb2.MessageDetail(
            delivery=delivery, spam=verdict.to_proto() if verdict is not None else None,
            summary=held.summary, message_id=parsed.rfc822_msgid, in_reply_to=parsed.in_reply_to,
            references=list(parsed.references), text=parsed.text, html=parsed.html,
            bcc=_addresses(parsed.bcc),
            attachments=[types_pb2.AttachmentInfo(id=a.id, filename=a.filename, content_type=a.content_type,
                                                  size=a.size) for a in parsed.attachments],
        )

    @rpc
    async def GetRawMessage(self, request: mail_pb2.MessageRef, context: Any) -> mail_pb2.RawMessage:
        held = await self.coordinator.stored(request.user_id, request.id)
        return mail_pb2.RawMessage(raw=held.raw)

    @rpc
    async def GetMessages(self, request: mail_pb2.GetMessagesRequest, context: Any) -> mail_pb2.Messages:
        read = await self.coordinator.messages(request.user_id, list(request.ids), raw=request.raw,
                                               headers=request.headers)
        return mail_pb2.Messages(
            messages=[mail_pb2.Messages.Message(summary=read.found[i].summary, raw=read.found[i].raw)
                      for i in dict.fromkeys(request.ids) if i in read.found],
            missing=read.missing, more=read.more)

    @rpc
    async def GetAttachment(self, request: mail_pb2.AttachmentRef, context: Any) -> mail_pb2.AttachmentContent:
        held = await self.coordinator.stored(request.user_id, request.id)
        found = await asyncio.to_thread(find_attachment, bytes(held.raw), request.attachment_id)
        if found is None:
            raise NotFound(f"no attachment {request.attachment_id!r} in message {request.id}")
        part, data = found
        info = types_pb2.AttachmentInfo(id=part.id, filename=part.filename, content_type=part.content_type, size=part.size)
        return mail_pb2.AttachmentContent(info=info, content=data)

    @rpc
    async def UpdateMessage(self, request: mail_pb2.UpdateRequest, context: Any) -> types_pb2.MessageSummary:
        return await self.coordinator.update(
            request.user_id, request.id,
            unread=request.unread if request.HasField("unread") else None,
            starred=request.starred if request.HasField("starred") else None,
            folder_id=request.folder_id if request.HasField("folder_id") else None, train=True,
            answered=request.answered if request.HasField("answered") else None,
            draft=request.draft if request.HasField("draft") else None,
            deleted=request.deleted if request.HasField("deleted") else None,
            add_keywords=list(request.add_keywords), remove_keywords=list(request.remove_keywords))

    @rpc
    async def DeleteMessage(self, request: mail_pb2.MessageRef, context: Any) -> mail_pb2.DeleteResponse:
        return mail_pb2.DeleteResponse(expunged=await self.coordinator.delete(request.user_id, request.id))

    @rpc
    async def GetThread(self, request: mail_pb2.ThreadRef, context: Any) -> mail_pb2.Thread:
        messages = await self.coordinator.thread(request.user_id, request.thread_id)
        return mail_pb2.Thread(id=request.thread_id, messages=messages)

    @rpc
    async def Search(self, request: mail_pb2.SearchRequest, context: Any) -> mail_pb2.MessagePage:
        page, next_cursor, total, state = await self.coordinator.search(
            request.user_id, request.query, request.limit, request.cursor)
        return mail_pb2.MessagePage(messages=page, next_cursor=next_cursor, total=total, state=state)

    @rpc
    async def Changes(self, request: mail_pb2.ChangesRequest, context: Any) -> mail_pb2.ChangesResponse:
        return await self.feed.changes(request.user_id, request.since, request.limit)

    @rpc
    async def Mailbox(self, request: mail_pb2.MailboxRequest, context: Any) -> mail_pb2.MailboxView:
        folder_id = await self.coordinator.custom_folders.check(request.user_id, request.folder_id, live=False)
        return await self.feed.mailbox(request.user_id, folder_id, request.after_uid, request.limit,
                                       self.coordinator.order)

    async def Calls(self, requests: AsyncIterator[mail_pb2.CallRequest], context: grpc.aio.ServicerContext
                    ) -> AsyncIterator[mail_pb2.CallAnswer]:
        """The unary calls router/call_stream.py carries, answered as each finishes."""
        async for answer in self.carried.serve(requests):
            yield answer

    async def Watch(self, request: mail_pb2.ChangesRequest, context: grpc.aio.ServicerContext
                    ) -> AsyncIterator[mail_pb2.ChangesResponse]:
        try:
            async for batch in self.feed.watch(request.user_id, request.since):
                yield batch
        except RouterError as exc:      # rpc's translation, for a streaming method
            RPCS.labels("Watch", _status_of(exc).name).inc()
            await context.abort(_status_of(exc), str(exc))

    # -- custom folders and drafts (router/folders.py, router/drafts.py) -------------------
    @rpc
    async def CreateFolder(self, request: mail_pb2.CreateFolderRequest, context: Any) -> types_pb2.Folder:
        return await self.folders.create(request.user_id, request.name)

    @rpc
    async def RenameFolder(self, request: mail_pb2.RenameFolderRequest, context: Any) -> types_pb2.Folder:
        return await self.folders.rename(request.user_id, request.folder_id, request.name)

    @rpc
    async def DeleteFolder(self, request: mail_pb2.FolderRef, context: Any) -> mail_pb2.DeleteFolderResponse:
        await self.folders.delete(request.user_id, request.folder_id)
        return mail_pb2.DeleteFolderResponse()

    @rpc
    async def SaveDraft(self, request: mail_pb2.SaveDraftRequest, context: Any) -> types_pb2.MessageSummary:
        return await self.drafts.save(request.user_id, request.entry_id, bytes(request.raw), request.replaces)

    @rpc
    async def SendDraft(self, request: mail_pb2.SendDraftRequest, context: Any) -> mail_pb2.DeliverResponse:
        outcome, claimed, entry_id = await self.drafts.send(request.user_id, request.id, request.entry_id,
                                                            request.mail_from, request.idempotency_key)
        return _deliver_response(outcome, entry_id, claimed)


def _dkim_records(domain: str, keys: list[SigningKey]) -> mail_pb2.DkimRecordList:
    return mail_pb2.DkimRecordList(domain=parse_domain(domain), records=[
        mail_pb2.DkimRecordList.Record(name=k.record_name, value=k.record_value, selector=k.selector,
                                       algorithm=k.algorithm, active=k.active) for k in keys])


class AdminService(mail_pb2_grpc.AdminServicer):
    def __init__(self, directory: Directory, replicas: Replicas, anti_entropy: AntiEntropy,
                 membership: Membership, dkim: DkimKeys | None = None) -> None:
        self.directory = directory
        self.replicas = replicas
        self.anti_entropy = anti_entropy
        self.membership = membership
        self.dkim = dkim if dkim is not None else DkimKeys(directory)

    async def _on_nodes(self, command: mail_pb2.IndexCommand, method: str) -> mail_pb2.IndexReports:
        """Run an index command on every replica of the user, or on every node."""
        if command.all:
            nodes, request = list(self.replicas.ring.nodes), storage_pb2.IndexRequest(all=True)
        else:
            account = await self.directory.local_account(command.email)
            nodes = self.replicas.plan(account.user_id)
            request = storage_pb2.IndexRequest(user_id=account.user_id)

        async def one(node: NodeInfo) -> storage_pb2.IndexReport:
            try:
                return await getattr(self.replicas.pool.stub(node), method)(request, timeout=INDEX_TIMEOUT)
            except grpc.aio.AioRpcError as exc:
                return storage_pb2.IndexReport(node_id=node.node_id, problems=[f"{exc.code().name}: {exc.details()}"])

        return mail_pb2.IndexReports(reports=await asyncio.gather(*(one(n) for n in nodes)))

    @rpc
    async def RebuildIndex(self, request: mail_pb2.IndexCommand, context: Any) -> mail_pb2.IndexReports:
        return await self._on_nodes(request, "RebuildIndex")

    @rpc
    async def CheckIndex(self, request: mail_pb2.IndexCommand, context: Any) -> mail_pb2.IndexReports:
        return await self._on_nodes(request, "CheckIndex")

    @rpc
    async def Repair(self, request: mail_pb2.RepairRequest, context: Any) -> mail_pb2.RepairReport:
        return (await self.anti_entropy.repair(request.check_only)).to_proto()

    @rpc
    async def AddNode(self, request: mail_pb2.NodeChange, context: Any) -> mail_pb2.RingReport:
        if not request.node_id or not request.address:
            raise InvalidArgument("a node to add needs an id and an address")
        return await self.membership.add(NodeInfo(request.node_id, request.address, request.zone or "zone-a"))

    @rpc
    async def RemoveNode(self, request: mail_pb2.NodeChange, context: Any) -> mail_pb2.RingReport:
        return await self.membership.remove(request.node_id)

    @rpc
    async def DescribeRing(self, request: mail_pb2.DescribeRingRequest, context: Any) -> mail_pb2.RingReport:
        return self.membership.describe()

    @rpc
    async def AddDomain(self, request: mail_pb2.AddDomainRequest, context: Any) -> mail_pb2.AddDomainResponse:
        domain, created = await self.directory.add_domain(request.domain)
        await self.dkim.create(domain)  # its signing keys, with the domain (kept if it had some)
        return mail_pb2.AddDomainResponse(domain=domain, created=created)

    @rpc
    async def DkimRecords(self, request: mail_pb2.AddDomainRequest, context: Any) -> mail_pb2.DkimRecordList:
        return _dkim_records(request.domain, await self.dkim.records(request.domain))

    @rpc
    async def RotateDkim(self, request: mail_pb2.DkimRotation, context: Any) -> mail_pb2.DkimRecordList:
        keys = await self.dkim.rotate(request.domain, list(request.algorithms), request.selector or None)
        return _dkim_records(request.domain, keys)

    @rpc
    async def ActivateDkim(self, request: mail_pb2.DkimSelectors, context: Any) -> mail_pb2.DkimRecordList:
        return _dkim_records(request.domain, await self.dkim.activate(request.domain, list(request.selectors)))

    @rpc
    async def RetireDkim(self, request: mail_pb2.DkimSelectors, context: Any) -> mail_pb2.DkimRecordList:
        return _dkim_records(request.domain, await self.dkim.retire(request.domain, list(request.selectors)))

    @rpc
    async def AddUser(self, request: mail_pb2.AddUserRequest, context: Any) -> types_pb2.Account:
        return _account(await self.directory.add_user(request.email, request.password))
