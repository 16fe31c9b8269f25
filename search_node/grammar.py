"""Gmail-style query text to an AST that knows no schema; every node prints canonically.

query := and ;  and := or+ (juxtaposition; "AND" optional) ;  or := unary ("OR" unary)*
unary := "-" unary | "(" and ")" | clause ;  clause := [name ":"] (word | word* | "phrase")
As in Gmail, OR binds tighter than juxtaposition: `a OR b c` is `(a OR b) c`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

_NAME = re.compile(r"([A-Za-z_][A-Za-z0-9_]*):")
_STOP = frozenset(' \t\r\n\f\v()"')


class QuerySyntaxError(ValueError):
    """Unparseable query text; `position` is the 0-based offset of the offending character."""

    def __init__(self, message: str, position: int) -> None:
        super().__init__(f"{message} at position {position}")
        self.message = message
        self.position = position


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(frozen=True)
class Clause:
    """`op:value`, or a bare word/phrase when op is None. `pos` is where the clause starts."""

    op: str | None
    value: str
    quoted: bool = False
    prefix: bool = False
    pos: int = field(default=0, compare=False)
    value_pos: int = field(default=0, compare=False)

    def __repr__(self) -> str:
        kind = "phrase" if self.quoted else "prefix" if self.prefix else "word"
        return f"{self.op + ':' if self.op else ''}{kind}({_quote(self.value)})"


@dataclass(frozen=True)
class Not:
    child: Node

    def __repr__(self) -> str:
        return f"NOT({self.child!r})"


@dataclass(frozen=True)
class And:
    children: tuple[Node, ...]

    def __repr__(self) -> str:
        return f"AND({', '.join(map(repr, self.children))})"


@dataclass(frozen=True)
class Or:
    children: tuple[Node, ...]

    def __repr__(self) -> str:
        return f"OR({', '.join(map(repr, self.children))})"


@dataclass(frozen=True)
class All:
    def __repr__(self) -> str:
        return "ALL"


Node = Clause | Not | And | Or | All


@dataclass(frozen=True)
class _Tok:
    kind: str  # "(" ")" "-" "OR" "AND" "clause"
    pos: int
    clause: Clause | None = None


def _read_quoted(text: str, start: int) -> tuple[str, int]:
    end = text.find('"', start + 1)
    if end < 0:
        raise QuerySyntaxError("unterminated quote", start)
    return text[start + 1:end], end + 1


def _read_bare(text: str, start: int) -> int:
    i = start
    while i < len(text) and text[i] not in _STOP:
        i += 1
    return i


def _lex(text: str) -> list[_Tok]:
    toks: list[_Tok] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
        elif c in "()":
            toks.append(_Tok(c, i))
            i += 1
        elif c == "-" and i + 1 < n and not text[i + 1].isspace() and text[i + 1] != ")":
            toks.append(_Tok("-", i))
            i += 1
        elif c == '"':
            value, end = _read_quoted(text, i)
            toks.append(_Tok("clause", i, Clause(None, value, quoted=True, pos=i, value_pos=i)))
            i = end
        else:
            end = _read_bare(text, i)
            word = text[i:end]
            if word in ("OR", "AND"):
                toks.append(_Tok(word, i))
            else:
                clause, end = _clause(text, i, end)
                toks.append(_Tok("clause", i, clause))
            i = end
    return toks


def _clause(text: str, start: int, end: int) -> tuple[Clause, int]:
    """The clause text[start:end] (an `op:"quoted value"` runs on past `end`) and where it stops."""
    word = text[start:end]
    m = _NAME.match(word)
    if m is None:
        return _bare(None, word, start, start), end
    op, vstart = m.group(1).lower(), start + m.end()
    if vstart == end and vstart < len(text) and text[vstart] == '"':
        value, stop = _read_quoted(text, vstart)
        return Clause(op, value, quoted=True, pos=start, value_pos=vstart), stop
    return _bare(op, text[vstart:end], start, vstart), end


def _bare(op: str | None, value: str, pos: int, value_pos: int) -> Clause:
    stripped = value.rstrip("*")
    return Clause(op, stripped, prefix=stripped != value and bool(stripped), pos=pos, value_pos=value_pos)


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = _lex(text)
        self.i = 0

    def peek(self) -> _Tok | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def parse(self) -> Node:
        if not self.toks:
            return All()
        node = self.and_()
        tok = self.peek()
        if tok is not None:
            raise QuerySyntaxError("unmatched ')'", tok.pos)
        return node

    def and_(self) -> Node:
        parts: list[Node] = []
        while (tok := self.peek()) is not None and tok.kind != ")":
            if tok.kind == "AND":
                if not parts:
                    raise QuerySyntaxError("AND needs a term before it", tok.pos)
                self.i += 1
                if (nxt := self.peek()) is None or nxt.kind in (")", "OR", "AND"):
                    raise QuerySyntaxError("AND needs a term after it", tok.pos)
                continue
            parts.append(self.or_())
        if not parts:
            raise QuerySyntaxError("expected a search term", self.where())
        return parts[0] if len(parts) == 1 else And(tuple(_flatten(parts, And)))

    def or_(self) -> Node:
        tok = self.peek()
        if tok is not None and tok.kind == "OR":
            raise QuerySyntaxError("OR needs a term before it", tok.pos)
        parts = [self.unary()]
        while (tok := self.peek()) is not None and tok.kind == "OR":
            self.i += 1
            nxt = self.peek()
            if nxt is None or nxt.kind in (")", "OR", "AND"):
                raise QuerySyntaxError("OR needs a term after it", tok.pos)
            parts.append(self.unary())
        return parts[0] if len(parts) == 1 else Or(tuple(_flatten(parts, Or)))

    def where(self) -> int:
        tok = self.peek()
        return tok.pos if tok is not None else len(self.text)

    def unary(self) -> Node:
        tok = self.toks[self.i]
        self.i += 1
        if tok.kind == "-":
            nxt = self.peek()
            if nxt is None or nxt.kind in (")", "OR", "AND"):
                raise QuerySyntaxError("'-' needs a term", tok.pos)
            return Not(self.unary())
        if tok.kind == "(":
            node = self.and_()
            close = self.peek()
            if close is None or close.kind != ")":
                raise QuerySyntaxError("unclosed '('", tok.pos)
            self.i += 1
            return node
        assert tok.clause is not None
        return tok.clause


def _flatten(parts: list[Node], kind: type[And] | type[Or]) -> list[Node]:
    out: list[Node] = []
    for p in parts:
        out.extend(p.children if isinstance(p, (And, Or)) and isinstance(p, kind) else (p,))
    return out


def parse(text: str) -> Node:
    """Parse query text; raises QuerySyntaxError with the offending position."""
    return _Parser(text).parse()
