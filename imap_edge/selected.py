"""The selected mailbox of one session: its messages by UID, the sequence numbers the client
was told, the flags last read from the store, and the change feed folded in (RFC 3501 7.4.1:
an expunge is announced only where the client may renumber; until then the message keeps its
number). Knows no wire and no router: the session feeds it ``Change`` values and asks what to say.
"""
from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass

from imap_edge.backend import Change, Entry, Summary, View
from imap_edge.names import Folder
from imap_edge.protocol.sequence import SequenceSet

FLAGS = ("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft")
# All kept in the store (\Seen is "not unread", \Flagged "starred"), and keywords: \* says a
# client may make new ones.
PERMANENT_FLAGS = (*FLAGS, "\\*")


class BadSequence(ValueError):
    """A message sequence number past the mailbox's end."""


@dataclass
class Message:
    uid: int
    id: str
    modseq: int
    summary: Summary | None = None
    gone: bool = False                              # expunged elsewhere, not announced yet

    @property
    def flags(self) -> list[str]:
        return [] if self.summary is None else self.summary.flags


@dataclass(frozen=True)
class Exists:
    count: int


@dataclass(frozen=True)
class Expunged:
    number: int
    uid: int


Event = Exists | Expunged


def left(changes: Iterable[Change], folder_id: str) -> set[int]:
    """The UIDs the feed says left ``folder_id``: expunged, or moved to another folder."""
    found: set[int] = set()
    for change in changes:
        if change.kind == "deleted" and change.folder_id == folder_id:
            found.add(change.uid)
        elif change.kind == "updated" and change.from_folder_id == folder_id and change.folder_id != folder_id:
            found.add(change.from_uid)
    return found


def gaps(spans: Iterable[tuple[int, int]], present: list[int]) -> list[tuple[int, int]]:
    """The parts of the inclusive ``spans`` that hold none of ``present`` (sorted UIDs)."""
    found: list[tuple[int, int]] = []
    for low, high in spans:
        start = low
        for uid in present[bisect.bisect_left(present, low):bisect.bisect_right(present, high)]:
            if uid > start:
                found.append((start, uid - 1))
            start = uid + 1
        if start <= high:
            found.append((start, high))
    return found


