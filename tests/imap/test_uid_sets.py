"""The UID arithmetic QRESYNC answers with, without a cluster: ``selected.gaps`` (the UIDs of a
client's set that are not in the mailbox, as ranges) and ``selected.left`` (the UIDs the change feed
says left a folder: expunged, or moved to another)."""
from __future__ import annotations

import pytest

from imap_edge.backend import Change
from imap_edge.selected import gaps, left


@pytest.mark.parametrize(("spans", "present", "expected"), [
    ([(1, 10)], [], [(1, 10)]),
    ([(1, 10)], [1, 10], [(2, 9)]),
    ([(1, 10)], [3, 4, 7], [(1, 2), (5, 6), (8, 10)]),
    ([(1, 3), (8, 9)], [2, 5, 8, 9], [(1, 1), (3, 3)]),
    ([(5, 5)], [5], []),
    ([(4, 6)], [1, 2, 9], [(4, 6)]),       # present UIDs outside the spans change nothing
    ([], [1], []),
])
def test_gaps(spans: list[tuple[int, int]], present: list[int], expected: list[tuple[int, int]]) -> None:
    assert gaps(spans, present) == expected


def test_left_counts_deletes_and_moves_out_of_this_folder_only() -> None:
    changes = [
        Change(10, "deleted", "a", "inbox", 3),
        Change(11, "updated", "b", "trash", 9, from_folder_id="inbox", from_uid=4),       # moved out
        Change(12, "updated", "c", "inbox", 5),                                           # flags only
        Change(13, "updated", "d", "inbox", 7, from_folder_id="archive", from_uid=2),     # moved in
        Change(14, "deleted", "e", "archive", 8),                                         # elsewhere
        Change(15, "new", "f", "inbox", 6),
    ]
    assert left(changes, "inbox") == {3, 4}
    assert left(changes, "archive") == {2, 8}
