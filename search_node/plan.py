"""Resolve a query AST against the schema: a tree of bitmap operations, built by one small handler per operator."""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from search_node import fields as F
from search_node.grammar import All, And, Clause, Node, Not, Or, QuerySyntaxError
from search_node.keys import ALL, folder_bitmap
from search_node.records import ATTACHMENT, FLAG_BITMAPS, STARRED, UNREAD

DAY_MS = 86_400_000
AGE_UNITS = {"d": DAY_MS, "m": 30 * DAY_MS, "y": 365 * DAY_MS}
SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
SYSTEM_FOLDERS = frozenset(("inbox", "sent", "drafts", "spam", "trash", "archive"))


@dataclass(frozen=True)
class Terms:
    """Union of the postings of one term (or every term with a prefix) over some fields."""

    term: str
    fields: frozenset[int]
    prefix: bool = False


@dataclass(frozen=True)
class Phrase:
    """Docs where the consecutive terms occur in one value of one of the fields (verified)."""

    match: F.Match
    fields: frozenset[int]


@dataclass(frozen=True)
class Bitmap:
    """A stored doc bitmap: all, flags, folders."""

    name: bytes


@dataclass(frozen=True)
class Received:
    """lo <= received_ms < hi."""

    lo: int | None = None
    hi: int | None = None


@dataclass(frozen=True)
class Size:
    """size > bytes (above) or size < bytes (below)."""

    bytes: int
    above: bool


@dataclass(frozen=True)
class PAnd:
    children: tuple[Plan, ...]


@dataclass(frozen=True)
class POr:
    children: tuple[Plan, ...]


@dataclass(frozen=True)
class PNot:
    child: Plan


Plan = Terms | Phrase | Bitmap | Received | Size | PAnd | POr | PNot
EVERYTHING = Bitmap(ALL)


@dataclass(frozen=True)
class Context:
    now_ms: int


Handler = Callable[[Clause, Context], "Plan | None"]


def _error(clause: Clause, message: str) -> QuerySyntaxError:
    return QuerySyntaxError(message, clause.value_pos)


def _value(clause: Clause, *, allow_prefix: bool = False) -> str:
    if not clause.value.strip():
        raise QuerySyntaxError(f"{clause.op}: needs a value", clause.value_pos)
    if clause.prefix and not allow_prefix:
        raise _error(clause, f"{clause.op}: takes no prefix")
    return clause.value.strip()


def text_plan(text: str, fields: tuple[F.Field, ...], prefix: bool) -> Plan | None:
    """A word or phrase in some fields; fields that analyze it alike share one node."""
    by_match: dict[F.Match, set[int]] = {}
    for f in fields:
        m = F.match_for(f, text, prefix=prefix)
        if m is not None:
            by_match.setdefault(m, set()).add(f.code)
    nodes: list[Plan] = [
        Terms(m.terms[0], frozenset(codes), m.prefix) if len(m.terms) == 1 else Phrase(m, frozenset(codes))
        for m, codes in by_match.items()
    ]
    if not nodes:
        return None
    return nodes[0] if len(nodes) == 1 else POr(tuple(nodes))


def _field(field: F.Field) -> Handler:
    def handle(clause: Clause, _ctx: Context) -> Plan | None:
        return text_plan(_value(clause, allow_prefix=True), (field,), clause.prefix)
    return handle


def _choice(options: dict[str, Plan]) -> Handler:
    def handle(clause: Clause, _ctx: Context) -> Plan:
        value = _value(clause).lower()
        if value not in options:
            raise _error(clause, f"{clause.op}: expects one of {', '.join(sorted(options))}")
        return options[value]
    return handle


def _in(clause: Clause, _ctx: Context) -> Plan:
    value = _value(clause)
    if value.lower() == "anywhere":
        return EVERYTHING
    return Bitmap(folder_bitmap(value.lower() if value.lower() in SYSTEM_FOLDERS else value))


_DATE = re.compile(r"^(\d{4})[/-](\d{1,2})[/-](\d{1,2})$")


def _date_ms(clause: Clause) -> int:
    m = _DATE.match(_value(clause))
    try:
        if m is None:
            raise ValueError
        day = datetime(int(m[1]), int(m[2]), int(m[3]), tzinfo=UTC)
    except ValueError:
        raise _error(clause, "dates are YYYY/MM/DD or YYYY-MM-DD") from None
    return int(day.timestamp() * 1000)


