"""An asyncio wrapper over the router's `tidings.v1.Mail` and `tidings.v1.Admin` services.

    async with MailClient("127.0.0.1:7000") as mail:
        account = await mail.authenticate("ann@example.test", "pw")
        async for summary in mail.iter_messages(account.user_id, "inbox"):
            print(summary.subject)

The generated stubs stay untouched (`tidings.v1.*_pb2_grpc`). This module adds:
- one `grpc.aio` channel per client, with retries for UNAVAILABLE in the
  channel's service config for the idempotent calls (the reads, and `Deliver`,
  which is idempotent by its `entry_id`);
- a default deadline per call, and each call's metadata from an optional hook (`metadata=`,
  e.g. the caller's request id: cheaper than a grpc.aio client interceptor);
- typed errors (`tidings_client.errors`), translated in `_call` and only there;
- pagers (`tidings_client.paging`) for ListMessages and Search;
- the change feed: `changes` (one page of `Mail.Changes`) and `watch`, an endless
  `async for` over `Mail.Watch` that redials after UNAVAILABLE from the last MODSEQ seen.
"""
from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from types import TracebackType
from typing import Any, Self

import grpc
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass

from tidings.v1 import mail_pb2, mail_pb2_grpc, types_pb2

from .call_stream import CARRIED, CallStream, StreamBroken
from .errors import Unavailable, from_rpc_error
from .paging import MessagePager

_MAIL = "tidings.v1.Mail"
_ADMIN = "tidings.v1.Admin"

# Calls that may be repeated without changing the outcome.
_IDEMPOTENT_MAIL = (
    "Authenticate",
    "CheckRecipient",
    "Deliver",  # the entry_id names every stored copy: a retry rewrites the same rows
    "ListFolders",
    "ListMessages",
    "GetMessage",
    "GetRawMessage",
    "GetMessages",
    "GetAttachment",
    "GetThread",
    "Search",
    "Changes",
    "Mailbox",  # a folder's first view orders a FOLDER_CHANGED once; a repeat reads the same view
)
_IDEMPOTENT_ADMIN = ("AddDomain",)

# A carried call's request over this many bytes goes unary, so that a large message never holds
# up the calls behind it on the Mail.Calls stream (call_stream.CARRIED).
CARRY_LIMIT = 256 * 1024

DEFAULT_TIMEOUT = 10.0
WATCH_BACKOFF = (0.1, 2.0)  # seconds before redialling a broken Watch: the first wait, the longest
MAX_MESSAGE_BYTES = 64 * 1024 * 1024  # a 25 MiB mail plus protobuf overhead fits

# Called before each call for the metadata it sends (None: none), e.g. the current request id.
MetadataHook = Callable[[], Sequence[tuple[str, str]] | None]


def _service_config(methods: Sequence[tuple[str, str]]) -> str:
    return json.dumps(
        {
            "methodConfig": [
                {
                    "name": [{"service": service, "method": method} for service, method in methods],
                    "retryPolicy": {
                        "maxAttempts": 4,
                        "initialBackoff": "0.1s",
                        "maxBackoff": "1s",
                        "backoffMultiplier": 2,
                        "retryableStatusCodes": ["UNAVAILABLE"],
                    },
                }
            ]
        }
    )


def channel_options(methods: Sequence[tuple[str, str]]) -> list[tuple[str, Any]]:
    return [
        ("grpc.enable_retries", 1),
        ("grpc.service_config", _service_config(methods)),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.keepalive_timeout_ms", 10_000),
    ]


