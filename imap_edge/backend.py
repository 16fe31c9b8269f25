"""The mailbox backend: everything the IMAP session asks of the store, through the router's
``tidings.v1.Mail`` via ``tidings_client`` only, as plain values (the session sees no
protobuf and no gRPC). Client errors are translated here, once, into ``BackendError`` kinds
the session answers with ``NO`` and a response code.

Costs, per call: ``folders`` one ListFolders; ``view`` one Mailbox page per 10,000 messages;
``summaries`` one ListMessages page per 200; ``fetched`` and
``some_summaries`` of at most 24 one GetMessages (bodies: one replica's, about 4 MiB an answer);
``append`` a Deliver,
then an UpdateMessage for flags (and one for a custom folder: Deliver files into system folders
only), then Changes pages to learn the UID.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any

from imap_edge.names import Folder, imap_name
from tidings_client import MailClient, errors, new_entry_id
from tidings_runtime import logs

LIST_PAGE = 200    # the router's largest ListMessages / Search page
MANY = 24          # more summaries than this wanted at once: list the folder instead


class BackendError(Exception):
    """A refusal the session answers ``NO [code] text``."""

    code: str | None = None

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


class NoSuchMailbox(BackendError):
    code = "NONEXISTENT"


class Gone(BackendError):
    """The message was expunged meanwhile."""

    code = "EXPUNGEISSUED"


class AlreadyExists(BackendError):
    code = "ALREADYEXISTS"


class Refused(BackendError):
    code = "CANNOT"


class TooOld(BackendError):
    """The feed no longer holds the changes after the session's MODSEQ: read the folder again."""

    code = "CANNOT"


class Unavailable(BackendError):
    code = "UNAVAILABLE"


class BadCredentials(BackendError):
    code = "AUTHENTICATIONFAILED"


@dataclass(frozen=True)
class Account:
    user_id: str
    email: str


@dataclass(frozen=True)
class Summary:
    id: str
    folder_id: str
    unread: bool
    starred: bool
    size: int
    received_ms: int
    answered: bool = False
    draft: bool = False
    deleted: bool = False          # IMAP \Deleted, kept in the store until EXPUNGE
    keywords: tuple[str, ...] = ()
    thread_id: str = ""
    subject: str = ""
    # The kept header fields (MessageSummary.headers) when the read asked for them (with_headers);
    # None: not asked, or the record has none (an old one): ENVELOPE then needs the body.
    headers: bytes | None = None
    with_headers: bool = False

    @property
    def flags(self) -> list[str]:
        """The IMAP flags these cells spell (system flags first, then keywords)."""
        found = [flag for flag, on in (("\\Seen", not self.unread), ("\\Flagged", self.starred),
                                       ("\\Answered", self.answered), ("\\Deleted", self.deleted),
                                       ("\\Draft", self.draft)) if on]
        return found + list(self.keywords)

    @property
    def internal_date(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.received_ms / 1000, dt.UTC)


@dataclass(frozen=True)
class Entry:
    uid: int
    id: str
    modseq: int


@dataclass(frozen=True)
class View:
    uidvalidity: int
    uid_next: int
    highest_modseq: int
    entries: tuple[Entry, ...]


@dataclass(frozen=True)
class Change:
    """A ``MailboxChange``: ``kind`` is "new", "updated", "deleted" or "folder"."""

    modseq: int
    kind: str
    id: str
    folder_id: str
    uid: int
    from_folder_id: str = ""
    from_uid: int = 0


_KINDS = {1: "new", 2: "updated", 3: "deleted", 4: "folder"}


def _summary(message: Any, headers: bool = False) -> Summary:
    return Summary(message.id, message.folder_id, bool(message.unread), bool(message.starred), int(message.size),
                   int(message.received_ms), bool(message.answered), bool(message.draft), bool(message.deleted),
                   tuple(message.keywords), str(message.thread_id), str(message.subject),
                   bytes(message.headers) if headers and message.HasField("headers") else None, headers)


SYSTEM_FLAGS = {"\\answered": "\\Answered", "\\flagged": "\\Flagged", "\\deleted": "\\Deleted",
                "\\seen": "\\Seen", "\\draft": "\\Draft"}


