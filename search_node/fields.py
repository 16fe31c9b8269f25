"""Searchable fields: which analyzer each uses, the analyzed form of a message, and query-side matching."""
from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from search_node.keys import PAIR, TERM, posting_affixes
from tidings_runtime.analysis import ADDRESS, FILENAME, HTML, TEXT, fold_accents, looks_like_keyword, normalize

if TYPE_CHECKING:
    from search_node.index import IndexDoc


@dataclass(frozen=True)
class Field:
    name: str
    code: int
    keywords: bool  # values also carry whole-value terms (addresses, dotted file names)
    pairs: bool  # adjacent-term postings are kept, so two-word phrases need no verification
    plain: bool  # a word without an operator searches this field


FROM = Field("from", 1, keywords=True, pairs=False, plain=True)
TO = Field("to", 2, keywords=True, pairs=False, plain=True)
CC = Field("cc", 3, keywords=True, pairs=False, plain=True)
BCC = Field("bcc", 4, keywords=True, pairs=False, plain=True)
SUBJECT = Field("subject", 5, keywords=False, pairs=True, plain=True)
BODY = Field("body", 6, keywords=False, pairs=True, plain=True)
FILENAME_FIELD = Field("filename", 7, keywords=True, pairs=False, plain=True)
ATTACHMENT = Field("attachment", 8, keywords=False, pairs=True, plain=True)
MSGID = Field("rfc822msgid", 9, keywords=True, pairs=False, plain=False)

FIELDS: tuple[Field, ...] = (FROM, TO, CC, BCC, SUBJECT, BODY, FILENAME_FIELD, ATTACHMENT, MSGID)
BY_NAME = {f.name: f for f in FIELDS}
BY_CODE = {f.code: f for f in FIELDS}
PLAIN_FIELDS: tuple[Field, ...] = tuple(f for f in FIELDS if f.plain)
PAIR_CODES = frozenset(f.code for f in FIELDS if f.pairs)


@dataclass(frozen=True)
class Value:
    """One analyzed field value: positional tokens and position-less whole-value terms."""

    tokens: tuple[str, ...]
    keywords: tuple[str, ...] = ()


Forward = dict[int, list[Value]]  # field code -> values, the stored per-message analysis

_FIELD_SEP, _VALUE_SEP, _KEYWORD_SEP, _KEYWORD_JOIN = "\x1e", "\x1d", "\x1c", "\x1f"


_UNFIT = re.compile("[\x00-\x1f\ud800-\udfff]")


def _clean_keywords(words: Iterable[str]) -> tuple[str, ...]:
    """Keywords without control characters (separators of stored records) or lone surrogates
    (undecodable header bytes: they have no UTF-8, and U+DCFF is the fresh record's separator)."""
    return tuple(dict.fromkeys(w for w in words if w and not _UNFIT.search(w)))


def analyze(doc: IndexDoc) -> Forward:
    """Every searchable field of a message, analyzed."""
    fw: Forward = {}

    def add(field: Field, value: Value) -> None:
        if value.tokens or value.keywords:
            fw.setdefault(field.code, []).append(value)

    for field, addresses in ((FROM, doc.from_), (TO, doc.to), (CC, doc.cc), (BCC, doc.bcc)):
        for name, email in addresses:
            tokens = ADDRESS.tokens(name) + ADDRESS.tokens(email)
            add(field, Value(tuple(tokens), _clean_keywords(ADDRESS.keyword_terms(email))))
    add(SUBJECT, Value(tuple(TEXT.tokens(doc.subject))))
    add(BODY, Value(tuple(TEXT.tokens(doc.text))))
    add(BODY, Value(tuple(HTML.tokens(doc.html))))
    for filename, _content_type, text in doc.attachments:
        add(FILENAME_FIELD, Value(tuple(FILENAME.tokens(filename)), _clean_keywords(FILENAME.keyword_terms(filename))))
        if text:
            add(ATTACHMENT, Value(tuple(TEXT.tokens(text))))
    msgid = doc.rfc822msgid.strip().strip("<>")
    add(MSGID, Value((), _clean_keywords([msgid_term(msgid)])))
    return fw