class _BaseClient:
    _retry_methods: Sequence[tuple[str, str]] = ()

    def __init__(
        self,
        target: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        credentials: grpc.ChannelCredentials | None = None,
        channel: grpc.aio.Channel | None = None,
        interceptors: Sequence[grpc.aio.ClientInterceptor] = (),
        metadata: MetadataHook | None = None,
    ) -> None:
        self.target = target
        self.timeout = timeout
        self._metadata = metadata
        if channel is not None:
            self._channel = channel
            self._owns_channel = False
        else:
            options = channel_options(self._retry_methods)
            self._channel = (
                grpc.aio.secure_channel(target, credentials, options=options, interceptors=interceptors)
                if credentials is not None
                else grpc.aio.insecure_channel(target, options=options, interceptors=interceptors)
            )
            self._owns_channel = True

    @property
    def channel(self) -> grpc.aio.Channel:
        return self._channel

    def _call_metadata(self) -> Sequence[tuple[str, str]] | None:
        return self._metadata() if self._metadata is not None else None

    async def _call(self, method: Any, request: Message, timeout: float | None) -> Any:
        try:
            return await self._send(method, request, self.timeout if timeout is None else timeout)
        except grpc.RpcError as err:
            raise from_rpc_error(err) from None

    async def _send(self, method: Any, request: Message, timeout: float) -> Any:
        return await method(request, timeout=timeout, metadata=self._call_metadata())

    async def close(self) -> None:
        if self._owns_channel:
            await self._channel.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


def deliver_request(entry_id: str, raw: bytes, recipients: Sequence[str], *, folder_id: str = "",
                    sender_user_id: str = "", mail_from: str = "", idempotency_key: str = "",
                    request_hash: bytes = b"", message_id: str = "") -> mail_pb2.DeliverRequest:
    """`Mail.Deliver`'s request, as both clients send it."""
    return mail_pb2.DeliverRequest(entry_id=entry_id, raw=raw, recipients=list(recipients), folder_id=folder_id,
                                   sender_user_id=sender_user_id, mail_from=mail_from,
                                   idempotency_key=idempotency_key, request_hash=request_hash,
                                   message_id=message_id)


def update_request(user_id: str, id: str, *, unread: bool | None, starred: bool | None, folder_id: str | None,
                   answered: bool | None, draft: bool | None, deleted: bool | None, add_keywords: Iterable[str],
                   remove_keywords: Iterable[str]) -> mail_pb2.UpdateRequest:
    """`Mail.UpdateMessage`'s request, as both clients send it (None leaves a cell unset)."""
    return mail_pb2.UpdateRequest(user_id=user_id, id=id, unread=unread, starred=starred, folder_id=folder_id,
                                  answered=answered, draft=draft, deleted=deleted,
                                  add_keywords=list(add_keywords), remove_keywords=list(remove_keywords))


