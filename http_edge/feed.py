"""The user's change feed (`Mail.Changes`, `Mail.Watch`) as the HTTP edge shows it; no wire here.

- `parse_state`: a state as the API writes it (the MODSEQ in decimal) back to the number;
- `collapse`: a window of changes to JMAP's `/changes` lists (RFC 8620 section 5.2): per id, a
  message created and then updated is `created`; updated and then destroyed is `destroyed`;
  created and destroyed within the window is left out; folders are only `changed` (see
  `FolderChanges`), since a `FOLDER_UPDATED` change does not say whether it created, renamed
  or deleted the folder;
- `event`: one change as a Server-Sent Event (`message.new`, ... with `id:` its MODSEQ).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

from tidings.v1 import types_pb2

from .errors import invalid_request

Change = types_pb2.MailboxChange
MAX_STATE = 2**64 - 1

# the SSE event name of each kind; a kind not listed (unspecified, or newer than this edge) is skipped
EVENT_NAMES = {
    Change.MESSAGE_NEW: "message.new",
    Change.MESSAGE_UPDATED: "message.updated",
    Change.MESSAGE_DELETED: "message.deleted",
    Change.FOLDER_UPDATED: "folder.updated",
}


def parse_state(text: str, what: str) -> int:
    """A state the API handed out (decimal digits, a MODSEQ), or a 400 naming `what`."""
    if not (text.isascii() and text.isdigit() and len(text) <= 20) or int(text) > MAX_STATE:
        raise invalid_request(f"{what}: a state is the decimal number a listing or /v1/changes gave, not {text[:40]!r}")
    return int(text)


@dataclass
class FolderChanges:
    """The folders a window touched: `changed` in first-seen order (created, renamed or deleted)."""

    changed: list[str] = field(default_factory=list)


@dataclass
class MessageChanges:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    destroyed: list[str] = field(default_factory=list)
    folders: FolderChanges = field(default_factory=FolderChanges)


def collapse(changes: list[types_pb2.MailboxChange]) -> MessageChanges:
    """JMAP's lists from changes in MODSEQ order (each id in at most one list)."""
    state: dict[str, str] = {}  # message id -> created | updated | destroyed | gone (created and destroyed)
    folders: dict[str, None] = {}
    for change in changes:
        if change.kind == Change.FOLDER_UPDATED:
            folders.setdefault(change.id, None)
            continue
        was = state.get(change.id)
        if change.kind == Change.MESSAGE_NEW:
            state[change.id] = "created"
        elif change.kind == Change.MESSAGE_UPDATED:
            if was is None:
                state[change.id] = "updated"
        elif change.kind == Change.MESSAGE_DELETED:
            state[change.id] = "gone" if was == "created" else "destroyed"
    out = MessageChanges(folders=FolderChanges(list(folders)))
    for id, verdict in state.items():
        if verdict != "gone":
            getattr(out, verdict).append(id)
    return out


@dataclass(frozen=True)
class Event:
    """One Server-Sent Event: `event:` name, `id:` the MODSEQ, `data:` JSON."""

    name: str
    id: str
    data: str


def event(change: types_pb2.MailboxChange) -> Event | None:
    """The change as an event, or None for a kind this edge does not know."""
    name = EVENT_NAMES.get(change.kind)
    if name is None:
        return None
    data: dict[str, object] = {"id": change.id, "folder_id": change.folder_id or None,
                               "thread_id": change.thread_id or None}
    if change.uid:
        data["uid"] = change.uid
    if change.from_folder_id:
        data["from_folder_id"] = change.from_folder_id
    return Event(name, str(change.modseq), json.dumps(data, separators=(",", ":")))
