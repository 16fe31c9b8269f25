"""Mailbox names: our folders as IMAP names and back, SPECIAL-USE attributes (RFC 6154) on
our roles, and LIST's patterns (``*`` anything, ``%`` anything but the delimiter).

System folders have fixed IMAP names (``INBOX``, ``Sent``, ``Drafts``, ``Junk`` for our
``spam``, ``Trash``, ``Archive``); a custom folder is listed by its own name, ``/`` separating
levels as the router's rules have it. A name resolves exactly first, then ignoring case (folder
names are unique ignoring case), and the router's own names of the system folders resolve too.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

DELIMITER = "/"
ROLE_NAMES = {"inbox": "INBOX", "sent": "Sent", "drafts": "Drafts", "spam": "Junk", "trash": "Trash",
              "archive": "Archive"}
SPECIAL_USE = {"sent": "\\Sent", "drafts": "\\Drafts", "spam": "\\Junk", "trash": "\\Trash", "archive": "\\Archive"}


@dataclass(frozen=True)
class Folder:
    """A folder as the session lists it: ``id`` our folder id (a role for system folders)."""

    id: str
    name: str
    role: str = ""
    total: int = 0
    unread: int = 0
    alias: str = ""  # the router's name of a system folder ("Spam"), which resolves too

    @property
    def special_use(self) -> str | None:
        return SPECIAL_USE.get(self.role)


def imap_name(role: str, name: str) -> str:
    return ROLE_NAMES.get(role, name)


def find(folders: Iterable[Folder], name: str) -> Folder | None:
    listed = list(folders)
    if name.upper() == "INBOX":
        return next((f for f in listed if f.role == "inbox"), None)
    for folder in listed:
        if folder.name == name:
            return folder
    key = name.casefold()
    return next((f for f in listed if f.name.casefold() == key or (f.alias and f.alias.casefold() == key)), None)


def pattern(reference: str, mailbox: str) -> re.Pattern[str]:
    """LIST's reference and pattern as one regular expression over names."""
    if mailbox.startswith(DELIMITER) or not reference:
        text = mailbox
    else:
        text = reference if reference.endswith(DELIMITER) else reference + DELIMITER
        text += mailbox
    out = []
    for char in text:
        if char == "*":
            out.append(".*")
        elif char == "%":
            out.append(f"[^{re.escape(DELIMITER)}]*")
        else:
            out.append(re.escape(char))
    flags = 0
    body = "".join(out)
    if text[:5].upper() == "INBOX" and (len(text) == 5 or text[5] == DELIMITER):
        body = "(?i:INBOX)" + "".join(out[5:])  # INBOX is case-insensitive
    return re.compile(f"\\A{body}\\Z", flags)


def with_parents(names: Iterable[str]) -> tuple[set[str], set[str]]:
    """The names, and the levels above them that are no folder (listed ``\\NonExistent``)."""
    present = set(names)
    implied: set[str] = set()
    for name in present:
        parts = name.split(DELIMITER)
        for end in range(1, len(parts)):
            parent = DELIMITER.join(parts[:end])
            if parent and parent not in present:
                implied.add(parent)
    return present, implied


def has_children(name: str, names: Iterable[str]) -> bool:
    prefix = name + DELIMITER
    return any(other.startswith(prefix) for other in names)


def valid_new_name(name: str) -> str | None:
    """Why ``name`` cannot be created (None: it can); the router checks the rest."""
    if not name or name.upper() == "INBOX":
        return "that name is taken by INBOX" if name else "empty mailbox name"
    if any(not part for part in name.split(DELIMITER)):
        return "empty level in mailbox name"
    if any(char in name for char in "*%"):
        return "mailbox names cannot contain * or %"
    return None
