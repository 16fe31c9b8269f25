"""Differential test: the index against a brute-force evaluator over the stored IndexDocs.

A seeded mailbox (out-of-order arrivals, flag changes, moves, removals, re-adds) is indexed
into a real RocksDB; thousands of seeded queries must return the same ids, in the same
order, with the same total, as evaluating the query on every doc directly.
"""
from __future__ import annotations

import dataclasses
import random
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from search_node import fields as F
from search_node import index as search_index
from search_node import keys as K
from search_node import segment_reader, segments, tiers
from search_node.grammar import All, And, Clause, Node, Not, Or, QuerySyntaxError, parse
from search_node.index import COLUMN_FAMILIES, IndexDoc, SearchIndex, in_time_order
from search_node.store import Txn
from storage_node.rdict_store import RdictChunks, RdictStore

USER = "00000000000000aa"
DAY = 86_400_000
BASE_MS = int(datetime(2024, 1, 1, tzinfo=UTC).timestamp() * 1000)
NOW_MS = BASE_MS + 420 * DAY
WORDS = ("meeting report budget quarterly café naïve résumé straße data project alpha beta gamma delta review "
         "update invoice payment lunch friday server deploy release ticket urgent hello thanks team sales q3 2024 "
         "東 京 привет мир über cafe resume plan notes draft").split()
PEOPLE = [("Ann Lee", "ann"), ("Bob Stone", "bob.stone"), ("Chloé Durand", "chloe"), ("Dan Ng", "dan"),
          ("Eve Park", "eve"), ("Fatima Khan", "fkhan"), ("", "noreply"), ("Gus Ødegaard", "gus")]
DOMAINS = ["mail.example.com", "corp.example.com", "example.org", "uni.ac.uk"]
FOLDERS = ["inbox", "inbox", "inbox", "archive", "sent", "spam", "trash", "f00d"]
N_DOCS = 1200
N_QUERIES = 3000


def _words(rng: random.Random, n: int) -> str:
    weights = [1 / (i + 1) for i in range(len(WORDS))]
    return " ".join(rng.choices(WORDS, weights, k=n))


def _address(rng: random.Random) -> tuple[str, str]:
    name, local = rng.choice(PEOPLE)
    return name, f"{local}@{rng.choice(DOMAINS)}"