def flag_changes(held: Summary | None, flags: Iterable[str]) -> dict[str, Any]:
    """The update_message arguments that make ``held``'s flags ``flags`` (only what differs: a
    cell left out is not changed, so another session's change to it stands). Flags compare
    without regard to case; \\Recent and other backslash flags no one may set are left out."""
    system: set[str] = set()
    wanted: dict[str, str] = {}
    for flag in flags:
        if flag.startswith("\\"):
            if flag.lower() in SYSTEM_FLAGS:
                system.add(SYSTEM_FLAGS[flag.lower()])
        else:
            wanted.setdefault(flag.lower(), flag)
    now = held or Summary("", "", True, False, 0, 0)
    cells = {"unread": "\\Seen" not in system, "starred": "\\Flagged" in system, "answered": "\\Answered" in system,
             "draft": "\\Draft" in system, "deleted": "\\Deleted" in system}
    changes: dict[str, Any] = {name: value for name, value in cells.items() if getattr(now, name) != value}
    have = {k.lower() for k in now.keywords}
    add = [name for key, name in wanted.items() if key not in have]
    remove = [k for k in now.keywords if k.lower() not in wanted]
    if add:
        changes["add_keywords"] = add
    if remove:
        changes["remove_keywords"] = remove
    return changes


def _change(change: Any) -> Change:
    return Change(int(change.modseq), _KINDS.get(int(change.kind), "other"), change.id, change.folder_id,
                  int(change.uid), change.from_folder_id, int(change.from_uid))


def _translate(error: errors.TidingsError) -> BackendError:
    text = str(error) or type(error).__name__
    if isinstance(error, errors.CannotCalculateChanges):
        return TooOld(text)
    if isinstance(error, errors.NotFound):
        return NoSuchMailbox(text)
    if isinstance(error, errors.AlreadyExists):
        return AlreadyExists(text)
    if isinstance(error, errors.Unauthenticated | errors.PermissionDenied):
        return BadCredentials(text)
    if isinstance(error, errors.Unavailable | errors.DeadlineExceeded):
        return Unavailable("the mail store is unavailable, try again")
    if isinstance(error, errors.FailedPrecondition | errors.InvalidArgument):
        return Refused(text)
    return Unavailable(text)


class Backend:
    """One per edge process: the router channel. ``mailbox(account)`` is a session's view."""

    def __init__(self, router: str, *, rpc_timeout: float = 10.0, client: MailClient | None = None) -> None:
        # the calls carry the command's request id (imap_edge/command_log.py) as x-request-id
        self.client = client or MailClient(router, timeout=rpc_timeout, metadata=logs.request_metadata)

    async def close(self) -> None:
        await self.client.close()

    async def login(self, email: str, password: str) -> Account:
        try:
            account = await self.client.authenticate(email, password)
        except errors.TidingsError as error:
            raise _translate(error) from None
        return Account(account.user_id, account.email)

    def mailbox(self, account: Account) -> UserMailbox:
        return UserMailbox(self.client, account)


