"""backend.flag_changes: a STORE's target flags as the store's cells, only what differs."""
from __future__ import annotations

from imap_edge.backend import Summary, flag_changes

HELD = Summary("m", "inbox", unread=True, starred=False, size=10, received_ms=1, answered=True,
               keywords=("$Forwarded", "$label1"))


def test_only_the_cells_that_change_are_sent() -> None:
    assert flag_changes(HELD, HELD.flags) == {}
    assert flag_changes(HELD, ["\\Answered", "\\SEEN", "$forwarded", "$label1", "$Junk"]) == \
        {"unread": False, "add_keywords": ["$Junk"]}
    assert flag_changes(HELD, ["\\Deleted", "\\Draft", "\\Flagged"]) == \
        {"starred": True, "answered": False, "draft": True, "deleted": True,
         "remove_keywords": ["$Forwarded", "$label1"]}


def test_recent_and_unknown_system_flags_are_left_out() -> None:
    assert flag_changes(HELD, [*HELD.flags, "\\Recent", "\\Whatever"]) == {}


def test_a_new_message_starts_unread_with_nothing_set() -> None:
    assert flag_changes(None, []) == {}
    assert flag_changes(None, ["\\Seen", "\\Draft", "$x"]) == {"unread": False, "draft": True, "add_keywords": ["$x"]}
    assert HELD.flags == ["\\Answered", "$Forwarded", "$label1"]