def make_mailbox(seed: int = 7) -> list[IndexDoc]:
    rng = random.Random(seed)
    docs, t = [], BASE_MS
    for i in range(N_DOCS):
        t += rng.randint(0, DAY // 3)
        late = rng.random() < 0.06
        atts = []
        if rng.random() < 0.2:
            atts.append((rng.choice(["report.pdf", "Q3 Budget.xlsx", "notes.txt", "résumé.docx"]),
                         "text/plain", _words(rng, 8) if rng.random() < 0.5 else None))
        body = _words(rng, rng.randint(0, 30))
        docs.append(IndexDoc(
            id=f"{rng.getrandbits(128):032x}", received_ms=t - (rng.randint(1, 5 * DAY) if late else 0),
            size=rng.choice([rng.randint(200, 5000), rng.randint(5000, 300_000), rng.randint(1 << 20, 6 << 20)]),
            folder_id=rng.choice(FOLDERS), unread=rng.random() < 0.4, starred=rng.random() < 0.1,
            has_attachments=bool(atts), rfc822msgid=f"<{i}.{rng.getrandbits(20):x}@{rng.choice(DOMAINS)}>",
            from_=(_address(rng),), to=tuple(_address(rng) for _ in range(rng.randint(1, 2))),
            cc=tuple(_address(rng) for _ in range(rng.randint(0, 1))), bcc=(),
            subject=_words(rng, rng.randint(1, 5)),
            text=body if rng.random() < 0.7 else "",
            html="" if rng.random() < 0.7 else f"<p>{_words(rng, 6)}</p><p>{body[:40]}</p>",
            attachments=tuple(atts)))
    return docs


# --- the reference evaluator --------------------------------------------------------

def _date(value: str) -> int:
    y, m, d = (int(p) for p in value.replace("-", "/").split("/"))
    return int(datetime(y, m, d, tzinfo=UTC).timestamp() * 1000)


def _size(value: str) -> int:
    value = value.lower().rstrip("b")
    unit = {"k": 1024, "m": 1 << 20, "g": 1 << 30}.get(value[-1:], 1)
    return int(value.rstrip("kmg")) * unit


def _age(value: str) -> int:
    return int(value[:-1]) * {"d": 1, "m": 30, "y": 365}[value[-1].lower()] * DAY


def _folder(value: str) -> str:
    return value.lower() if value.lower() in {"inbox", "sent", "drafts", "spam", "trash", "archive"} else value


Pred = Callable[[IndexDoc], bool]
REF_OPERATORS: dict[str, Callable[[str], Pred]] = {
    "has": lambda v: lambda d: d.has_attachments,
    "is": lambda v: {"unread": lambda d: d.unread, "read": lambda d: not d.unread,
                     "starred": lambda d: d.starred}[v.lower()],
    "in": lambda v: (lambda d: True) if v.lower() == "anywhere" else (lambda d: d.folder_id == _folder(v)),
    "after": lambda v: lambda d: d.received_ms >= _date(v),
    "before": lambda v: lambda d: d.received_ms < _date(v),
    "older_than": lambda v: lambda d: d.received_ms < NOW_MS - _age(v),
    "newer_than": lambda v: lambda d: d.received_ms > NOW_MS - _age(v),
    "larger": lambda v: lambda d: d.size > _size(v),
    "smaller": lambda v: lambda d: d.size < _size(v),
}


class Reference:
    def __init__(self, docs: dict[str, IndexDoc]) -> None:
        self.docs = docs
        self.forwards = {i: F.analyze(d) for i, d in docs.items()}
        self.all = frozenset(docs)
        self.cache: dict[tuple[str | None, str, bool], frozenset[str] | None] = {}

    def text(self, value: str, fields: tuple[F.Field, ...], prefix: bool) -> frozenset[str] | None:
        matches = [(f.code, m) for f in fields if (m := F.match_for(f, value, prefix=prefix)) is not None]
        if not matches:
            return None
        return frozenset(i for i, fw in self.forwards.items()
                         if any(F.forward_matches(fw, (code,), m) for code, m in matches))

    def clause(self, c: Clause) -> frozenset[str] | None:
        key = (c.op, c.value, c.prefix)
        if key not in self.cache:
            self.cache[key] = self._clause(c)
        return self.cache[key]

    def _clause(self, c: Clause) -> frozenset[str] | None:
        if c.op is None:
            return self.text(c.value, F.PLAIN_FIELDS, c.prefix)
        if c.op in F.BY_NAME and c.op not in ("body", "attachment"):
            return self.text(c.value, (F.BY_NAME[c.op],), c.prefix)
        if c.op in REF_OPERATORS:
            pred = REF_OPERATORS[c.op](c.value.strip())
            return frozenset(i for i, d in self.docs.items() if pred(d))
        return self.text(f"{c.op}:{c.value}", F.PLAIN_FIELDS, c.prefix)

    def eval(self, node: Node) -> frozenset[str] | None:
        if isinstance(node, Clause):
            return self.clause(node)
        if isinstance(node, Not):
            inner = self.eval(node.child)
            return None if inner is None else self.all - inner
        if isinstance(node, (And, Or)):
            parts = [p for p in map(self.eval, node.children) if p is not None]
            if not parts:
                return None
            return frozenset.intersection(*parts) if isinstance(node, And) else frozenset.union(*parts)
        assert isinstance(node, All)
        return self.all

    def search(self, query: str) -> list[str]:
        hits = self.eval(parse(query))
        hits = self.all if hits is None else hits
        return sorted(hits, key=lambda i: (self.docs[i].received_ms, i), reverse=True)


# --- queries ------------------------------------------------------------------------

class QueryGen:
    def __init__(self, rng: random.Random, docs: list[IndexDoc]) -> None:
        self.rng, self.docs = rng, docs

    def phrase(self) -> str:
        doc = self.rng.choice(self.docs)
        toks = (doc.text or doc.subject).split()
        n = self.rng.randint(2, 3)
        if len(toks) < n:
            return f'"{self.rng.choice(WORDS)} {self.rng.choice(WORDS)}"'
        i = self.rng.randrange(len(toks) - n + 1)
        return '"' + " ".join(toks[i:i + n]) + '"'

    def atom(self) -> str:
        rng = self.rng
        name, local = rng.choice(PEOPLE)
        day = datetime.fromtimestamp((BASE_MS + rng.randint(-5, 420) * DAY) / 1000, UTC)
        options = [
            lambda: rng.choice(WORDS + ["CAFÉ", "Resume", "zzz", "example.com", "ann@example.org"]),
            lambda: rng.choice(WORDS)[:rng.randint(1, 3)] + "*",
            self.phrase,
            lambda: f"{rng.choice(['from', 'to', 'cc', 'bcc'])}:" + rng.choice(
                [local, rng.choice(DOMAINS), 'example.com', name.split(' ')[0] or 'x',
                 local + '@' + rng.choice(DOMAINS), 'bo*', 'uni.ac.uk']),
            lambda: f"subject:{rng.choice(WORDS)}" if rng.random() < 0.7 else f"subject:{self.phrase()}",
            lambda: f"filename:{rng.choice(['pdf', 'report.pdf', 'budget', 'txt', 'resume', 'q3*'])}",
            lambda: rng.choice(["has:attachment", "is:unread", "is:read", "is:starred", "in:inbox", "in:Archive",
                                "in:f00d", "in:trash", "in:anywhere"]),
            lambda: f"{rng.choice(['before', 'after'])}:{day:%Y}{rng.choice('/-')}{day:%m}{rng.choice('/-')}{day:%d}",
            lambda: f"{rng.choice(['older_than', 'newer_than'])}:{rng.randint(1, 400)}d" if rng.random() < 0.8
            else f"{rng.choice(['older_than', 'newer_than'])}:{rng.randint(1, 12)}m",
            lambda: f"{rng.choice(['larger', 'smaller'])}:{rng.choice(['1000', '5K', '100k', '1M', '3M', '4096'])}",
            lambda: f"rfc822msgid:{rng.choice(self.docs).rfc822msgid.strip('<>')}",
        ]
        weights = [6, 2, 3, 3, 2, 1, 2, 2, 1, 1, 1]
        return rng.choices(options, weights)[0]()

    def query(self, depth: int = 0) -> str:
        rng = self.rng
        n = rng.randint(1, 3 if depth < 2 else 1)
        parts = []
        for _ in range(n):
            r = rng.random()
            if r < 0.15 and depth < 2:
                part = f"({self.query(depth + 1)})"
            elif r < 0.3 and depth < 2:
                part = f"{self.atom()} OR {self.atom()}"
            else:
                part = self.atom()
            parts.append(("-" if rng.random() < 0.15 else "") + part)
        return " ".join(parts)


# --- the test -----------------------------------------------------------------------

@pytest.fixture(scope="module", autouse=True)
def small_segments() -> Iterator[None]:
    """Seal 4 docs at a time, so 1,200 docs meet every merge level, prefix summaries, fresh records
    and the span cap."""
    saved = segments.SEAL_DOCS, segments.MAX_SPAN, segments.SUMMARY_SPAN
    segments.SEAL_DOCS, segments.MAX_SPAN, segments.SUMMARY_SPAN = 4, 4 * 8 ** 3, 4 * 8 ** 2
    yield
    segments.SEAL_DOCS, segments.MAX_SPAN, segments.SUMMARY_SPAN = saved


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory) -> tuple[RdictStore, SearchIndex, dict[str, IndexDoc], list[IndexDoc]]:
    rng = random.Random(11)
    docs = make_mailbox()
    store = RdictStore(str(tmp_path_factory.mktemp("search") / "db"), COLUMN_FAMILIES)
    index, live = SearchIndex(), {}
    txn = store.txn()
    for n, doc in enumerate(docs):
        index.add(txn, USER, doc)
        live[doc.id] = doc
        if rng.random() < 0.1:  # a flag change or a move of some earlier message
            target = live[rng.choice(list(live))]
            changed = dataclasses.replace(target, unread=rng.random() < 0.5, starred=rng.random() < 0.2,
                                          folder_id=rng.choice(FOLDERS))
            index.update(txn, USER, target.id, folder_id=changed.folder_id, unread=changed.unread,
                         starred=changed.starred)
            live[target.id] = changed
        if rng.random() < 0.06:
            victim = rng.choice(list(live))
            index.remove(txn, USER, victim)
            del live[victim]
        if rng.random() < 0.03:  # a retried delivery of a live message: idempotent
            again = live[rng.choice(list(live))]
            index.add(txn, USER, again)
        if n % 25 == 0:
            txn.commit()
        if n % 150 == 0:  # maintenance runs now and then, between and within seal runs
            index.maintain(store, RdictChunks(store), USER)
    txn.commit()
    index.maintain(store, RdictChunks(store), USER, max_steps=3)  # and leaves some docs fresh
    return store, index, live, docs