class UserMailbox:
    """One user's mail, as one session sees it."""

    def __init__(self, client: MailClient, account: Account) -> None:
        self.client = client
        self.account = account
        self.user_id = account.user_id

    async def _call(self, method: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return await method(*args, **kwargs)
        except errors.TidingsError as error:
            raise _translate(error) from None

    # -- folders

    async def folders(self) -> list[Folder]:
        listed = await self._call(self.client.folder_list, self.user_id)
        return [Folder(f.id, imap_name(f.role, f.name), f.role, int(f.total), int(f.unread),
                       alias=f.name if f.role else "") for f in listed.folders]

    async def state(self) -> int:
        return int(await self._call(self.client.mailbox_state, self.user_id))

    async def create_folder(self, name: str) -> str:
        folder = await self._call(self.client.create_folder, self.user_id, name)
        return str(folder.id)

    async def rename_folder(self, folder_id: str, name: str) -> None:
        await self._call(self.client.rename_folder, self.user_id, folder_id, name)

    async def delete_folder(self, folder_id: str) -> None:
        await self._call(self.client.delete_folder, self.user_id, folder_id)

    # -- a folder's view and its messages

    async def view(self, folder_id: str, *, limit: int = 0) -> View:
        """The folder in the mailbox order, every page (``limit`` 1: only its head)."""
        entries: list[Entry] = []
        after = 0
        while True:
            page = await self._call(self.client.mailbox, self.user_id, folder_id, after_uid=after, limit=limit)
            entries += [Entry(int(e.uid), e.id, int(e.modseq)) for e in page.entries]
            if after == 0:
                head = (int(page.uidvalidity), int(page.uid_next), int(page.highest_modseq))
            if not page.has_more or not page.entries or limit:
                break
            after = int(page.entries[-1].uid)
        return View(*head, tuple(entries))

    async def summaries(self, folder_id: str, *, headers: bool = False) -> dict[str, Summary]:
        """Every message of a folder the listings hold, by id (``headers``: with the kept header fields)."""
        found: dict[str, Summary] = {}
        cursor = ""
        while True:
            page = await self._call(self.client.list_messages, self.user_id, folder_id, limit=LIST_PAGE, cursor=cursor,
                                    headers=headers)
            for message in page.messages:
                found[message.id] = _summary(message, headers)
            cursor = page.next_cursor
            if not cursor or not page.messages:
                return found

    async def some_summaries(self, folder_id: str, ids: Iterable[str], *, headers: bool = False) -> dict[str, Summary]:
        """The summaries of ``ids`` (those still there): one GetMessages, or the folder's listing for many."""
        wanted = list(dict.fromkeys(ids))
        if not wanted:
            return {}
        if len(wanted) > MANY:
            listed = await self.summaries(folder_id, headers=headers)
            missing = [i for i in wanted if i not in listed]
            found = {i: listed[i] for i in wanted if i in listed}
            if missing and len(missing) <= MANY:
                found.update(await self.some_summaries(folder_id, missing, headers=headers))
            return found
        held, _ = await self.fetched(wanted, headers=headers)
        return {i: summary for i, (summary, _) in held.items()}

    async def fetched(self, ids: list[str], *, raw: bool = False, headers: bool = False
                      ) -> tuple[dict[str, tuple[Summary, bytes]], list[str]]:
        """One Mail.GetMessages of ``ids``: each answered one's summary and (``raw``) bytes, and the
        ids expunged. The router may answer fewer (an answer holds about 4 MiB of bodies): the
        ids in neither are to be asked again."""
        answer = await self._call(self.client.get_messages, self.user_id, ids, raw=raw, headers=headers)
        found = {m.summary.id: (_summary(m.summary, headers), bytes(m.raw)) for m in answer.messages}
        return found, list(answer.missing)

    async def raw(self, message_id: str) -> bytes:
        try:
            return bytes(await self._call(self.client.get_raw_message, self.user_id, message_id))
        except NoSuchMailbox:
            raise Gone(f"message {message_id} was expunged") from None

    # -- changes

    async def set_flags(self, message_id: str, **cells: Any) -> Summary:
        """update_message with these cells (``flag_changes``): unread, starred, answered, draft,
        deleted, add_keywords, remove_keywords."""
        try:
            return _summary(await self._call(self.client.update_message, self.user_id, message_id, **cells))
        except NoSuchMailbox:
            raise Gone(f"message {message_id} was expunged") from None

    async def move(self, message_id: str, folder_id: str) -> None:
        await self._call(self.client.update_message, self.user_id, message_id, folder_id=folder_id)

    async def delete(self, message_id: str, from_folder: str) -> bool:
        """Our delete of a message the session sees in ``from_folder``: to Trash (its \\Deleted
        cleared, so an EXPUNGE of Trash does not take it at once), or from Trash for good (True).
        Outside Trash it is a move, never DeleteMessage: a message another session has moved to
        Trash meanwhile is not deleted for good by this one."""
        try:
            if from_folder != "trash":
                await self._call(self.client.update_message, self.user_id, message_id, folder_id="trash",
                                 deleted=False)
                return False
            return bool(await self._call(self.client.delete_message, self.user_id, message_id))
        except NoSuchMailbox:
            return True  # already gone

    async def append(self, folder_id: str, raw: bytes, *, when: dt.datetime | None, flags: Iterable[str]) -> str:
        """Store ``raw`` for the user in ``folder_id`` without sending it; its message id."""
        now_ms = int((when or dt.datetime.now(dt.UTC)).timestamp() * 1000)
        entry_id = new_entry_id(max(now_ms, 0))
        system = folder_id if not folder_id.startswith("f") else "inbox"
        answer = await self._call(self.client.deliver, entry_id, raw, [self.account.email], folder_id=system)
        message_id = answer.deliveries[0].id if answer.deliveries else entry_id
        if system != folder_id:
            await self.move(message_id, folder_id)
        changes = flag_changes(None, flags)    # as a new message: unread, nothing else set
        if changes:
            await self.set_flags(message_id, **changes)
        return str(message_id)

    async def changes(self, since: int) -> tuple[list[Change], int]:
        """Every change after ``since`` (all pages) and the state they reach."""
        found: list[Change] = []
        while True:
            page = await self._call(self.client.changes, self.user_id, since, 1024)
            found += [_change(c) for c in page.changes]
            since = max(since, int(page.new_state))
            if not page.has_more:
                return found, since

    async def watch(self, since: int) -> AsyncIterator[Change]:
        try:
            async for change in self.client.watch(self.user_id, since):
                yield _change(change)
        except errors.TidingsError as error:
            raise _translate(error) from None

    async def search(self, query: str) -> set[str]:
        """The ids our search finds for ``query`` (every page)."""
        found: set[str] = set()
        cursor = ""
        while True:
            page = await self._call(self.client.search, self.user_id, query, limit=LIST_PAGE, cursor=cursor)
            found.update(m.id for m in page.messages)
            cursor = page.next_cursor
            if not cursor or not page.messages:
                return found
