"""Run a plan against committed state: bitmap algebra, cheapest first, then newest-first paging.

Segments may still hold removed docs, so every result is cut to `all`.
Doc numbers follow arrival. A doc that arrived after a newer one is "displaced"; every other
doc's number order is its (received_ms, id) order, so time ranges and cursors resolve by binary
search over doc numbers, and only displaced docs need their records read.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable

from pyroaring import BitMap

from search_node import fields as F
from search_node.keys import (
    ALL,
    DISPLACED,
    DOCS_CF,
    PAIR,
    TERM,
    Kind,
    bitmap_key,
    forward_key,
    late_docnum,
    late_range,
    meta_keys,
    posting_field,
    posting_key,
    prefix_range,
    size_slice,
    summary_key,
    term_range,
)
from search_node.plan import EVERYTHING, Bitmap, PAnd, Phrase, Plan, PNot, POr, Received, Size, Terms
from search_node.records import SIZE_BITS, DocMeta
from search_node.segment_reader import Postings
from search_node.segments import PLAIN_CODES, SUMMARY_CHARS
from search_node.store import Reader
from search_node.tiers import read_bitmap
from tidings_runtime.cursor import SortKey

_VERIFY_CHUNK = 256


def union(parts: list[BitMap]) -> BitMap:
    return BitMap.union(*parts) if len(parts) > 1 else parts[0].copy() if parts else BitMap()


def _rank(plan: Plan) -> int:
    """Evaluation order inside an AND: plain loads, then compound, then range and verified nodes."""
    if isinstance(plan, (Terms, Bitmap)):
        return 0
    if isinstance(plan, (PAnd, POr)):
        return 1
    if isinstance(plan, (Received, Size)):
        return 2
    return 3 if isinstance(plan, Phrase) else 4


class Execution:
    """One query over one reader; caches what it loads. Not shared between threads."""

    def __init__(self, reader: Reader, user: bytes) -> None:
        self.reader = reader
        self.user = user
        self._bitmaps: dict[bytes, BitMap] = {}
        self._terms: dict[tuple[int, str], dict[int, BitMap]] = {}
        self._metas: dict[int, DocMeta] = {}
        self._in_order: BitMap | None = None
        self._postings: Postings | None = None

    @property
    def postings(self) -> Postings:
        if self._postings is None:
            self._postings = Postings(self.reader, self.user)
        return self._postings

    # --- loads --------------------------------------------------------------------------
    def bitmap(self, name: bytes) -> BitMap:
        bm = self._bitmaps.get(name)
        if bm is None:
            bm = self._bitmaps[name] = read_bitmap(self.reader, DOCS_CF, bitmap_key(self.user, name))
        return bm

    def term_fields(self, kind: Kind, term: str) -> dict[int, BitMap]:
        """The postings of one term, per field, in one scan."""
        hit = self._terms.get((kind, term))
        if hit is None:
            parts: dict[int, list[BitMap]] = {}
            for key, docs in self.postings.range(*term_range(kind, term)):
                parts.setdefault(posting_field(key), []).append(docs)
            hit = self._terms[(kind, term)] = {field: union(bms) for field, bms in parts.items()}
        return hit

    def _term(self, kind: Kind, term: str, fields: frozenset[int]) -> BitMap:
        if len(fields) == 1 and (kind, term) not in self._terms:
            (field,) = fields
            return self.postings.exact(posting_key(kind, term, field))
        per_field = self.term_fields(kind, term)
        return union([bm for f, bm in per_field.items() if f in fields])

    def _prefix(self, prefix: str, fields: frozenset[int]) -> BitMap:
        broad = fields == PLAIN_CODES and len(prefix) <= SUMMARY_CHARS
        return self.postings.union(*prefix_range(TERM, prefix), fields, summary_key(prefix) if broad else None)

    def metas(self, docnums: Iterable[int]) -> list[DocMeta]:
        nums = list(docnums)
        missing = [d for d in nums if d not in self._metas]
        if missing:
            raw = self.reader.multi_get(DOCS_CF, meta_keys(self.user, missing))
            for d, data in zip(missing, raw):
                if data is None:
                    raise RuntimeError(f"search index: doc {d} has no record")
                self._metas[d] = DocMeta.decode(data)
        return [self._metas[d] for d in nums]

    # --- time order ---------------------------------------------------------------------
    def in_order(self) -> BitMap:
        if self._in_order is None:
            self._in_order = self.bitmap(ALL) - self.bitmap(DISPLACED)
        return self._in_order

    def lower_bound(self, key: SortKey) -> int:
        """The first index into in_order() whose doc sorts at or after `key`.

        Mail arrives at a roughly steady rate, so the probe is interpolated on received_ms
        between the bounds' times (2-4 record reads instead of ~17 at 100k docs); every other
        probe bisects, so a skewed mailbox costs at most twice a binary search."""
        docs = self.in_order()
        lo, hi = 0, len(docs)
        if not hi:
            return 0
        low_ms, high_ms = (m.received_ms for m in self.metas([docs[0], docs[hi - 1]]))  # near lo and hi
        interpolate = True
        while lo < hi:
            mid = (lo + hi) // 2
            if interpolate and high_ms > low_ms:
                mid = min(max(lo + int((key[0] - low_ms) * (hi - 1 - lo) / (high_ms - low_ms)), lo), hi - 1)
            interpolate = not interpolate
            meta = self.metas([docs[mid]])[0]
            if meta.sort_key < key:
                lo, low_ms = mid + 1, meta.received_ms
            else:
                hi, high_ms = mid, meta.received_ms
        return lo

    def _before(self, key: SortKey) -> BitMap:
        """In-order docs sorting strictly before `key`: a doc-number range."""
        docs, idx = self.in_order(), self.lower_bound(key)
        if idx == len(docs):
            return docs
        return docs & BitMap(range(0, docs[idx])) if idx else BitMap()

    # --- evaluation ---------------------------------------------------------------------
    def matches(self, plan: Plan) -> BitMap:
        """The live docs matching `plan` (posting lists may still hold removed docs)."""
        return self.evaluate(plan) & self.bitmap(ALL)

    def evaluate(self, plan: Plan, within: BitMap | None = None) -> BitMap:
        """Docs matching `plan`; when `within` is given, only docs inside it are guaranteed (and returned)."""
        handler: Callable[[Execution, Plan, BitMap | None], BitMap] = _HANDLERS[type(plan)]
        return handler(self, plan, within)

    def _eval_terms(self, plan: Terms, within: BitMap | None) -> BitMap:
        if plan.prefix:
            return self._prefix(plan.term, plan.fields)
        return self._term(TERM, plan.term, plan.fields)

    def _eval_bitmap(self, plan: Bitmap, within: BitMap | None) -> BitMap:
        return self.bitmap(plan.name)

    def _eval_and(self, plan: PAnd, within: BitMap | None) -> BitMap:
        kids = sorted(plan.children, key=_rank)
        loads = [self.evaluate(k) for k in kids if _rank(k) == 0]
        loads.sort(key=len)
        result = within
        for bm in loads:
            result = bm if result is None else result & bm
            if not result:
                return BitMap()
        for kid in kids[len(loads):]:
            if isinstance(kid, PNot):
                base = self.bitmap(ALL) if result is None else result
                result = base - self.evaluate(kid.child, base)
            else:
                part = self.evaluate(kid, result)
                result = part if result is None else result & part
            if not result:
                return BitMap()
        return result if result is not None else self.bitmap(ALL)

    def _eval_or(self, plan: POr, within: BitMap | None) -> BitMap:
        return union([self.evaluate(k, within) for k in plan.children])

    def _eval_not(self, plan: PNot, within: BitMap | None) -> BitMap:
        base = self.bitmap(ALL) if within is None else within & self.bitmap(ALL)
        return base - self.evaluate(plan.child, base)

    def _eval_received(self, plan: Received, within: BitMap | None) -> BitMap:
        docs = self.in_order()
        lo = self.lower_bound((plan.lo, "")) if plan.lo is not None else 0
        hi = self.lower_bound((plan.hi, "")) if plan.hi is not None else len(docs)
        ordered = BitMap()
        if lo < hi:
            last = docs[hi] if hi < len(docs) else docs.max() + 1
            ordered = docs & BitMap(range(docs[lo], last))
        late = BitMap(late_docnum(k) for k, _ in self.reader.scan(DOCS_CF, *late_range(self.user, plan.lo, plan.hi)))
        return ordered | late if within is None else ordered | (late & within)

    def _eval_size(self, plan: Size, within: BitMap | None) -> BitMap:
        """Range over the bit-sliced size index (O'Neil): one pass over the slices, high bit first."""
        eq = self.bitmap(ALL) if within is None else self.bitmap(ALL) & within
        hit = BitMap()
        if plan.bytes >= 1 << SIZE_BITS:
            return eq if not plan.above else hit
        for bit in reversed(range(SIZE_BITS)):
            slice_ = self.bitmap(size_slice(bit))
            if (plan.bytes >> bit) & 1:
                if not plan.above:
                    hit |= eq - slice_
                eq = eq & slice_
            else:
                if plan.above:
                    hit |= eq & slice_
                eq = eq - slice_
            if not eq:
                break
        return hit

    def _phrase_in(self, match: F.Match, code: int) -> tuple[BitMap, BitMap]:
        """(sure, unsure) docs for a phrase in one field. A pair field posts every two adjacent
        terms, so candidates are the docs holding all of the phrase's pairs, and a two-word phrase
        needs no verification; elsewhere candidates hold all of its terms."""
        exact_terms = match.terms[:-1] if match.prefix else match.terms
        only = frozenset((code,))
        pairs = F.BY_CODE[code].pairs and len(exact_terms) > 1
        if pairs:
            parts = [self._term(PAIR, F.pair_term(a, b), only) for a, b in zip(exact_terms, exact_terms[1:])]
        else:
            parts = [self._term(TERM, t, only) for t in exact_terms]
        if match.prefix:
            parts.append(self._prefix(match.terms[-1], only))
        parts.sort(key=len)
        candidates = BitMap.intersection(*parts) if len(parts) > 1 else parts[0].copy()
        if pairs and len(match.terms) == 2 and not match.prefix:
            return candidates, BitMap()
        return BitMap(), candidates

    def _eval_phrase(self, plan: Phrase, within: BitMap | None) -> BitMap:
        exact_terms = plan.match.terms[:-1] if plan.match.prefix else plan.match.terms
        if len(plan.fields) > 1:  # one scan per term serves every field
            paired = len(exact_terms) > 1
            if not paired or any(not F.BY_CODE[code].pairs for code in plan.fields):
                for t in exact_terms:
                    self.term_fields(TERM, t)
            if paired and any(F.BY_CODE[code].pairs for code in plan.fields):
                for a, b in zip(exact_terms, exact_terms[1:]):
                    self.term_fields(PAIR, F.pair_term(a, b))
        sures, unsures = zip(*(self._phrase_in(plan.match, code) for code in plan.fields))
        sure = union(list(sures))
        unsure = union(list(unsures)) - sure
        if within is not None:
            sure &= within
            unsure &= within
        return sure | self._verify(unsure, plan)

    def _verify(self, candidates: BitMap, plan: Phrase) -> BitMap:
        hits = BitMap()
        docs = list(candidates)
        for i in range(0, len(docs), _VERIFY_CHUNK):
            chunk = docs[i:i + _VERIFY_CHUNK]
            raw = self.reader.multi_get(DOCS_CF, [forward_key(self.user, d) for d in chunk])
            hits.update(d for d, data in zip(chunk, raw)
                        if data is not None and F.encoded_matches(data, plan.fields, plan.match))
        return hits

    # --- paging -------------------------------------------------------------------------
    def page(self, result: BitMap, limit: int, after: SortKey | None) -> tuple[list[DocMeta], bool]:
        """The `limit` newest docs of `result` sorting before `after`, and whether more follow.

        A displaced doc sorts before the in-order doc numbered just below it, so displaced hits
        numbered below the page's oldest in-order doc cannot enter the page: only the few above
        it have their records read.
        """
        displaced = result & self.bitmap(DISPLACED)
        ordered = result - displaced
        if after is not None:
            ordered &= self._before(after)
        n = len(ordered)
        newest = [ordered[i] for i in range(n - 1, max(n - limit, 0) - 1, -1)]
        floor = newest[-1] if len(newest) == limit else 0
        below = displaced.range_cardinality(0, floor) if floor else 0
        late = [m for m in self.metas(displaced.iter_equal_or_larger(floor))
                if after is None or m.sort_key < after]
        merged = sorted(self.metas(newest) + late, key=lambda m: m.sort_key, reverse=True)
        return merged[:limit], n + len(late) + below > limit


_HANDLERS: dict[type, Callable[..., BitMap]] = {
    Terms: Execution._eval_terms,
    Bitmap: Execution._eval_bitmap,
    PAnd: Execution._eval_and,
    POr: Execution._eval_or,
    PNot: Execution._eval_not,
    Received: Execution._eval_received,
    Size: Execution._eval_size,
    Phrase: Execution._eval_phrase,
}

__all__ = ["EVERYTHING", "Execution"]