class MailClient(_BaseClient):
    """The mail API: what the edges and webmail call, `user_id` given by the caller."""

    _retry_methods = tuple((_MAIL, m) for m in _IDEMPOTENT_MAIL)

    def __init__(self, target: str, *, carry: bool = True, **kwargs: Any) -> None:
        """`carry`: send the small idempotent calls on one `Mail.Calls` stream (call_stream.py)
        rather than as unary calls; a router without that method gets unary calls."""
        super().__init__(target, **kwargs)
        self._stub = mail_pb2_grpc.MailStub(self._channel)
        service = mail_pb2.DESCRIPTOR.services_by_name["Mail"]
        self._carried: dict[Any, tuple[str, type[Message]]] = {
            getattr(self._stub, name): (name, GetMessageClass(service.methods_by_name[name].output_type))
            for name in CARRIED} if carry else {}
        self._stream: CallStream | None = None

    async def _send(self, method: Any, request: Message, timeout: float) -> Any:
        carried = self._carried.get(method)
        if carried is None or request.ByteSize() > CARRY_LIMIT:
            return await super()._send(method, request, timeout)
        name, response_type = carried
        if self._stream is None or self._stream.broken:
            self._stream = CallStream(self._stub)
        try:
            return await self._stream.call(name, request, response_type, timeout, self._call_metadata())
        except StreamBroken as broken:
            if broken.error.code() == grpc.StatusCode.UNIMPLEMENTED:    # a router without Mail.Calls
                self._carried.clear()
        except grpc.aio.AioRpcError as err:
            if err.code() != grpc.StatusCode.UNAVAILABLE:
                raise
        # idempotent, so sent again as a unary call: the channel's retries of UNAVAILABLE with it
        return await super()._send(method, request, timeout)

    async def close(self) -> None:
        if self._stream is not None:
            await self._stream.close()
        await super().close()

    async def authenticate(self, email: str, password: str, *, timeout: float | None = None) -> types_pb2.Account:
        return await self._call(
            self._stub.Authenticate, mail_pb2.AuthenticateRequest(email=email, password=password), timeout
        )

    async def check_recipient(
        self, address: str, *, timeout: float | None = None
    ) -> mail_pb2.CheckRecipientResponse:
        return await self._call(self._stub.CheckRecipient, mail_pb2.CheckRecipientRequest(address=address), timeout)

    async def deliver(
        self,
        entry_id: str,
        raw: bytes,
        recipients: Sequence[str],
        *,
        folder_id: str = "",
        sender_user_id: str = "",
        mail_from: str = "",
        idempotency_key: str = "",
        request_hash: bytes = b"",
        message_id: str = "",
        timeout: float | None = None,
    ) -> mail_pb2.DeliverResponse:
        """With ``idempotency_key`` (and the request's hash and the Message-ID of ``raw``), a
        repeat of the same request delivers under the first one's entry id and gets its answer."""
        request = deliver_request(entry_id, raw, recipients, folder_id=folder_id, sender_user_id=sender_user_id,
                                  mail_from=mail_from, idempotency_key=idempotency_key,
                                  request_hash=request_hash, message_id=message_id)
        return await self._call(self._stub.Deliver, request, timeout)

    async def list_folders(self, user_id: str, *, timeout: float | None = None) -> list[types_pb2.Folder]:
        result = await self._call(self._stub.ListFolders, mail_pb2.UserRef(user_id=user_id), timeout)
        return list(result.folders)

    async def mailbox_state(self, user_id: str, *, timeout: float | None = None) -> int:
        """The mailbox's current state (MODSEQ), as `ListFolders` reads it: `changes` and
        `watch` from here report every later change."""
        result = await self._call(self._stub.ListFolders, mail_pb2.UserRef(user_id=user_id), timeout)
        return int(result.state)

    async def changes(
        self, user_id: str, since: int, limit: int = 0, *, timeout: float | None = None
    ) -> mail_pb2.ChangesResponse:
        """The changes after state `since` (a MODSEQ), oldest first, at most `limit` (0: the
        router's default); `has_more`: ask again from `new_state`. A state older than the feed
        keeps raises `CannotCalculateChanges` (resync from the listings)."""
        request = mail_pb2.ChangesRequest(user_id=user_id, since=since, limit=limit)
        return await self._call(self._stub.Changes, request, timeout)

    async def watch(
        self, user_id: str, since: int = 0, *, limit: int = 0, backoff: tuple[float, float] = WATCH_BACKOFF
    ) -> AsyncIterator[types_pb2.MailboxChange]:
        """Every change after `since`, then each new one as it happens, forever (break out of
        the `async for` to stop). A stream that breaks (UNAVAILABLE: the router restarted, too
        few replicas) or ends is dialled again from the last MODSEQ seen, after `backoff`
        (first, most) seconds doubling while it fails; a change is never yielded twice. Other
        errors are raised typed, `CannotCalculateChanges` among them."""
        last, delay = since, backoff[0]
        while True:
            call = self._stub.Watch(mail_pb2.ChangesRequest(user_id=user_id, since=last, limit=limit), timeout=None,
                                    metadata=self._call_metadata())
            try:
                async for response in call:
                    delay = backoff[0]
                    for change in response.changes:
                        if change.modseq > last:
                            last = change.modseq
                            yield change
            except grpc.RpcError as err:
                error = from_rpc_error(err)
                if not isinstance(error, Unavailable):
                    raise error from None
            finally:
                call.cancel()
            await asyncio.sleep(delay)
            delay = min(delay * 2, backoff[1])

    async def mailbox(
        self, user_id: str, folder_id: str, *, after_uid: int = 0, limit: int = 0, timeout: float | None = None
    ) -> mail_pb2.MailboxView:
        """One page of a folder's view in the mailbox order (IMAP's SELECT): UIDVALIDITY, UIDNEXT,
        the MODSEQ it was read at and its messages by UID after `after_uid` (`has_more`: ask again
        from the last UID). `limit` 0 is the router's page (10,000)."""
        request = mail_pb2.MailboxRequest(user_id=user_id, folder_id=folder_id, after_uid=after_uid, limit=limit)
        return await self._call(self._stub.Mailbox, request, timeout)

    async def list_messages(
        self,
        user_id: str,
        folder_id: str,
        *,
        unread_only: bool = False,
        limit: int = 50,
        cursor: str = "",
        headers: bool = False,
        timeout: float | None = None,
    ) -> mail_pb2.MessagePage:
        """A page of a folder; ``headers``: each summary with its kept header fields."""
        request = mail_pb2.ListMessagesRequest(
            user_id=user_id, folder_id=folder_id, unread_only=unread_only, limit=limit, cursor=cursor,
            headers=headers,
        )
        return await self._call(self._stub.ListMessages, request, timeout)

    def iter_messages(
        self,
        user_id: str,
        folder_id: str,
        *,
        unread_only: bool = False,
        page_size: int = 50,
        max_items: int | None = None,
    ) -> MessagePager:
        async def fetch(cursor: str) -> mail_pb2.MessagePage:
            return await self.list_messages(
                user_id, folder_id, unread_only=unread_only, limit=page_size, cursor=cursor
            )

        return MessagePager(fetch, max_items=max_items)

    async def get_message(self, user_id: str, id: str, *, timeout: float | None = None) -> types_pb2.MessageDetail:
        return await self._call(self._stub.GetMessage, mail_pb2.MessageRef(user_id=user_id, id=id), timeout)

    async def get_raw_message(self, user_id: str, id: str, *, timeout: float | None = None) -> bytes:
        result = await self._call(self._stub.GetRawMessage, mail_pb2.MessageRef(user_id=user_id, id=id), timeout)
        return bytes(result.raw)

    async def get_messages(
        self, user_id: str, ids: Sequence[str], *, raw: bool = False, headers: bool = False,
        timeout: float | None = None,
    ) -> mail_pb2.Messages:
        """Several messages at once (at most 1000 ids): summaries, with ``raw`` their bytes too
        (an answer holds about 4 MiB: the ids left are in ``more``), ids not held in ``missing``."""
        request = mail_pb2.GetMessagesRequest(user_id=user_id, ids=ids, raw=raw, headers=headers)
        return await self._call(self._stub.GetMessages, request, timeout)

    async def get_attachment(
        self, user_id: str, id: str, attachment_id: str, *, timeout: float | None = None
    ) -> mail_pb2.AttachmentContent:
        request = mail_pb2.AttachmentRef(user_id=user_id, id=id, attachment_id=attachment_id)
        return await self._call(self._stub.GetAttachment, request, timeout)

    async def update_message(
        self,
        user_id: str,
        id: str,
        *,
        unread: bool | None = None,
        starred: bool | None = None,
        folder_id: str | None = None,
        answered: bool | None = None,
        draft: bool | None = None,
        deleted: bool | None = None,
        add_keywords: Iterable[str] = (),
        remove_keywords: Iterable[str] = (),
        timeout: float | None = None,
    ) -> types_pb2.MessageSummary:
        """Set a message's cells: None leaves one unchanged. ``answered``, ``draft`` and ``deleted``
        are IMAP's \\Answered, \\Draft and \\Deleted (marked, not deleted: see delete_message);
        keywords (IMAP atoms, e.g. ``$Forwarded``) are added and removed, at most 32 a message."""
        request = update_request(user_id, id, unread=unread, starred=starred, folder_id=folder_id, answered=answered,
                                 draft=draft, deleted=deleted, add_keywords=add_keywords, remove_keywords=remove_keywords)
        return await self._call(self._stub.UpdateMessage, request, timeout)

    async def delete_message(self, user_id: str, id: str, *, timeout: float | None = None) -> bool:
        """Move to Trash, or expunge when already in Trash; True when gone for good."""
        result = await self._call(self._stub.DeleteMessage, mail_pb2.MessageRef(user_id=user_id, id=id), timeout)
        return bool(result.expunged)

    async def get_thread(self, user_id: str, thread_id: str, *, timeout: float | None = None) -> mail_pb2.Thread:
        return await self._call(
            self._stub.GetThread, mail_pb2.ThreadRef(user_id=user_id, thread_id=thread_id), timeout
        )

    async def search(
        self,
        user_id: str,
        query: str,
        *,
        limit: int = 50,
        cursor: str = "",
        timeout: float | None = None,
    ) -> mail_pb2.MessagePage:
        request = mail_pb2.SearchRequest(user_id=user_id, query=query, limit=limit, cursor=cursor)
        return await self._call(self._stub.Search, request, timeout)

    def iter_search(
        self, user_id: str, query: str, *, page_size: int = 50, max_items: int | None = None
    ) -> MessagePager:
        async def fetch(cursor: str) -> mail_pb2.MessagePage:
            return await self.search(user_id, query, limit=page_size, cursor=cursor)

        return MessagePager(fetch, max_items=max_items)

    # -- custom folders and drafts ----------------------------------------------------------
    async def folder_list(self, user_id: str, *, timeout: float | None = None) -> mail_pb2.FolderList:
        """`ListFolders` whole: the folders and the mailbox state they were read at."""
        return await self._call(self._stub.ListFolders, mail_pb2.UserRef(user_id=user_id), timeout)

    async def create_folder(self, user_id: str, name: str, *, timeout: float | None = None) -> types_pb2.Folder:
        """A custom folder; `AlreadyExists` ("folder_exists") when the name is taken, ignoring case."""
        return await self._call(self._stub.CreateFolder, mail_pb2.CreateFolderRequest(user_id=user_id, name=name),
                                timeout)

    async def rename_folder(
        self, user_id: str, folder_id: str, name: str, *, timeout: float | None = None
    ) -> types_pb2.Folder:
        request = mail_pb2.RenameFolderRequest(user_id=user_id, folder_id=folder_id, name=name)
        return await self._call(self._stub.RenameFolder, request, timeout)

    async def delete_folder(self, user_id: str, folder_id: str, *, timeout: float | None = None) -> None:
        """Only an empty custom folder (`FailedPrecondition` "folder_not_empty" / "system_folder")."""
        await self._call(self._stub.DeleteFolder, mail_pb2.FolderRef(user_id=user_id, folder_id=folder_id), timeout)

    async def save_draft(
        self, user_id: str, entry_id: str, raw: bytes, *, replaces: str = "", timeout: float | None = None
    ) -> types_pb2.MessageSummary:
        """Store a draft under `entry_id` (a new id each save; reuse it on a retry), expunging
        the draft it `replaces`."""
        request = mail_pb2.SaveDraftRequest(user_id=user_id, entry_id=entry_id, raw=raw, replaces=replaces)
        return await self._call(self._stub.SaveDraft, request, timeout)

    async def send_draft(
        self, user_id: str, id: str, entry_id: str, *, mail_from: str, idempotency_key: str = "",
        timeout: float | None = None,
    ) -> mail_pb2.DeliverResponse:
        """Send draft `id` as `deliver` would for its user (under a new `entry_id`), then expunge it."""
        request = mail_pb2.SendDraftRequest(user_id=user_id, id=id, entry_id=entry_id, mail_from=mail_from,
                                            idempotency_key=idempotency_key)
        return await self._call(self._stub.SendDraft, request, timeout)


class AdminClient(_BaseClient):
    """The admin API (hosted domains, users): what the CLI calls."""

    _retry_methods = tuple((_ADMIN, m) for m in _IDEMPOTENT_ADMIN)

    def __init__(self, target: str, **kwargs: Any) -> None:
        super().__init__(target, **kwargs)
        self._stub = mail_pb2_grpc.AdminStub(self._channel)

    async def add_domain(self, domain: str, *, timeout: float | None = None) -> mail_pb2.AddDomainResponse:
        return await self._call(self._stub.AddDomain, mail_pb2.AddDomainRequest(domain=domain), timeout)

    async def add_user(self, email: str, password: str, *, timeout: float | None = None) -> types_pb2.Account:
        return await self._call(self._stub.AddUser, mail_pb2.AddUserRequest(email=email, password=password), timeout)


__all__ = ["MailClient", "AdminClient", "MetadataHook", "channel_options", "DEFAULT_TIMEOUT"]
