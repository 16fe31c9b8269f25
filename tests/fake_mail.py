"""A TEST DOUBLE of the router's ``tidings.v1.Mail`` service, for the edges' unit tests.

:class:`FakeMail` is a real ``grpc.aio`` server on a loopback port (bound to port 0, the
port read back) over a small in-memory model: hosted domains, users with passwords and
each user's messages (a ``MessageDetail`` whose summary carries folder and flags, the raw
bytes, the attachment contents). It answers every ``Mail`` call from that model the way
the router does: recipients are local users, unknown users of hosted domains or not
hosted; ``Deliver`` stores one copy per user and a read copy in the sender's Sent;
``DeleteMessage`` moves to Trash, and from Trash expunges; unknown ids are NOT_FOUND;
custom folders (``CreateFolder``/``RenameFolder``/``DeleteFolder``, ids "f" and 8 hex digits,
listed after the system folders, the router's refusal details) and drafts (``SaveDraft`` keeps
a read copy in Drafts under a new id; ``SendDraft`` delivers it without its Bcc field as
``Deliver`` would, then drops it) follow the router's rules near enough for the edges;
listings are newest first, paged by an opaque cursor. Each mutation (a stored copy, a flag
change, a move, a delete) appends a ``MailboxChange`` to the user's feed with the next MODSEQ,
which ``Changes`` pages and ``Watch`` streams, and ``Mailbox`` folds into a folder's view (listings
carry the feed's ``state``; a ``since``
below :meth:`FakeMail.compact`'s mark is FAILED_PRECONDITION "cannot_calculate_changes", one past
the feed's end has no changes yet, as with the router; :meth:`FakeMail.break_watches` breaks the open streams with
UNAVAILABLE, as a router restart would). It records every request
(``calls``, ``delivered``, ``checked``) and can be told to fail calls with a chosen status
and details (:meth:`FakeMail.fail`, or the SMTP tests' ``fail_check`` / ``fail_deliver`` /
``fail_authenticate``), to hold them (``delays``, with ``entered`` to see one arrive), or
to answer a recipient check its own way (``verdicts``). It stands in for the router in
edge unit tests only; the cluster tests (tests/smtp/test_smtp_cluster.py,
tests/http/test_http_cluster.py) run the edges against the real processes.

Async tests use ``async with FakeMail() as fake``; tests that must stay synchronous
(``smtplib`` against the SMTP edge) serve it on a :class:`LoopThread` with
:meth:`FakeMail.served_on`.
"""
from __future__ import annotations

import asyncio
import functools
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, NoReturn, TypeVar

import grpc

from tidings.v1 import mail_pb2, mail_pb2_grpc, types_pb2
from tidings_runtime.kept_headers import kept
from tidings_runtime.mime import Address, find_attachment, parse_mail
from tidings_runtime.partitions import SYSTEM_FOLDERS

T = TypeVar("T")
Status = mail_pb2.CheckRecipientResponse.Status
Change = types_pb2.MailboxChange
Handler = Callable[["FakeMail", Any, grpc.aio.ServicerContext], Awaitable[T]]
DEFAULT_LIMIT = 50
CHANGES_LIMIT, MAX_CHANGES_LIMIT = 256, 1024


