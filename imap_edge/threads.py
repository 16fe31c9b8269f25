"""THREAD (RFC 5256) over our threads: REFERENCES groups by the router's thread id,
ORDEREDSUBJECT by the base subject; in both a thread's first message (by receive time) is the
parent and the others its children in time order, and threads go in the order of their first
message. Knows no session or wire: numbers in, ``ThreadNode`` trees out."""
from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from imap_edge.responses import ThreadNode

ALGORITHMS = ("REFERENCES", "ORDEREDSUBJECT")

_REPLY = re.compile(r"^(?:re|fwd?)\s*(?:\[[^\]]*\]\s*)?:\s*", re.IGNORECASE)
_BLOB = re.compile(r"^\[[^\]]*\]\s*")
_FWD_TAIL = re.compile(r"\s*\(fwd\)\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class Item:
    number: int        # the sequence number or UID answered
    thread_id: str
    subject: str
    received_ms: int


def base_subject(subject: str) -> str:
    """RFC 5256 2.1's base subject, near enough: reply and forward prefixes (``Re:``, ``Fwd:``,
    ``Re[2]:``), leading ``[list]`` tags and a trailing ``(fwd)`` taken off, whitespace collapsed,
    case folded."""
    text = " ".join(subject.split())
    while True:
        before = text
        text = _FWD_TAIL.sub("", text)
        text = _REPLY.sub("", text)
        stripped = _BLOB.sub("", text)
        if stripped:
            text = stripped
        if text == before:
            return text.casefold()


def thread(algorithm: str, items: Iterable[Item]) -> list[ThreadNode]:
    """The THREAD answer's trees for ``algorithm`` (one of ``ALGORITHMS``)."""
    key: Callable[[Item], str] = ((lambda i: i.thread_id or f"#{i.number}") if algorithm == "REFERENCES"
                                  else (lambda i: base_subject(i.subject)))
    groups: dict[str, list[Item]] = {}
    for item in sorted(items, key=lambda i: (i.received_ms, i.number)):
        groups.setdefault(key(item), []).append(item)
    roots = []
    for members in groups.values():
        first, *rest = members
        roots.append(ThreadNode(first.number, tuple(ThreadNode(m.number) for m in rest)))
    return roots
