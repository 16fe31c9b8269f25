"""SEARCH keys evaluated over the selected mailbox: flags, sizes, dates, UIDs and sequence
numbers from what the session holds; text keys (FROM, TO, CC, BCC, SUBJECT, BODY, TEXT) through
our search (``Mail.Search``), always intersected with the selected folder, so a hit elsewhere is
never reported (the no-false-positive rule); HEADER and SENT* read the messages' headers.

Our index matches words, IMAP substrings: a one-word value is searched as a prefix (``hel``
finds "hello"), anything longer as a phrase; a substring inside a word is not found.
"""
from __future__ import annotations

import datetime as dt
import email.utils
import re
import time
from collections.abc import Awaitable, Callable

from imap_edge import message as mime
from imap_edge.backend import UserMailbox
from imap_edge.protocol import search as keys
from imap_edge.selected import Message, Selected

_WORD = re.compile(r"[\w.@+-]+")
_FIELDS = {"FROM": "from:", "TO": "to:", "CC": "cc:", "BCC": "bcc:", "SUBJECT": "subject:", "BODY": "", "TEXT": ""}


class Unsupported(ValueError):
    """A key this server cannot evaluate (answered ``NO [CANNOT]``)."""


def query_for(field: str, value: str) -> str | None:
    """Our query for an IMAP text key; None for an empty value (it matches every message)."""
    value = value.strip()
    if not value:
        return None
    prefix = _FIELDS[field]
    if _WORD.fullmatch(value) and "." not in value and "@" not in value:
        return f"{prefix}{value}*"
    return prefix + '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _date_of(message: Message) -> dt.date | None:
    if message.summary is None:
        return None
    return message.summary.internal_date.date()


class Searcher:
    def __init__(self, mailbox: UserMailbox, selected: Selected, *,
                 summaries: Callable[[list[Message]], Awaitable[None]],
                 headers: Callable[[list[Message], set[str]], Awaitable[dict[int, bytes | None]]]) -> None:
        """``headers(messages, names)``: each message's header section (at least the fields
        named), by UID; None for one expunged meanwhile."""
        self.mailbox = mailbox
        self.selected = selected
        self._summaries = summaries
        self._read_headers = headers
        self._all = [selected.messages[uid] for uid in selected.uids]
        self._blocks: dict[int, bytes | None] = {}
        self._headers: dict[int, mime.Part | None] = {}

    async def run(self, key: keys.SearchKey) -> list[Message]:
        """The matching messages, in UID order."""
        if _needs_summaries(key):
            await self._summaries(self._all)
        names = _header_names(key)
        if names:       # every message's headers read at once, not one message at a time
            self._blocks = await self._read_headers(self._all, names)
        found = await self._eval(key)
        return [m for m in self._all if m.uid in found]

    async def _eval(self, key: keys.SearchKey) -> set[int]:
        every = {m.uid for m in self._all}
        if isinstance(key, keys.And):
            result = set(every)
            for part in key.keys:
                result &= await self._eval(part)
                if not result:
                    break
            return result
        if isinstance(key, keys.Or):
            return await self._eval(key.left) | await self._eval(key.right)
        if isinstance(key, keys.Not):
            return every - await self._eval(key.key)
        if isinstance(key, keys.Simple):
            return every if key.name == "ALL" else set()  # NEW: nothing is \Recent here
        if isinstance(key, keys.SetKey):
            chosen = self.selected.by_uid(key.set) if key.uid else self._numbers(key)
            return {m.uid for m in chosen}
        if isinstance(key, keys.FlagKey):
            return {m.uid for m in self._all if (key.flag in m.flags) == key.present}
        if isinstance(key, keys.SizeKey):
            return {m.uid for m in self._all if m.summary is not None
                    and (m.summary.size > key.size if key.larger else m.summary.size < key.size)}
        if isinstance(key, keys.ModSeqKey):
            return {m.uid for m in self._all if m.modseq >= key.modseq}
        if isinstance(key, keys.AgeKey):
            now = time.time() * 1000
            return {m.uid for m in self._all if m.summary is not None
                    and ((now - m.summary.received_ms) / 1000 >= key.seconds) == key.older}
        if isinstance(key, keys.DateKey):
            return await self._date(key)
        if isinstance(key, keys.TextKey):
            query = query_for(key.field, key.value)
            if query is None:
                return every
            found = await self.mailbox.search(f"{query} in:{self.selected.folder.id}")
            return {m.uid for m in self._all if m.id in found}
        if isinstance(key, keys.HeaderKey):
            return await self._header(key)
        raise Unsupported(f"search key {key} is not supported")

    def _numbers(self, key: keys.SetKey) -> list[Message]:
        return self.selected.by_number(key.set)

    async def _part(self, message: Message) -> mime.Part | None:
        if message.uid not in self._headers:
            block = self._blocks.get(message.uid)
            self._headers[message.uid] = mime.parse(block) if block is not None else None
        return self._headers[message.uid]

    async def _header(self, key: keys.HeaderKey) -> set[int]:
        found: set[int] = set()
        needle = key.value.casefold()
        for message in self._all:
            part = await self._part(message)
            if part is None:
                continue
            values = part.headers.get_all(key.name) or []
            if any(needle in re.sub(r"\r?\n[ \t]", " ", str(v)).casefold() for v in values):
                found.add(message.uid)
        return found

    async def _date(self, key: keys.DateKey) -> set[int]:
        found: set[int] = set()
        for message in self._all:
            if key.field.startswith("SENT"):
                part = await self._part(message)
                value = part.headers.get("Date") if part is not None else None
                try:
                    sent = email.utils.parsedate_to_datetime(str(value)) if value else None
                except (TypeError, ValueError):
                    sent = None
                day = sent.date() if sent is not None else None
                field = key.field.removeprefix("SENT")
            else:
                day, field = _date_of(message), key.field
            if day is None:
                continue
            if (field == "BEFORE" and day < key.date) or (field == "ON" and day == key.date) \
                    or (field == "SINCE" and day >= key.date):
                found.add(message.uid)
        return found


def _header_names(key: keys.SearchKey) -> set[str]:
    """The header fields the HEADER and SENT* keys of ``key`` read (lowercase)."""
    names = set()
    for leaf in keys.leaves(key):
        if isinstance(leaf, keys.HeaderKey):
            names.add(leaf.name.lower())
        elif isinstance(leaf, keys.DateKey) and leaf.field.startswith("SENT"):
            names.add("date")
    return names


def _needs_summaries(key: keys.SearchKey) -> bool:
    return any(isinstance(k, keys.FlagKey | keys.SizeKey | keys.AgeKey)
               or (isinstance(k, keys.DateKey) and not k.field.startswith("SENT")) for k in keys.leaves(key))