class LoopThread:
    """An asyncio loop in a daemon thread; ``run`` executes a coroutine there."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coroutine: Awaitable[T], timeout: float = 30) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)  # type: ignore[arg-type]

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        self.loop.close()


@dataclass
class Failure:
    """What an injected failure answers; ``times`` calls left, None: until cleared."""

    code: grpc.StatusCode
    details: str = "injected"
    times: int | None = None


@dataclass
class StoredMessage:
    detail: types_pb2.MessageDetail        # detail.summary: id, thread, folder, flags
    raw: bytes = b""
    attachments: dict[str, mail_pb2.AttachmentContent] = field(default_factory=dict)

    @property
    def summary(self) -> types_pb2.MessageSummary:
        return self.detail.summary


@dataclass
class User:
    account: types_pb2.Account
    password: str
    messages: dict[str, StoredMessage] = field(default_factory=dict)
    changes: list[types_pb2.MailboxChange] = field(default_factory=list)  # the feed, MODSEQ order
    low_water: int = 0                                                     # compacted through here
    uids: dict[str, int] = field(default_factory=dict)                     # folder -> last UID
    folders: dict[str, str] = field(default_factory=dict)                  # custom folder id -> name

    @property
    def modseq(self) -> int:
        return self.changes[-1].modseq if self.changes else self.low_water

    def after(self, since: int) -> list[types_pb2.MailboxChange]:
        return [c for c in self.changes if c.modseq > since]

    def too_old(self, since: int) -> bool:
        return since < self.low_water


async def _before(fake: FakeMail, name: str, request: Any, context: grpc.aio.ServicerContext) -> None:
    """What every served call does first: recorded, delayed, failed if told to."""
    fake.calls.setdefault(name, []).append(request)
    fake.entered(name).set()
    if delay := fake.delays.get(name):
        await asyncio.sleep(delay)
    failure = fake.failures.get(name)
    if failure is not None:
        if failure.times is not None:
            failure.times -= 1
            if failure.times <= 0:
                del fake.failures[name]
        await _abort(context, failure.code, failure.details)


def _served(handler: Handler[T]) -> Handler[T]:
    """Record the call, then apply any delay and injected failure before ``handler`` runs."""

    @functools.wraps(handler)
    async def serve(fake: FakeMail, request: Any, context: grpc.aio.ServicerContext) -> T:
        await _before(fake, handler.__name__, request, context)
        return await handler(fake, request, context)

    return serve


def _served_stream(handler: Callable[[FakeMail, Any, grpc.aio.ServicerContext], AsyncIterator[T]]
                   ) -> Callable[[FakeMail, Any, grpc.aio.ServicerContext], AsyncIterator[T]]:
    """``_served`` for a server-streaming method: recorded, delayed, failed before its first answer."""

    @functools.wraps(handler)
    async def serve(fake: FakeMail, request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[T]:
        await _before(fake, handler.__name__, request, context)
        async for item in handler(fake, request, context):
            yield item

    return serve


class _Injected:
    """``fake.fail_deliver = code`` and the like: every call of the method fails with
    ``code`` (details "injected"); None stops it."""

    def __init__(self, method: str) -> None:
        self.method = method

    def __get__(self, fake: FakeMail | None, owner: type | None = None) -> Any:
        if fake is None:
            return self
        failure = fake.failures.get(self.method)
        return None if failure is None else failure.code

    def __set__(self, fake: FakeMail, code: grpc.StatusCode | None) -> None:
        if code is None:
            fake.failures.pop(self.method, None)
        else:
            fake.fail(self.method, code)


async def _abort(context: grpc.aio.ServicerContext, code: grpc.StatusCode, details: str) -> NoReturn:
    await context.abort(code, details)
    raise AssertionError("context.abort returned")


async def _not_found(context: grpc.aio.ServicerContext, what: str) -> NoReturn:
    await _abort(context, grpc.StatusCode.NOT_FOUND, f"no {what}")


async def _cannot_calculate(context: grpc.aio.ServicerContext, since: int) -> NoReturn:
    await _abort(context, grpc.StatusCode.FAILED_PRECONDITION,
                 f"cannot_calculate_changes: state {since} is not in the change feed; resync")


def _mailbox_key(address: str) -> str:
    """Who an address names, near enough for the edges' tests: the domain in lower case."""
    local, at, domain = address.rpartition("@")
    return f"{local}{at}{domain.lower()}"


def _addresses(items: Iterable[Address]) -> list[types_pb2.Address]:
    return [types_pb2.Address(name=name, email=email) for name, email in items]


def _newest_first(messages: Iterable[StoredMessage]) -> list[types_pb2.MessageSummary]:
    return sorted((m.summary for m in messages), key=lambda s: (s.received_ms, s.id), reverse=True)


def _changes(user: User, since: int, limit: int) -> mail_pb2.ChangesResponse:
    after = user.after(since)
    page = after[:min(limit or CHANGES_LIMIT, MAX_CHANGES_LIMIT)]
    return mail_pb2.ChangesResponse(old_state=since, new_state=page[-1].modseq if page else since,
                                    has_more=len(page) < len(after), changes=page)