class Selected:
    def __init__(self, folder: Folder, view: View, *, read_only: bool) -> None:
        self.folder = folder
        self.read_only = read_only
        self.uidvalidity = view.uidvalidity
        self.uid_next = view.uid_next
        self.modseq = view.highest_modseq
        self.uids: list[int] = []
        self.messages: dict[int, Message] = {}
        self.by_id: dict[str, int] = {}
        for entry in view.entries:
            self._add(entry)
        self._arrived: list[int] = []
        self._pending: dict[int, Entry] = {}
        self._vanished: list[int] = []
        self.held_below: int | None = None  # a MODSEQ below every expunge not announced yet
        self.touched: set[int] = set()  # UIDs whose flags may have changed elsewhere
        self.saved: frozenset[int] = frozenset()  # SEARCH RETURN (SAVE)'s UIDs, ``$`` (RFC 5182)

    def _add(self, entry: Entry) -> None:
        message = Message(entry.uid, entry.id, entry.modseq)
        bisect.insort(self.uids, entry.uid)
        self.messages[entry.uid] = message
        self.by_id[entry.id] = entry.uid
        self.uid_next = max(self.uid_next, entry.uid + 1)

    @property
    def largest_uid(self) -> int:
        """The largest UID given out here that the session knows of (``*`` in a UID set of VANISHED)."""
        return max(self.uid_next - 1, self.uids[-1] if self.uids else 0)

    @property
    def exists(self) -> int:
        return len(self.uids)

    def number(self, uid: int) -> int:
        return bisect.bisect_left(self.uids, uid) + 1

    def _saved(self) -> list[Message]:
        """``$``: the saved messages still here (an expunged one leaves the saved result)."""
        return [self.messages[uid] for uid in self.uids if uid in self.saved]

    def by_number(self, sequence: SequenceSet) -> list[Message]:
        if sequence.saved:
            return self._saved()
        found: list[Message] = []
        for low, high in sequence.ranges(self.exists):
            if high > self.exists:
                raise BadSequence(f"no message {high}: the mailbox has {self.exists}")
            found += [self.messages[uid] for uid in self.uids[low - 1:high]]
        return found

    def by_uid(self, sequence: SequenceSet) -> list[Message]:
        if sequence.saved:
            return self._saved()
        largest = self.uids[-1] if self.uids else 0
        found: list[Message] = []
        for low, high in sequence.ranges(largest):
            start = bisect.bisect_left(self.uids, low)
            end = bisect.bisect_right(self.uids, high)
            found += [self.messages[uid] for uid in self.uids[start:end]]
        return found

    def resolve(self, sequence: SequenceSet, uid: bool) -> list[Message]:
        return self.by_uid(sequence) if uid else self.by_number(sequence)

    # -- the change feed

    def note(self, change: Change) -> None:
        """Fold one change in (already-seen ones are harmless: every step is idempotent)."""
        if change.modseq <= self.modseq:
            return
        self.modseq = change.modseq
        mine = self.folder.id
        if change.kind == "new" and change.folder_id == mine:
            self._arrive(Entry(change.uid, change.id, change.modseq))
        elif change.kind == "updated":
            if change.from_folder_id == mine and change.folder_id != mine:
                self._vanish(change.from_uid, change.id)
            elif change.folder_id == mine and change.from_folder_id and change.from_folder_id != mine:
                self._arrive(Entry(change.uid, change.id, change.modseq))
            elif change.folder_id == mine:
                uid = self.by_id.get(change.id)
                if uid is not None:
                    self.messages[uid].modseq = change.modseq
                    self.touched.add(uid)
        elif change.kind == "deleted" and change.folder_id == mine:
            self._vanish(change.uid, change.id)

    def resync(self, view: View) -> None:
        """Fold a fresh view in when the feed cannot say what changed (compacted past our MODSEQ):
        messages missing from it are expunged, new ones arrive, every other one may have new flags."""
        present = {entry.uid for entry in view.entries}
        for uid in list(self.messages):
            if uid not in present:
                self._vanish(uid, self.messages[uid].id)
        for entry in view.entries:
            if entry.uid in self.messages:
                self.messages[entry.uid].modseq = entry.modseq
                self.touched.add(entry.uid)
            else:
                self._arrive(entry)
        self.modseq = max(self.modseq, view.highest_modseq)

    def _arrive(self, entry: Entry) -> None:
        if entry.uid in self.messages or entry.id in self.by_id or entry.uid in self._arrived:
            return
        self._arrived.append(entry.uid)
        self._pending[entry.uid] = entry

    def _vanish(self, uid: int, message_id: str) -> None:
        uid = uid if uid in self.messages else self.by_id.get(message_id, 0)
        if uid in self.messages and not self.messages[uid].gone:
            self.messages[uid].gone = True
            self._vanished.append(uid)
            below = self.modseq - 1     # note() has set it to the expunge's; resync() left the old one
            self.held_below = below if self.held_below is None else min(self.held_below, below)
        elif uid in self._pending:
            del self._pending[uid]
            self._arrived.remove(uid)

    def expunge(self, uid: int) -> Expunged | None:
        """Drop a message now (this session's own EXPUNGE or MOVE); its announcement."""
        if uid not in self.messages:
            return None
        number = self.number(uid)
        del self.uids[number - 1]
        message = self.messages.pop(uid)
        self.by_id.pop(message.id, None)
        self.touched.discard(uid)
        if uid in self._vanished:
            self._vanished.remove(uid)
        if not self._vanished:
            self.held_below = None
        return Expunged(number, uid)

    def flush(self, *, expunges: bool) -> list[Event]:
        """What to announce now: expunges (where allowed), then new messages (EXISTS)."""
        events: list[Event] = []
        if expunges:
            for uid in sorted(self._vanished, reverse=True):
                found = self.expunge(uid)
                if found is not None:
                    events.append(found)
            self._vanished.clear()
            self.held_below = None
        if self._arrived:
            for uid in sorted(self._arrived):
                self._add(self._pending.pop(uid))
            self._arrived.clear()
            events.append(Exists(self.exists))
        return events

    @property
    def deleted(self) -> list[Message]:
        """The messages whose summary (as last read) has \\Deleted."""
        found = (self.messages[uid] for uid in self.uids)
        return [m for m in found if m.summary is not None and m.summary.deleted and not m.gone]