def msgid_term(msgid: str) -> str:
    return fold_accents(normalize(msgid.strip().strip("<>")))


def posting_texts(fw: Forward) -> set[str]:
    """Every posting key a message belongs to, as text whose UTF-8 is the key (keys.posting_affixes):
    each term of each field, and in pair fields every two adjacent tokens as one PAIR term (an
    exact two-word phrase)."""
    out: set[str] = set()
    for code, values in fw.items():
        term, suffix = posting_affixes(TERM, code)
        pair, _ = posting_affixes(PAIR, code)
        paired = BY_CODE[code].pairs
        for value in values:
            tokens = value.tokens
            out.update([term + t + suffix for t in tokens])
            out.update([term + k + suffix for k in value.keywords])
            if paired:  # pair_term, inlined: this is the hot loop of indexing
                out.update([f"{pair}{a} {b}{suffix}" for a, b in zip(tokens, tokens[1:])])
    return out


def pair_term(first: str, second: str) -> str:
    return f"{first} {second}"


def encode_forward(fw: Forward) -> bytes:
    parts = []
    for code, values in sorted(fw.items()):
        encoded = _VALUE_SEP.join(" ".join(v.tokens) + _KEYWORD_SEP + _KEYWORD_JOIN.join(v.keywords) for v in values)
        parts.append(chr(code) + encoded)
    return _FIELD_SEP.join(parts).encode()


def decode_forward(data: bytes) -> Forward:
    fw: Forward = {}
    for part in data.decode().split(_FIELD_SEP):
        if not part:
            continue
        values = []
        for raw in part[1:].split(_VALUE_SEP):
            tokens, keywords = raw.split(_KEYWORD_SEP)
            values.append(Value(tuple(tokens.split()), tuple(keywords.split(_KEYWORD_JOIN)) if keywords else ()))
        fw[ord(part[0])] = values
    return fw


@dataclass(frozen=True)
class Match:
    """What a query word means in one field: consecutive terms, the last maybe a prefix."""

    terms: tuple[str, ...]
    prefix: bool = False


def match_for(field: Field, text: str, *, prefix: bool = False) -> Match | None:
    """The query-side analysis of `text` in `field`; None when nothing indexable remains."""
    if field is MSGID:
        term = msgid_term(text)
        return Match((term,), prefix) if term else None
    if field.keywords and looks_like_keyword(text):
        return Match((fold_accents(normalize(text)),), prefix)
    tokens = TEXT.tokens(text)
    return Match(tuple(tokens), prefix) if tokens else None


def value_matches(value: Value, match: Match) -> bool:
    """Does one analyzed value contain the match (the reference semantics the index must reproduce)?"""
    terms, n = match.terms, len(match.terms)
    if n == 1:
        term = terms[0]
        if match.prefix:
            return any(t.startswith(term) for t in value.tokens) or any(k.startswith(term) for k in value.keywords)
        return term in value.tokens or term in value.keywords
    toks = value.tokens
    head, last = terms[:-1], terms[-1]
    for i in range(len(toks) - n + 1):
        if toks[i:i + n - 1] == head and (toks[i + n - 1].startswith(last) if match.prefix else toks[i + n - 1] == last):
            return True
    return False


def encoded_matches(data: bytes, codes: Iterable[int], match: Match) -> bool:
    """forward_matches for a phrase (two terms or more) on an encoded forward record, without decoding it:
    tokens are space-joined, so the phrase is the terms space-joined between token boundaries."""
    needle = b" " + " ".join(match.terms).encode() + (b"" if match.prefix else b" ")
    if needle.strip() not in data:
        return False
    wanted = {chr(code).encode() for code in codes}
    for part in data.split(_FIELD_SEP.encode()):
        if part[:1] in wanted:
            for value in part[1:].split(_VALUE_SEP.encode()):
                if needle in b" " + value.split(_KEYWORD_SEP.encode(), 1)[0] + b" ":
                    return True
    return False


def forward_matches(fw: Forward, codes: Iterable[int], match: Match) -> bool:
    return any(value_matches(v, match) for code in codes for v in fw.get(code, ()))