def _keep_headers(summary: types_pb2.MessageSummary, raw: bytes) -> None:
    block = kept(raw)
    if block is not None:
        summary.headers = block


def _page(messages: Iterable[StoredMessage], limit: int, cursor: str) -> mail_pb2.MessagePage:
    """Newest first; the cursor is the offset of the next page (opaque to the edges)."""
    ordered = _newest_first(messages)
    start, limit = int(cursor or 0), limit or DEFAULT_LIMIT
    more = start + limit < len(ordered)
    return mail_pb2.MessagePage(messages=ordered[start:start + limit], total=len(ordered),
                                next_cursor=str(start + limit) if more else "")


@dataclass
class FakeMail(mail_pb2_grpc.MailServicer):
    """Test double of ``tidings.v1.Mail`` (see the module docstring)."""

    domains: set[str] = field(default_factory=set)
    users: dict[str, User] = field(default_factory=dict)       # by user id
    calls: dict[str, list[Any]] = field(default_factory=dict)  # method -> requests, as received
    delivered: list[mail_pb2.DeliverRequest] = field(default_factory=list)  # the accepted ones
    failures: dict[str, Failure] = field(default_factory=dict)
    delays: dict[str, float] = field(default_factory=dict)     # method -> seconds held
    verdicts: dict[str, mail_pb2.CheckRecipientResponse] = field(default_factory=dict)
    address: str = ""
    watching: int = 0                                          # Watch streams open now
    _entered: dict[str, threading.Event] = field(default_factory=dict)
    _server: Any = None
    _loop: asyncio.AbstractEventLoop | None = None
    _changed: asyncio.Event | None = None                      # set (and replaced) on each change
    _broken: asyncio.Event | None = None                       # set (and replaced) by break_watches
    _breaks: int = 0                                           # break_watches so far

    fail_check = _Injected("CheckRecipient")
    fail_deliver = _Injected("Deliver")
    fail_authenticate = _Injected("Authenticate")

    # -- the model

    def add_domain(self, domain: str) -> None:
        self.domains.add(domain.lower())

    def add_user(self, email: str, password: str, *, user_id: str = "") -> types_pb2.Account:
        """A user of a hosted domain (hosted from now on); ids are made up unless given."""
        self.add_domain(email.rpartition("@")[2])
        account = types_pb2.Account(user_id=user_id or f"{len(self.users) + 1:016x}", email=email)
        self.users[account.user_id] = User(account, password)
        return account

    def store(self, user_id: str, summary: types_pb2.MessageSummary, *, raw: bytes = b"",
              attachments: Iterable[mail_pb2.AttachmentContent] = (), **detail: Any) -> StoredMessage:
        """Put a message in a user's mailbox as is; ``detail``: the other MessageDetail fields."""
        contents = {a.info.id: a for a in attachments}
        message = StoredMessage(types_pb2.MessageDetail(
            summary=summary, attachments=[a.info for a in contents.values()], **detail), raw, contents)
        self.users[user_id].messages[summary.id] = message
        self.record(user_id, Change.MESSAGE_NEW, summary.id, folder_id=summary.folder_id,
                    thread_id=summary.thread_id)
        return message

    # -- the change feed

    def record(self, user_id: str, kind: types_pb2.MailboxChange.Kind.ValueType, id: str, *, folder_id: str = "",
               thread_id: str = "", from_folder_id: str = "") -> types_pb2.MailboxChange:
        """Append a change to ``user_id``'s feed (the next MODSEQ; a new UID in ``folder_id`` for
        a new or moved message) and wake the open ``Watch`` streams."""
        user = self.users[user_id]
        change = Change(modseq=user.modseq + 1, kind=kind, id=id, folder_id=folder_id, thread_id=thread_id,
                        time_ms=int(time.time() * 1000))
        if kind == Change.MESSAGE_NEW or from_folder_id:
            change.uid = user.uids[folder_id] = user.uids.get(folder_id, 0) + 1
        if from_folder_id:
            change.from_folder_id = from_folder_id
        user.changes.append(change)
        self._notify(self._changed)
        return change

    def compact(self, user_id: str, through: int) -> None:
        """Forget ``user_id``'s changes up to MODSEQ ``through``: an older ``since`` cannot be answered."""
        user = self.users[user_id]
        user.low_water = max(user.low_water, through)
        user.changes = user.after(through)

    def break_watches(self) -> None:
        """End every open ``Watch`` stream with UNAVAILABLE, as a router going away would."""
        self._notify(self._broken)

    def _notify(self, event: asyncio.Event | None) -> None:
        loop = self._loop
        if event is None or loop is None:
            return
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._fire(event)
        else:
            loop.call_soon_threadsafe(self._fire, event)

    def _fire(self, event: asyncio.Event) -> None:
        if event is self._changed:
            self._changed = asyncio.Event()
        elif event is self._broken:
            self._broken = asyncio.Event()
            self._breaks += 1
        event.set()

    def mailbox(self, user_id: str, folder_id: str) -> list[types_pb2.MessageSummary]:
        """The summaries in one folder, newest first."""
        return _newest_first(self._in_folder(self._user(user_id), folder_id, False))

    def fail(self, method: str, code: grpc.StatusCode, details: str = "injected",
             times: int | None = None) -> None:
        """Make calls of ``method`` fail with ``code``: the next ``times`` ones, or all until cleared."""
        self.failures[method] = Failure(code, details, times)

    def entered(self, method: str) -> threading.Event:
        """Set once a call of ``method`` arrived (before its delay and failure)."""
        return self._entered.setdefault(method, threading.Event())

    @property
    def checked(self) -> list[str]:
        return [r.address for r in self.calls.get("CheckRecipient", [])]

    def _user(self, user_id: str) -> User:
        """The user with that id; an unknown id has an empty mailbox, as with the router."""
        return self.users.get(user_id) or User(types_pb2.Account(user_id=user_id), "")

    def _find(self, address: str) -> User | None:
        key = _mailbox_key(address)
        return next((u for u in self.users.values() if _mailbox_key(u.account.email) == key), None)

    @staticmethod
    def _in_folder(user: User, folder_id: str, unread_only: bool) -> list[StoredMessage]:
        return [m for m in user.messages.values()
                if m.summary.folder_id == folder_id and (m.summary.unread or not unread_only)]

    def _keep(self, user: User, raw: bytes, folder_id: str, unread: bool) -> StoredMessage:
        """Store ``raw`` as the router would: parsed, threaded under a known parent."""
        parsed = parse_mail(raw)
        new_id = uuid.uuid4().hex[:16]
        thread_id = next((m.summary.thread_id for m in user.messages.values()
                          if parsed.in_reply_to and m.detail.message_id == parsed.in_reply_to), new_id)
        summary = types_pb2.MessageSummary(
            id=new_id, thread_id=thread_id, folder_id=folder_id, to=_addresses(parsed.to),
            cc=_addresses(parsed.cc), subject=parsed.subject, snippet=parsed.snippet,
            received_ms=int(time.time() * 1000), size=len(raw), unread=unread,
            has_attachments=bool(parsed.attachments))
        if parsed.from_:
            getattr(summary, "from").CopyFrom(_addresses(parsed.from_)[0])
        contents = []
        for part in parsed.attachments:
            found = find_attachment(raw, part.id)
            contents.append(mail_pb2.AttachmentContent(info=types_pb2.AttachmentInfo(
                id=part.id, filename=part.filename, content_type=part.content_type, size=part.size),
                content=found[1] if found else b""))
        return self.store(user.account.user_id, summary, raw=raw, attachments=contents,
                          message_id=parsed.rfc822_msgid, in_reply_to=parsed.in_reply_to,
                          references=parsed.references, text=parsed.text, html=parsed.html,
                          bcc=_addresses(parsed.bcc))

    async def _message(self, user_id: str, message_id: str,
                       context: grpc.aio.ServicerContext) -> StoredMessage:
        message = self._user(user_id).messages.get(message_id)
        return message if message is not None else await _not_found(context, f"message {message_id}")

    # -- the service

    @_served
    async def Authenticate(self, request: mail_pb2.AuthenticateRequest,
                           context: grpc.aio.ServicerContext) -> types_pb2.Account:
        user = self._find(request.email)
        if user is None or user.password != request.password:
            await _abort(context, grpc.StatusCode.UNAUTHENTICATED, "wrong email or password")
        return user.account

    @_served
    async def CheckRecipient(self, request: mail_pb2.CheckRecipientRequest,
                             context: grpc.aio.ServicerContext) -> mail_pb2.CheckRecipientResponse:
        if request.address in self.verdicts:
            return self.verdicts[request.address]
        user = self._find(request.address)
        if user is not None:
            return mail_pb2.CheckRecipientResponse(status=Status.LOCAL_USER, account=user.account)
        hosted = request.address.rpartition("@")[2].lower() in self.domains
        return mail_pb2.CheckRecipientResponse(status=Status.UNKNOWN_USER if hosted else Status.NOT_HOSTED)

    @_served
    async def Deliver(self, request: mail_pb2.DeliverRequest,
                      context: grpc.aio.ServicerContext) -> mail_pb2.DeliverResponse:
        users: dict[str, tuple[str, User]] = {}   # one copy a user
        queued: list[str] = []                    # the router's outgoing queue, for a sending user
        for recipient in request.recipients:
            if request.sender_user_id and recipient.rpartition("@")[2].lower() not in self.domains:
                queued.append(recipient)
                continue
            user = self._find(recipient)
            if user is None:
                await _abort(context, grpc.StatusCode.FAILED_PRECONDITION, f"no user {recipient}")
            users.setdefault(user.account.user_id, (recipient, user))
        if request.sender_user_id and request.sender_user_id not in self.users:
            await _abort(context, grpc.StatusCode.FAILED_PRECONDITION, f"no user {request.sender_user_id}")
        response = mail_pb2.DeliverResponse(queued=queued)
        for recipient, user in users.values():
            copy = self._keep(user, request.raw, request.folder_id or "inbox", True)
            response.deliveries.add(recipient=recipient, user_id=user.account.user_id, id=copy.summary.id,
                                    thread_id=copy.summary.thread_id)
        if request.sender_user_id:
            copy = self._keep(self.users[request.sender_user_id], request.raw, "sent", False)
            response.sent_copy.CopyFrom(mail_pb2.DeliverResponse.Delivery(
                user_id=request.sender_user_id, id=copy.summary.id, thread_id=copy.summary.thread_id))
        self.delivered.append(request)
        return response

    @_served
    async def ListFolders(self, request: mail_pb2.UserRef,
                          context: grpc.aio.ServicerContext) -> mail_pb2.FolderList:
        user = self._user(request.user_id)
        return mail_pb2.FolderList(folders=[
            types_pb2.Folder(id=role, name=role.capitalize(), role=role,
                             total=len(self._in_folder(user, role, False)),
                             unread=len(self._in_folder(user, role, True)))
            for role in SYSTEM_FOLDERS] + [
            types_pb2.Folder(id=folder_id, name=name, total=len(self._in_folder(user, folder_id, False)),
                             unread=len(self._in_folder(user, folder_id, True)))
            for folder_id, name in sorted(user.folders.items(), key=lambda f: f[1].casefold())], state=user.modseq)

    @_served
    async def ListMessages(self, request: mail_pb2.ListMessagesRequest,
                           context: grpc.aio.ServicerContext) -> mail_pb2.MessagePage:
        user = self._user(request.user_id)
        page = _page(self._in_folder(user, request.folder_id, request.unread_only), request.limit, request.cursor)
        page.state = user.modseq
        if request.headers:     # as the storage node keeps them
            for summary in page.messages:
                _keep_headers(summary, user.messages[summary.id].raw)
        return page

    @_served
    async def GetMessages(self, request: mail_pb2.GetMessagesRequest,
                          context: grpc.aio.ServicerContext) -> mail_pb2.Messages:
        user = self._user(request.user_id)
        answer = mail_pb2.Messages()
        for message_id in dict.fromkeys(request.ids):
            held = user.messages.get(message_id)
            if held is None:
                answer.missing.append(message_id)
                continue
            found = answer.messages.add(summary=held.summary, raw=held.raw if request.raw else b"")
            if request.headers:
                _keep_headers(found.summary, held.raw)
        return answer

    @_served
    async def GetMessage(self, request: mail_pb2.MessageRef,
                         context: grpc.aio.ServicerContext) -> types_pb2.MessageDetail:
        return (await self._message(request.user_id, request.id, context)).detail

    @_served
    async def GetRawMessage(self, request: mail_pb2.MessageRef,
                            context: grpc.aio.ServicerContext) -> mail_pb2.RawMessage:
        return mail_pb2.RawMessage(raw=(await self._message(request.user_id, request.id, context)).raw)

    @_served
    async def GetAttachment(self, request: mail_pb2.AttachmentRef,
                            context: grpc.aio.ServicerContext) -> mail_pb2.AttachmentContent:
        message = await self._message(request.user_id, request.id, context)
        found = message.attachments.get(request.attachment_id)
        return found if found is not None else await _not_found(context, f"attachment {request.attachment_id}")

    @_served
    async def UpdateMessage(self, request: mail_pb2.UpdateRequest,
                            context: grpc.aio.ServicerContext) -> types_pb2.MessageSummary:
        summary = (await self._message(request.user_id, request.id, context)).summary
        if request.HasField("folder_id") and request.folder_id not in SYSTEM_FOLDERS \
                and request.folder_id not in self._user(request.user_id).folders:
            await _not_found(context, f"folder {request.folder_id!r}")
        before = summary.folder_id
        for name in ("unread", "starred", "folder_id", "answered", "draft", "deleted"):
            if request.HasField(name):
                setattr(summary, name, getattr(request, name))
        gone = {k.lower() for k in request.remove_keywords}
        held = {k.lower(): k for k in [*summary.keywords, *request.add_keywords] if k.lower() not in gone}
        summary.ClearField("keywords")
        summary.keywords.extend(held[k] for k in sorted(held))
        self.record(request.user_id, Change.MESSAGE_UPDATED, summary.id, folder_id=summary.folder_id,
                    thread_id=summary.thread_id, from_folder_id=before if before != summary.folder_id else "")
        return summary

    @_served
    async def DeleteMessage(self, request: mail_pb2.MessageRef,
                            context: grpc.aio.ServicerContext) -> mail_pb2.DeleteResponse:
        summary = (await self._message(request.user_id, request.id, context)).summary
        if summary.folder_id != "trash":
            before, summary.folder_id = summary.folder_id, "trash"
            self.record(request.user_id, Change.MESSAGE_UPDATED, summary.id, folder_id="trash",
                        thread_id=summary.thread_id, from_folder_id=before)
            return mail_pb2.DeleteResponse(expunged=False)
        del self._user(request.user_id).messages[request.id]
        self.record(request.user_id, Change.MESSAGE_DELETED, summary.id, folder_id="trash",
                    thread_id=summary.thread_id)
        return mail_pb2.DeleteResponse(expunged=True)

    @_served
    async def GetThread(self, request: mail_pb2.ThreadRef,
                        context: grpc.aio.ServicerContext) -> mail_pb2.Thread:
        messages = [m.summary for m in self._user(request.user_id).messages.values()
                    if m.summary.thread_id == request.thread_id]
        if not messages:
            await _not_found(context, f"thread {request.thread_id}")
        return mail_pb2.Thread(id=request.thread_id,
                               messages=sorted(messages, key=lambda s: (s.received_ms, s.id)))

    @_served
    async def Search(self, request: mail_pb2.SearchRequest,
                     context: grpc.aio.ServicerContext) -> mail_pb2.MessagePage:
        """Every word of the query in the subject, snippet or text (no query language)."""
        words, user = request.query.lower().split(), self._user(request.user_id)
        found = [m for m in user.messages.values()
                 if all(w in f"{m.summary.subject} {m.summary.snippet} {m.detail.text}".lower() for w in words)]
        page = _page(found, request.limit, request.cursor)
        page.state = user.modseq
        return page

    @_served
    async def Changes(self, request: mail_pb2.ChangesRequest,
                      context: grpc.aio.ServicerContext) -> mail_pb2.ChangesResponse:
        user = self._user(request.user_id)
        if user.too_old(request.since):
            await _cannot_calculate(context, request.since)
        return _changes(user, request.since, request.limit)

    @_served_stream
    async def Watch(self, request: mail_pb2.ChangesRequest,
                    context: grpc.aio.ServicerContext) -> AsyncIterator[mail_pb2.ChangesResponse]:
        user, since = self._user(request.user_id), request.since
        if user.too_old(since):
            await _cannot_calculate(context, since)
        assert self._changed is not None and self._broken is not None
        self.watching += 1
        breaks = self._breaks
        try:
            while True:
                changed, broken = self._changed, self._broken
                if self._breaks != breaks:
                    await _abort(context, grpc.StatusCode.UNAVAILABLE, "injected: the stream broke")
                user = self._user(request.user_id)
                if user.after(since):
                    response = _changes(user, since, request.limit)
                    since = response.new_state
                    yield response
                    continue
                waits = [asyncio.ensure_future(changed.wait()), asyncio.ensure_future(broken.wait())]
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                for wait in waits:
                    wait.cancel()
        finally:
            self.watching -= 1

    @_served
    async def Mailbox(self, request: mail_pb2.MailboxRequest,
                      context: grpc.aio.ServicerContext) -> mail_pb2.MailboxView:
        """The folder's view folded from the feed (UIDVALIDITY 1 for every folder), paged by after_uid."""
        user = self._user(request.user_id)
        placed: dict[str, tuple[str, int, int]] = {}  # message id -> (folder, uid, modseq)
        for change in user.changes:
            if change.kind == Change.MESSAGE_DELETED:
                placed.pop(change.id, None)
            elif change.uid:
                placed[change.id] = (change.folder_id, change.uid, change.modseq)
            elif change.id in placed:
                folder, uid, _ = placed[change.id]
                placed[change.id] = (folder, uid, change.modseq)
        entries = sorted((uid, id, modseq) for id, (folder, uid, modseq) in placed.items()
                         if folder == request.folder_id and uid > request.after_uid)
        limit = request.limit or 10_000
        return mail_pb2.MailboxView(
            uidvalidity=1, uid_next=user.uids.get(request.folder_id, 0) + 1, highest_modseq=user.modseq,
            entries=[types_pb2.MailboxEntry(uid=uid, id=id, modseq=modseq) for uid, id, modseq in entries[:limit]],
            has_more=len(entries) > limit)

    # -- custom folders and drafts

    async def _folder_name(self, user: User, name: str, context: grpc.aio.ServicerContext, but: str = "") -> str:
        name = name.strip()
        if not 1 <= len(name) <= 128 or any(ord(c) < 32 or ord(c) == 127 for c in name):
            await _abort(context, grpc.StatusCode.INVALID_ARGUMENT, "a folder name is 1 to 128 characters, "
                         "no control characters")
        if name.casefold() in SYSTEM_FOLDERS or any(
                n.casefold() == name.casefold() and i != but for i, n in user.folders.items()):
            await _abort(context, grpc.StatusCode.ALREADY_EXISTS, f"folder_exists: a folder named {name!r} exists")
        return name

    async def _custom(self, user: User, folder_id: str, context: grpc.aio.ServicerContext, action: str) -> str:
        if folder_id in SYSTEM_FOLDERS:
            await _abort(context, grpc.StatusCode.FAILED_PRECONDITION,
                         f"system_folder: {folder_id!r} is a system folder; it cannot be {action}")
        if folder_id not in user.folders:
            await _not_found(context, f"folder {folder_id!r}")
        return folder_id

    def _folder(self, user: User, folder_id: str) -> types_pb2.Folder:
        return types_pb2.Folder(id=folder_id, name=user.folders[folder_id],
                                total=len(self._in_folder(user, folder_id, False)),
                                unread=len(self._in_folder(user, folder_id, True)))

    @_served
    async def CreateFolder(self, request: mail_pb2.CreateFolderRequest,
                           context: grpc.aio.ServicerContext) -> types_pb2.Folder:
        user = self._user(request.user_id)
        name = await self._folder_name(user, request.name, context)
        folder_id = f"f{0x10000 + sum(len(u.folders) for u in self.users.values()) + 1:08x}"
        user.folders[folder_id] = name
        self.record(request.user_id, Change.FOLDER_UPDATED, folder_id, folder_id=folder_id)
        return self._folder(user, folder_id)

    @_served
    async def RenameFolder(self, request: mail_pb2.RenameFolderRequest,
                           context: grpc.aio.ServicerContext) -> types_pb2.Folder:
        user = self._user(request.user_id)
        folder_id = await self._custom(user, request.folder_id, context, "renamed")
        user.folders[folder_id] = await self._folder_name(user, request.name, context, but=folder_id)
        self.record(request.user_id, Change.FOLDER_UPDATED, folder_id, folder_id=folder_id)
        return self._folder(user, folder_id)

    @_served
    async def DeleteFolder(self, request: mail_pb2.FolderRef,
                           context: grpc.aio.ServicerContext) -> mail_pb2.DeleteFolderResponse:
        user = self._user(request.user_id)
        folder_id = await self._custom(user, request.folder_id, context, "deleted")
        if self._in_folder(user, folder_id, False):
            await _abort(context, grpc.StatusCode.FAILED_PRECONDITION,
                         f"folder_not_empty: folder {user.folders[folder_id]!r} holds messages")
        del user.folders[folder_id]
        self.record(request.user_id, Change.FOLDER_UPDATED, folder_id, folder_id=folder_id)
        return mail_pb2.DeleteFolderResponse()

    def _drop(self, user: User, message_id: str) -> None:
        summary = user.messages.pop(message_id).summary
        self.record(user.account.user_id, Change.MESSAGE_DELETED, message_id, folder_id=summary.folder_id,
                    thread_id=summary.thread_id)

    async def _draft(self, user_id: str, draft_id: str, context: grpc.aio.ServicerContext) -> StoredMessage:
        draft = self._user(user_id).messages.get(draft_id)
        if draft is None or draft.summary.folder_id != "drafts":
            await _not_found(context, f"draft {draft_id}")
        return draft

    @_served
    async def SaveDraft(self, request: mail_pb2.SaveDraftRequest,
                        context: grpc.aio.ServicerContext) -> types_pb2.MessageSummary:
        if not request.raw:
            await _abort(context, grpc.StatusCode.INVALID_ARGUMENT, "empty draft")
        if request.replaces:
            await self._draft(request.user_id, request.replaces, context)
        user = self.users[request.user_id]
        saved = self._keep(user, request.raw, "drafts", False)
        if request.replaces:
            self._drop(user, request.replaces)
        return saved.summary

    @_served
    async def SendDraft(self, request: mail_pb2.SendDraftRequest,
                        context: grpc.aio.ServicerContext) -> mail_pb2.DeliverResponse:
        draft = await self._draft(request.user_id, request.id, context)
        parsed = parse_mail(draft.raw)
        recipients = [email for _, email in (*parsed.to, *parsed.cc, *parsed.bcc)]
        if not recipients:
            await _abort(context, grpc.StatusCode.INVALID_ARGUMENT, "the draft has no recipients")
        head, sep, body = draft.raw.partition(b"\r\n\r\n")
        raw = b"\r\n".join(line for line in head.split(b"\r\n") if not line.lower().startswith(b"bcc:")) + sep + body
        sent = await self.Deliver(mail_pb2.DeliverRequest(
            entry_id=request.entry_id, raw=raw, recipients=recipients, sender_user_id=request.user_id,
            mail_from=request.mail_from, idempotency_key=request.idempotency_key), context)
        self._drop(self.users[request.user_id], request.id)
        sent.message_id = parsed.rfc822_msgid
        return sent

    # -- serving

    async def start(self, port: int = 0) -> None:
        """Serve on 127.0.0.1:``port`` (0: any free port, read back into ``address``)."""
        self._loop = asyncio.get_running_loop()
        self._changed, self._broken = asyncio.Event(), asyncio.Event()
        self._server = grpc.aio.server()
        mail_pb2_grpc.add_MailServicer_to_server(self, self._server)
        port = self._server.add_insecure_port(f"127.0.0.1:{port}")
        await self._server.start()
        self.address = f"127.0.0.1:{port}"

    async def stop(self) -> None:
        await self._server.stop(0)

    async def __aenter__(self) -> FakeMail:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @contextmanager
    def served_on(self, loop: LoopThread) -> Iterator[FakeMail]:
        """Serve on ``loop``'s thread for the ``with`` block, for synchronous tests."""
        loop.run(self.start())
        try:
            yield self
        finally:
            loop.run(self.stop())
