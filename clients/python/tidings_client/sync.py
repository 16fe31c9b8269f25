"""The sync twin of `tidings_client.client`: the same calls over a blocking `grpc` channel.

    with SyncMailClient("127.0.0.1:7000") as mail:
        account = mail.authenticate("ann@example.test", "pw")
        for summary in mail.iter_messages(account.user_id, "inbox"):
            print(summary.subject)

For scripts, notebooks and threaded servers (`watch`, the endless feed, is asyncio's
only). Channel options (retries of the
idempotent calls in the service config, message sizes, keepalive), default
deadline and typed errors are those of the asyncio client.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from types import TracebackType
from typing import Any, Self

import grpc
from google.protobuf.message import Message

from tidings.v1 import mail_pb2, mail_pb2_grpc, types_pb2

from .client import (
    _ADMIN,
    _IDEMPOTENT_ADMIN,
    _IDEMPOTENT_MAIL,
    _MAIL,
    DEFAULT_TIMEOUT,
    channel_options,
    deliver_request,
    update_request,
)
from .errors import from_rpc_error
from .paging import SyncMessagePager


class _SyncBaseClient:
    _retry_methods: Sequence[tuple[str, str]] = ()

    def __init__(
        self,
        target: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        credentials: grpc.ChannelCredentials | None = None,
        channel: grpc.Channel | None = None,
    ) -> None:
        self.target = target
        self.timeout = timeout
        if channel is not None:
            self._channel = channel
            self._owns_channel = False
        else:
            options = channel_options(self._retry_methods)
            self._channel = (
                grpc.secure_channel(target, credentials, options=options)
                if credentials is not None
                else grpc.insecure_channel(target, options=options)
            )
            self._owns_channel = True

    @property
    def channel(self) -> grpc.Channel:
        return self._channel

    def _call(self, method: Any, request: Message, timeout: float | None) -> Any:
        try:
            return method(request, timeout=self.timeout if timeout is None else timeout)
        except grpc.RpcError as err:
            raise from_rpc_error(err) from None

    def close(self) -> None:
        if self._owns_channel:
            self._channel.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class SyncMailClient(_SyncBaseClient):
    """The mail API, blocking: the methods of `MailClient`, without `await`."""

    _retry_methods = tuple((_MAIL, m) for m in _IDEMPOTENT_MAIL)

    def __init__(self, target: str, **kwargs: Any) -> None:
        super().__init__(target, **kwargs)
        self._stub = mail_pb2_grpc.MailStub(self._channel)

    def authenticate(self, email: str, password: str, *, timeout: float | None = None) -> types_pb2.Account:
        return self._call(self._stub.Authenticate, mail_pb2.AuthenticateRequest(email=email, password=password), timeout)

    def check_recipient(self, address: str, *, timeout: float | None = None) -> mail_pb2.CheckRecipientResponse:
        return self._call(self._stub.CheckRecipient, mail_pb2.CheckRecipientRequest(address=address), timeout)

    def deliver(
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
        request = deliver_request(entry_id, raw, recipients, folder_id=folder_id, sender_user_id=sender_user_id,
                                  mail_from=mail_from, idempotency_key=idempotency_key,
                                  request_hash=request_hash, message_id=message_id)
        return self._call(self._stub.Deliver, request, timeout)

    def list_folders(self, user_id: str, *, timeout: float | None = None) -> list[types_pb2.Folder]:
        return list(self._call(self._stub.ListFolders, mail_pb2.UserRef(user_id=user_id), timeout).folders)

    def mailbox_state(self, user_id: str, *, timeout: float | None = None) -> int:
        """The mailbox's current state (MODSEQ), as `ListFolders` reads it."""
        return int(self._call(self._stub.ListFolders, mail_pb2.UserRef(user_id=user_id), timeout).state)

    def changes(self, user_id: str, since: int, limit: int = 0, *, timeout: float | None = None
                ) -> mail_pb2.ChangesResponse:
        """The changes after state `since`, as `MailClient.changes` (`CannotCalculateChanges`
        for a state older than the feed keeps)."""
        request = mail_pb2.ChangesRequest(user_id=user_id, since=since, limit=limit)
        return self._call(self._stub.Changes, request, timeout)

    def list_messages(
        self,
        user_id: str,
        folder_id: str,
        *,
        unread_only: bool = False,
        limit: int = 50,
        cursor: str = "",
        timeout: float | None = None,
    ) -> mail_pb2.MessagePage:
        request = mail_pb2.ListMessagesRequest(
            user_id=user_id, folder_id=folder_id, unread_only=unread_only, limit=limit, cursor=cursor
        )
        return self._call(self._stub.ListMessages, request, timeout)

    def iter_messages(
        self,
        user_id: str,
        folder_id: str,
        *,
        unread_only: bool = False,
        page_size: int = 50,
        max_items: int | None = None,
    ) -> SyncMessagePager:
        def fetch(cursor: str) -> mail_pb2.MessagePage:
            return self.list_messages(user_id, folder_id, unread_only=unread_only, limit=page_size, cursor=cursor)

        return SyncMessagePager(fetch, max_items=max_items)

    def get_message(self, user_id: str, id: str, *, timeout: float | None = None) -> types_pb2.MessageDetail:
        return self._call(self._stub.GetMessage, mail_pb2.MessageRef(user_id=user_id, id=id), timeout)

    def get_raw_message(self, user_id: str, id: str, *, timeout: float | None = None) -> bytes:
        return bytes(self._call(self._stub.GetRawMessage, mail_pb2.MessageRef(user_id=user_id, id=id), timeout).raw)

    def get_attachment(
        self, user_id: str, id: str, attachment_id: str, *, timeout: float | None = None
    ) -> mail_pb2.AttachmentContent:
        request = mail_pb2.AttachmentRef(user_id=user_id, id=id, attachment_id=attachment_id)
        return self._call(self._stub.GetAttachment, request, timeout)

    def update_message(
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
        return self._call(self._stub.UpdateMessage, request, timeout)

    def delete_message(self, user_id: str, id: str, *, timeout: float | None = None) -> bool:
        """Move to Trash, or expunge when already in Trash; True when gone for good."""
        return bool(self._call(self._stub.DeleteMessage, mail_pb2.MessageRef(user_id=user_id, id=id), timeout).expunged)

    def get_thread(self, user_id: str, thread_id: str, *, timeout: float | None = None) -> mail_pb2.Thread:
        return self._call(self._stub.GetThread, mail_pb2.ThreadRef(user_id=user_id, thread_id=thread_id), timeout)

    def search(
        self, user_id: str, query: str, *, limit: int = 50, cursor: str = "", timeout: float | None = None
    ) -> mail_pb2.MessagePage:
        request = mail_pb2.SearchRequest(user_id=user_id, query=query, limit=limit, cursor=cursor)
        return self._call(self._stub.Search, request, timeout)

    def iter_search(
        self, user_id: str, query: str, *, page_size: int = 50, max_items: int | None = None
    ) -> SyncMessagePager:
        def fetch(cursor: str) -> mail_pb2.MessagePage:
            return self.search(user_id, query, limit=page_size, cursor=cursor)

        return SyncMessagePager(fetch, max_items=max_items)


class SyncAdminClient(_SyncBaseClient):
    """The admin API (hosted domains, users), blocking."""

    _retry_methods = tuple((_ADMIN, m) for m in _IDEMPOTENT_ADMIN)

    def __init__(self, target: str, **kwargs: Any) -> None:
        super().__init__(target, **kwargs)
        self._stub = mail_pb2_grpc.AdminStub(self._channel)

    def add_domain(self, domain: str, *, timeout: float | None = None) -> mail_pb2.AddDomainResponse:
        return self._call(self._stub.AddDomain, mail_pb2.AddDomainRequest(domain=domain), timeout)

    def add_user(self, email: str, password: str, *, timeout: float | None = None) -> types_pb2.Account:
        return self._call(self._stub.AddUser, mail_pb2.AddUserRequest(email=email, password=password), timeout)


__all__ = ["SyncMailClient", "SyncAdminClient"]