def _after(clause: Clause, _ctx: Context) -> Plan:
    return Received(lo=_date_ms(clause))


def _before(clause: Clause, _ctx: Context) -> Plan:
    return Received(hi=_date_ms(clause))


_AGE = re.compile(r"^(\d{1,6})([dmy])$", re.I)


def _age_ms(clause: Clause) -> int:
    m = _AGE.match(_value(clause))
    if m is None:
        raise _error(clause, f"{clause.op}: expects a number and d, m or y (7d)")
    return int(m[1]) * AGE_UNITS[m[2].lower()]


def _older_than(clause: Clause, ctx: Context) -> Plan:
    return Received(hi=ctx.now_ms - _age_ms(clause))


def _newer_than(clause: Clause, ctx: Context) -> Plan:
    return Received(lo=ctx.now_ms - _age_ms(clause) + 1)


_SIZE = re.compile(r"^(\d{1,15})([kmg]?)b?$", re.I)


def _size(above: bool) -> Handler:
    def handle(clause: Clause, _ctx: Context) -> Plan:
        m = _SIZE.match(_value(clause))
        if m is None:
            raise _error(clause, f"{clause.op}: expects bytes, or a number with K, M or G")
        return Size(int(m[1]) * SIZE_UNITS[m[2].lower()], above)
    return handle


OPERATORS: dict[str, Handler] = {
    **{f.name: _field(f) for f in (F.FROM, F.TO, F.CC, F.BCC, F.SUBJECT, F.FILENAME_FIELD, F.MSGID)},
    "has": _choice({"attachment": Bitmap(FLAG_BITMAPS[ATTACHMENT])}),
    "is": _choice({"unread": Bitmap(FLAG_BITMAPS[UNREAD]), "read": PNot(Bitmap(FLAG_BITMAPS[UNREAD])),
                   "starred": Bitmap(FLAG_BITMAPS[STARRED])}),
    "in": _in,
    "after": _after,
    "before": _before,
    "older_than": _older_than,
    "newer_than": _newer_than,
    "larger": _size(above=True),
    "smaller": _size(above=False),
}


def _clause(clause: Clause, ctx: Context) -> Plan | None:
    if clause.op is None:
        return text_plan(clause.value, F.PLAIN_FIELDS, clause.prefix)
    handler = OPERATORS.get(clause.op)
    if handler is None:  # not an operator: the text is searched as written ("re:" is the word re)
        return text_plan(f"{clause.op}:{clause.value}", F.PLAIN_FIELDS, clause.prefix)
    return handler(clause, ctx)


def _merge_ranges(kids: tuple[Plan, ...]) -> tuple[Plan, ...]:
    """`after:A before:B` is one range, so its out-of-order docs are found with one bounded scan."""
    ranges = [k for k in kids if isinstance(k, Received)]
    if len(ranges) < 2:
        return kids
    los = [r.lo for r in ranges if r.lo is not None]
    his = [r.hi for r in ranges if r.hi is not None]
    merged = Received(max(los) if los else None, min(his) if his else None)
    return (*(k for k in kids if not isinstance(k, Received)), merged)


def _resolve(node: Node, ctx: Context) -> Plan | None:
    """None means the node has nothing indexable in it and is left out of its parent."""
    if isinstance(node, Clause):
        return _clause(node, ctx)
    if isinstance(node, Not):
        child = _resolve(node.child, ctx)
        return None if child is None else PNot(child)
    if isinstance(node, (And, Or)):
        kids = tuple(p for p in (_resolve(c, ctx) for c in node.children) if p is not None)
        if isinstance(node, And):
            kids = _merge_ranges(kids)
        if len(kids) <= 1:
            return kids[0] if kids else None
        return PAnd(kids) if isinstance(node, And) else POr(kids)
    assert isinstance(node, All)
    return EVERYTHING


def plan(node: Node, now_ms: int) -> Plan:
    """The bitmap plan for a parsed query; invalid operator values raise QuerySyntaxError."""
    return _resolve(node, Context(now_ms)) or EVERYTHING