def test_index_matches_its_docs(indexed: tuple) -> None:
    store, index, live, _ = indexed
    assert index.check(store, USER, live.values()) == []


def test_queries_match_brute_force(indexed: tuple) -> None:
    store, index, live, docs = indexed
    ref = Reference(live)
    gen = QueryGen(random.Random(5), docs)
    checked = nonempty = 0
    for n in range(N_QUERIES):
        query = gen.query()
        try:
            expected = ref.search(query)
        except (QuerySyntaxError, KeyError, ValueError):
            with pytest.raises(QuerySyntaxError):
                index.search(store, USER, query, now_ms=NOW_MS)
            continue
        got = index.search(store, USER, query, limit=1000, now_ms=NOW_MS)
        assert (got.ids, got.total) == (expected[:1000], len(expected)), query
        if n % 10 == 0 and len(expected) > 7:  # page through with a cursor
            ids, cursor = [], None
            while True:
                page = index.search(store, USER, query, limit=7, cursor=cursor, now_ms=NOW_MS)
                assert page.total == len(expected)
                ids += page.ids
                cursor = page.next_cursor
                if cursor is None:
                    break
            assert ids == expected, query
        checked += 1
        nonempty += bool(expected)
    assert checked > N_QUERIES * 0.9 and nonempty > checked // 3


