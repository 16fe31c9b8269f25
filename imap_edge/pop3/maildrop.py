"""The Inbox as one POP3 session sees it: fixed when the session logs in (RFC 1939 section
8: messages arriving later wait for the next session), numbered 1..n oldest first, each
with its size and a unique-id that never changes (UIDVALIDITY.UID of the mailbox order).
Deleting applies only at QUIT, and moves the messages to Trash: never lost."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Protocol

from tidings.v1 import mail_pb2

INBOX = "inbox"
PAGE = 200                  # the router's largest listing page


class Router(Protocol):
    """What the maildrop needs of tidings_client.MailClient."""

    async def mailbox(self, user_id: str, folder_id: str, *, after_uid: int = 0, limit: int = 0,
                      timeout: float | None = None) -> mail_pb2.MailboxView: ...
    async def list_messages(self, user_id: str, folder_id: str, *, unread_only: bool = False, limit: int = 50,
                            cursor: str = "", timeout: float | None = None) -> mail_pb2.MessagePage: ...
    async def get_raw_message(self, user_id: str, id: str, *, timeout: float | None = None) -> bytes: ...
    async def delete_message(self, user_id: str, id: str, *, timeout: float | None = None) -> bool: ...


@dataclass(frozen=True)
class Drop:
    number: int
    id: str
    unique_id: str
    size: int


class Maildrop:
    def __init__(self, router: Router, user_id: str, drops: list[Drop]) -> None:
        self.router = router
        self.user_id = user_id
        self.drops = drops
        self.deleted: set[int] = set()

    @classmethod
    async def open(cls, router: Router, user_id: str) -> Maildrop:
        """The Inbox now: its UIDs from the mailbox order, its sizes from the listing."""
        entries, uidvalidity, after = [], 0, 0
        while True:
            view = await router.mailbox(user_id, INBOX, after_uid=after)
            uidvalidity = view.uidvalidity
            entries.extend(view.entries)
            if not view.has_more or not view.entries:
                break
            after = view.entries[-1].uid
        sizes: dict[str, int] = {}
        cursor = ""
        while True:
            page = await router.list_messages(user_id, INBOX, limit=PAGE, cursor=cursor)
            sizes.update((m.id, m.size) for m in page.messages)
            cursor = page.next_cursor
            if not cursor:
                break
        listed = [e for e in entries if e.id in sizes]       # ordered but not listed: gone meanwhile
        return cls(router, user_id, [Drop(n, e.id, f"{uidvalidity}.{e.uid}", sizes[e.id])
                                     for n, e in enumerate(listed, 1)])

    def live(self) -> list[Drop]:
        return [d for d in self.drops if d.number not in self.deleted]

    def get(self, number: int) -> Drop | None:
        """Message `number`, unless it is marked deleted or out of range."""
        if 1 <= number <= len(self.drops) and number not in self.deleted:
            return self.drops[number - 1]
        return None

    async def raw(self, drop: Drop) -> bytes:
        return await self.router.get_raw_message(self.user_id, drop.id)

    async def commit(self) -> int:
        """QUIT in the TRANSACTION state: move the messages marked deleted to Trash."""
        marked = [self.drops[n - 1] for n in sorted(self.deleted)]
        await asyncio.gather(*(self.router.delete_message(self.user_id, d.id) for d in marked))
        return len(marked)