def test_rebuild_renumbers_in_time_order(indexed: tuple, tmp_path: Path) -> None:
    store, index, live, docs = indexed
    other = RdictStore(str(tmp_path / "db"), COLUMN_FAMILIES)
    txn = other.txn()
    for doc in docs[:300]:
        index.add(txn, USER, doc)
    txn.commit()
    txn = other.txn()
    assert index.rebuild(txn, other, USER, in_time_order(live.values())) == len(live)
    txn.commit()
    assert index.check(other, USER, live.values()) == []
    for query in ("meeting", '"data project"', "after:2024/06/01 -is:unread", "larger:1M OR from:ann"):
        assert index.search(other, USER, query, limit=1000, now_ms=NOW_MS) == \
            index.search(store, USER, query, limit=1000, now_ms=NOW_MS)
    other.close()


class _FailingChunks(RdictChunks):
    """Commits `allowed` chunks, then fails: an interrupted rebuild."""

    def __init__(self, store: RdictStore, allowed: int) -> None:
        super().__init__(store)
        self.allowed = allowed

    def commit(self, txn: Txn) -> None:
        if self.allowed == 0:
            raise RuntimeError("interrupted")
        self.allowed -= 1
        super().commit(txn)


def test_chunked_rebuild_survives_interruption(indexed: tuple, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    store, index, live, _ = indexed
    monkeypatch.setattr(search_index, "REBUILD_CHUNK_DOCS", 97)
    monkeypatch.setattr(search_index, "REBUILD_CHUNK_KEYS", 5000)
    other = RdictStore(str(tmp_path / "db"), COLUMN_FAMILIES)
    with other.txn() as txn:
        index.rebuild(txn, other, USER, in_time_order(live.values()))
    with pytest.raises(RuntimeError):
        index.rebuild(other.txn(), other, USER, in_time_order(live.values()), chunks=_FailingChunks(other, 10))
    assert "a rebuild did not complete: run it again" in index.check(other, USER, live.values())
    with other.txn() as txn:
        assert index.rebuild(txn, other, USER, in_time_order(live.values()), chunks=RdictChunks(other)) == len(live)
    assert index.check(other, USER, live.values()) == []
    for query in ("meeting", '"data project"', "after:2024/06/01 -is:unread", "larger:1M OR from:ann"):
        assert index.search(other, USER, query, limit=1000, now_ms=NOW_MS) == \
            index.search(store, USER, query, limit=1000, now_ms=NOW_MS)
    other.close()


def test_rebuild_streams_docs_and_refuses_them_out_of_order(indexed: tuple, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    store, index, live, _ = indexed
    monkeypatch.setattr(search_index, "REBUILD_CHUNK_DOCS", 50)
    ordered = in_time_order(live.values())
    pulled = 0

    def stream() -> Iterator[IndexDoc]:
        nonlocal pulled
        for doc in ordered:
            pulled += 1
            yield doc

    other = RdictStore(str(tmp_path / "db"), COLUMN_FAMILIES)
    pulled_at_commit: list[int] = []
    chunks = RdictChunks(other)
    commit = chunks.commit
    chunks.commit = lambda txn: (pulled_at_commit.append(pulled), commit(txn))[1]  # type: ignore[method-assign]
    with other.txn() as txn:
        assert index.rebuild(txn, other, USER, stream(), chunks=chunks) == len(live)
    assert index.check(other, USER, live.values()) == []
    # commits: the marker, the deletes, then one per chunk, each before the next chunk is read
    assert pulled_at_commit[2:5] == [50, 100, 150]
    swapped = [ordered[1], ordered[0], *ordered[2:]]
    with pytest.raises(ValueError, match="time order"), other.txn() as txn:
        index.rebuild(txn, other, USER, swapped)
    other.close()


def _rebuilt(index: SearchIndex, docs: list[IndexDoc], path: Path) -> RdictStore:
    """A store holding an index of `docs`, sealed into segments."""
    store = RdictStore(str(path), COLUMN_FAMILIES)
    with store.txn() as txn:
        index.rebuild(txn, store, USER, docs)
    index.maintain(store, RdictChunks(store), USER)
    return store


def _damaged(index: SearchIndex, docs: list[IndexDoc], path: Path, damage: Callable[[RdictStore], None]) -> list[str]:
    """What check reports on a fresh index of `docs` after `damage`."""
    store = _rebuilt(index, docs, path)
    damage(store)
    try:
        return index.check(store, USER, docs)
    finally:
        store.close()


def test_check_reports_each_kind_of_damage(indexed: tuple, tmp_path: Path) -> None:
    _, index, live, _ = indexed
    docs = in_time_order(live.values())[:80]
    user = K.user_prefix(USER)

    def drop_first_posting(store: RdictStore) -> None:
        first = K.segment_prefix(user, segment_reader.Postings(store, user).directory.spans[0])
        key, value = next(store.scan(K.POSTINGS_CF, first, K.user_range(user)[1]))
        run = segments.Block(value).run()
        rest = segments.Run(run.keys[1:], run.counts[1:], run.docs[int(run.counts[0]):])
        ((same_key, damaged),) = segments.encode_blocks(first, rest)
        assert same_key == key
        with store.txn() as txn:
            txn.put(K.POSTINGS_CF, key, damaged)

    def drop_forward(store: RdictStore) -> None:
        with store.txn() as txn:
            txn.delete(K.DOCS_CF, K.forward_key(user, 3))

    def star_doc(store: RdictStore) -> None:
        with store.txn() as txn:
            changes = tiers.BitmapChanges()
            changes.add_keys(K.DOCS_CF, [K.bitmap_key(user, K.STARRED_DOCS)], 5)
            changes.apply(txn)

    assert _damaged(index, docs, tmp_path / "none", lambda store: None) == []
    assert any(p.startswith("posting ") and p.endswith(" differs")
               for p in _damaged(index, docs, tmp_path / "posting", drop_first_posting))
    store = _rebuilt(index, docs, tmp_path / "once")
    drop_first_posting(store)
    assert any(p.startswith("posting lists differ in 1 of ") for p in index.check(store, USER, iter(docs)))
    store.close()
    assert {"doc records, forward records and the id map disagree", f"forward record differs for {docs[3].id}"} <= \
        set(_damaged(index, docs, tmp_path / "forward", drop_forward))
    starred = docs[5].starred
    assert ("doc bitmap starred differs" in _damaged(index, docs, tmp_path / "bitmap", star_doc)) is not starred
    store = RdictStore(str(tmp_path / "ids"), COLUMN_FAMILIES)
    with store.txn() as txn:
        index.rebuild(txn, store, USER, docs[:-1])
    problems = index.check(store, USER, docs[1:])
    store.close()
    assert f"indexed but absent: {docs[0].id}" in problems and f"not indexed: {docs[-1].id}" in problems


def test_searches_racing_maintenance_see_one_state(indexed: tuple, tmp_path: Path) -> None:
    """Searches over the live db while another thread seals and merges, the two switching every
    10 µs: every answer is the quiescent one."""
    _, index, live, docs = indexed
    store = RdictStore(str(tmp_path / "db"), COLUMN_FAMILIES)
    with store.txn() as txn:
        for doc in docs[:600]:
            index.add(txn, USER, doc)
    queries = ("meeting", '"data project"', "re*", "from:ann -is:unread", "subject:budget OR report")
    expected = {q: index.search(store, USER, q, limit=1000, now_ms=NOW_MS) for q in queries}
    sealer = threading.Thread(target=index.maintain, args=(store, RdictChunks(store), USER))
    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # the threads interleave inside searches and steps, not between them
    try:
        sealer.start()
        rounds = 0
        while sealer.is_alive() or rounds == 0:
            for q in queries:
                assert index.search(store, USER, q, limit=1000, now_ms=NOW_MS) == expected[q], q
            rounds += 1
        sealer.join()
    finally:
        sys.setswitchinterval(switch)
    assert segment_reader.Postings(store, K.user_prefix(USER)).directory.sealed == 600 and rounds > 1
    store.close()
