"""Search benchmark: Tidings' index vs SQLite FTS5 and tantivy on one generated 100k-message mailbox.

Run: python -m bench.search_bench [--messages N] [--queries Q] [--sync]
Prints the indexing rate and p50/p99 per query class (top 50 newest + total count).
"""
from __future__ import annotations

import argparse
import itertools
import random
import shutil
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from search_node.index import COLUMN_FAMILIES, IndexDoc, SearchIndex
from search_node.segments import SEAL_DOCS
from storage_node.rdict_store import RdictChunks, RdictStore, RdictTxn

USER = "00000000000000b1"
DAY = 86_400_000
START_MS = int(datetime(2024, 1, 1, tzinfo=UTC).timestamp() * 1000)
SPAN_MS = 730 * DAY
SYLLABLES = ("ka lo mi ne ru sa ti vo ber dan el fi gor han is jun kel lum mar nor ol pen qui ros sul tor ur vin "
             "wes yan zed ba co de ga").split()
EXTENSIONS = ("pdf", "docx", "xlsx", "txt", "png", "csv", "ics")
CLASSES = ("single word", "two-word AND", "field", "phrase", "prefix", "negation", "date range")


@dataclass(frozen=True)
class Corpus:
    docs: list[IndexDoc]
    vocabulary: list[str]
    cum_weights: list[float]
    contacts: list[tuple[str, str]]


def make_corpus(n: int, seed: int = 1) -> Corpus:
    """A deterministic mailbox: Zipf words, 2,000 contacts, two years of mail, some attachments."""
    rng = random.Random(seed)
    words: set[str] = set()
    while len(words) < 20_000:
        words.add("".join(rng.choices(SYLLABLES, k=rng.randint(2, 3))))
    vocabulary = sorted(sorted(words), key=lambda w: rng.random())  # set order follows the hash seed
    cum = list(itertools.accumulate(1 / (r + 1) ** 1.07 for r in range(len(vocabulary))))
    people = [(f"{rng.choice(vocabulary).title()} {rng.choice(vocabulary).title()}", "") for _ in range(2000)]
    domains = [f"{rng.choice(vocabulary)}.{rng.choice(['com', 'org', 'net', 'co.uk'])}" for _ in range(60)]
    contacts = [(name, f"{name.split()[0].lower()}.{name.split()[1].lower()}@{rng.choice(domains)}")
                for name, _ in people]
    contact_cum = list(itertools.accumulate(1 / (r + 1) for r in range(len(contacts))))

    def text(k: int) -> str:
        return " ".join(rng.choices(vocabulary, cum_weights=cum, k=k))

    def who(k: int) -> tuple[tuple[str, str], ...]:
        return tuple(rng.choices(contacts, cum_weights=contact_cum, k=k))

    docs = []
    for i in range(n):
        ms = START_MS + SPAN_MS * i // n - (rng.randint(1, DAY) if rng.random() < 0.02 else 0)
        attachments: list[tuple[str, str, str | None]] = []
        if rng.random() < 0.15:
            ext = rng.choice(EXTENSIONS)
            attachments.append((f"{rng.choice(vocabulary)}_{rng.randint(1, 99)}.{ext}", f"application/{ext}",
                                text(60) if ext in ("txt", "csv", "ics") else None))
        body = text(rng.randint(40, 250))
        html = rng.random() < 0.3
        docs.append(IndexDoc(
            id=f"{ms:012x}{rng.getrandbits(80):020x}", received_ms=ms, size=len(body) + rng.randint(500, 4000),
            folder_id=rng.choice(("inbox", "inbox", "inbox", "archive", "sent")), unread=rng.random() < 0.3,
            starred=rng.random() < 0.05, has_attachments=bool(attachments), rfc822msgid=f"{i}.{ms}@mx.example",
            from_=who(1), to=who(rng.randint(1, 3)), cc=who(rng.choice((0, 0, 1, 2))), bcc=(),
            subject=text(rng.randint(3, 8)), text="" if html else body, html=f"<p>{body}</p>" if html else "",
            attachments=tuple(attachments)))
    return Corpus(docs, vocabulary, cum, contacts)


def make_queries(corpus: Corpus, per_class: int, seed: int = 2) -> dict[str, list[dict[str, str]]]:
    """Each query in our syntax ("ours") and as FTS5 and tantivy text; `ts` bounds for date ranges."""
    rng = random.Random(seed)

    def word() -> str:
        return rng.choices(corpus.vocabulary[:5000], cum_weights=corpus.cum_weights[:5000])[0]

    def phrase() -> list[str]:
        toks = (rng.choice(corpus.docs).text or rng.choice(corpus.docs).subject).split()
        i = rng.randrange(max(1, len(toks) - 1))
        return toks[i:i + 2]

    out: dict[str, list[dict[str, str]]] = {c: [] for c in CLASSES}
    for _ in range(per_class):
        a, b = word(), word()
        out["single word"].append({"ours": a, "fts": a, "tv": a})
        out["two-word AND"].append({"ours": f"{a} {b}", "fts": f"{a} {b}", "tv": f"+{a} +{b}"})
        if rng.random() < 0.5:
            first = rng.choice(corpus.contacts[:300])[1].split(".")[0]
            out["field"].append({"ours": f"from:{first}", "fts": f"from_:{first}", "tv": f"from_:{first}"})
        else:
            out["field"].append({"ours": f"subject:{a}", "fts": f"subject:{a}", "tv": f"subject:{a}"})
        p = " ".join(phrase())
        out["phrase"].append({"ours": f'"{p}"', "fts": f'"{p}"', "tv": f'"{p}"'})
        pre = a[:3]
        out["prefix"].append({"ours": f"{pre}*", "fts": f"{pre}*", "tv": pre})
        out["negation"].append({"ours": f"{a} -{b}", "fts": f"{a} NOT {b}", "tv": f"+{a} -{b}"})
        lo = START_MS + rng.randrange(SPAN_MS - 60 * DAY)
        lo -= lo % DAY
        hi = lo + rng.choice((7, 30, 60)) * DAY
        day = lambda ms: datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y/%m/%d")  # noqa: E731
        out["date range"].append({"ours": f"{a} after:{day(lo)} before:{day(hi)}", "fts": a, "tv": a,
                                  "lo": str(lo), "hi": str(hi)})
    return out


Runner = Callable[[dict[str, str]], int]


# --- Tidings ----------------------------------------------------------------------------

def build_ours(corpus: Corpus, path: Path, sync: bool) -> tuple[Runner, float, Callable[[int], float]]:
    """The runner, the indexing rate, and a function removing n docs that returns the removal rate."""
    store, index = RdictStore(str(path), COLUMN_FAMILIES, sync=sync), SearchIndex()
    chunks = RdictChunks(store)

    def per_message(op: Callable[[RdictTxn, IndexDoc], None], docs: list[IndexDoc]) -> float:
        started = time.perf_counter()
        for n, doc in enumerate(docs, 1):  # one write batch per message, as the storage node writes them
            txn = store.txn()
            op(txn, doc)
            txn.commit()
            if n % SEAL_DOCS == 0:  # the node's maintainer seals postings in batches of their own: timed too
                index.maintain(store, chunks, USER)
        index.maintain(store, chunks, USER)
        return len(docs) / (time.perf_counter() - started)

    rate = per_message(lambda txn, doc: index.add(txn, USER, doc), corpus.docs)
    victims = random.Random(3).sample(corpus.docs, len(corpus.docs))
    remove = lambda n: per_message(lambda txn, doc: index.remove(txn, USER, doc.id), victims[:n])  # noqa: E731
    return (lambda q: index.search(store, USER, q["ours"], limit=50).total), rate, remove


# --- SQLite FTS5 --------------------------------------------------------------------------

def build_fts5(corpus: Corpus, path: Path) -> tuple[Runner, float]:
    db = sqlite3.connect(str(path), check_same_thread=False)
    db.execute("CREATE VIRTUAL TABLE m USING fts5(from_, to_, subject, body, filename, "
               "tokenize='unicode61 remove_diacritics 2')")
    db.execute("CREATE TABLE meta(rowid INTEGER PRIMARY KEY, ts INTEGER)")
    db.execute("CREATE INDEX meta_ts ON meta(ts)")
    ordered = sorted(corpus.docs, key=lambda d: (d.received_ms, d.id))  # rowid follows time
    started = time.perf_counter()
    for rowid, d in enumerate(ordered, 1):
        addr = lambda xs: " ".join(f"{n} {e}" for n, e in xs)  # noqa: E731
        db.execute("INSERT INTO m(rowid, from_, to_, subject, body, filename) VALUES (?,?,?,?,?,?)",
                   (rowid, addr(d.from_), addr(d.to + d.cc), d.subject, d.text or d.html,
                    " ".join(a[0] + " " + (a[2] or "") for a in d.attachments)))
        db.execute("INSERT INTO meta VALUES (?, ?)", (rowid, d.received_ms))
    db.commit()
    rate = len(ordered) / (time.perf_counter() - started)

    def run(q: dict[str, str]) -> int:
        if "lo" in q:  # rowid follows time: the date range is a rowid range
            lo, hi = db.execute("SELECT min(rowid), max(rowid) FROM meta WHERE ts >= ? AND ts < ?",
                                (int(q["lo"]), int(q["hi"]))).fetchone()
            where, args = "WHERE m MATCH ? AND rowid BETWEEN ? AND ?", (q["fts"], lo or 0, hi or -1)
        else:
            where, args = "WHERE m MATCH ?", (q["fts"],)
        db.execute(f"SELECT rowid FROM m {where} ORDER BY rowid DESC LIMIT 50", args).fetchall()
        return db.execute(f"SELECT count(*) FROM m {where}", args).fetchone()[0]
    return run, rate


# --- tantivy ------------------------------------------------------------------------------

def build_tantivy(corpus: Corpus, path: Path) -> tuple[Runner, float] | None:
    try:
        import tantivy
    except ImportError:
        return None
    fields = ("from_", "to_", "subject", "body", "filename")
    builder = tantivy.SchemaBuilder()
    for name in fields:
        builder.add_text_field(name)
    builder.add_integer_field("ts", indexed=True, fast=True)
    schema = builder.build()
    path.mkdir()
    index = tantivy.Index(schema, path=str(path))
    started = time.perf_counter()
    writer = index.writer()
    for d in corpus.docs:
        addr = lambda xs: " ".join(f"{n} {e}" for n, e in xs)  # noqa: E731
        writer.add_document(tantivy.Document(
            from_=addr(d.from_), to_=addr(d.to + d.cc), subject=d.subject, body=d.text or d.html,
            filename=" ".join(a[0] + " " + (a[2] or "") for a in d.attachments), ts=d.received_ms))
    writer.commit()
    writer.wait_merging_threads()
    rate = len(corpus.docs) / (time.perf_counter() - started)
    index.reload()
    searcher = index.searcher()

    def query_of(q: dict[str, str]) -> object:
        if "lo" in q:
            return index.parse_query(f"+{q['tv']} +ts:[{q['lo']} TO {int(q['hi']) - 1}]", list(fields))
        if q["ours"].endswith("*"):  # terms_with_prefix + term_set_query (MEASURED.md)
            per_field = []
            for name in fields:
                terms = [t[0] if isinstance(t, tuple) else t for t in searcher.terms_with_prefix(name, q["tv"])]
                if terms:
                    per_field.append((tantivy.Occur.Should, tantivy.Query.term_set_query(schema, name, terms)))
            return tantivy.Query.boolean_query(per_field) if per_field else tantivy.Query.empty_query()
        return index.parse_query(q["tv"], list(fields))

    def run(q: dict[str, str]) -> int:
        return searcher.search(query_of(q), limit=50, count=True, order_by_field="ts").count
    return run, rate


# --- measuring ----------------------------------------------------------------------------

def _percentiles(samples: list[float]) -> tuple[float, float]:
    samples = sorted(samples)
    return statistics.median(samples), samples[min(len(samples) - 1, int(len(samples) * 0.99))]


def measure(run: Runner, queries: dict[str, list[dict[str, str]]]) -> dict[str, tuple[float, float]]:
    for qs in queries.values():  # warm-up pass
        for q in qs:
            run(q)
    out = {}
    for cls, qs in queries.items():
        times = []
        for q in qs:
            t = time.perf_counter()
            run(q)
            times.append((time.perf_counter() - t) * 1000)
        out[cls] = _percentiles(times)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200, help="queries per class")
    parser.add_argument("--sync", action="store_true", help="fsync every message's write batch")
    parser.add_argument("--no-others", action="store_true", help="skip FTS5 and tantivy")
    args = parser.parse_args(argv)

    t = time.perf_counter()
    corpus = make_corpus(args.messages)
    queries = make_queries(corpus, args.queries)
    print(f"corpus: {args.messages} messages generated in {time.perf_counter() - t:.1f} s")
    tmp = Path(tempfile.mkdtemp(prefix="search_bench."))
    try:
        engines: dict[str, tuple[Runner, float]] = {}
        ours, rate, remove = build_ours(corpus, tmp / "rocks", args.sync)
        engines["tidings"] = ours, rate
        if not args.no_others:
            engines["fts5"] = build_fts5(corpus, tmp / "fts5.db")
            tv = build_tantivy(corpus, tmp / "tantivy")
            if tv is not None:
                engines["tantivy"] = tv
        mode = "synced" if args.sync else "unsynced"
        for name, (_run, rate) in engines.items():
            note = f" (one {mode} RocksDB write batch per message)" if name == "tidings" else ""
            print(f"index build {name:8s} {rate:9,.0f} msg/s{note}")
        results = {name: measure(run, queries) for name, (run, _rate) in engines.items()}
        _print_table(results)
        removals = min(2000, args.messages // 10)
        print(f"remove tidings {remove(removals):9,.0f} msg/s ({removals} removals, one {mode} batch each)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _print_table(results: dict[str, dict[str, tuple[float, float]]]) -> None:
    names = list(results)
    head = f"{'class':14s}" + "".join(f" | {n + ' p50/p99 ms':>22s}" for n in names)
    head += "".join(f" | {'ours/' + n + ' p50, p99':>22s}" for n in names[1:])
    print(head)
    print("-" * len(head))
    for cls in CLASSES:
        ours = results[names[0]][cls]
        row = f"{cls:14s}" + "".join(f" | {results[n][cls][0]:9.3f} / {results[n][cls][1]:8.3f}" for n in names)
        row += "".join(f" | {ours[0] / results[n][cls][0]:9.2f}, {ours[1] / results[n][cls][1]:8.2f}"
                       for n in names[1:])
        print(row)


if __name__ == "__main__":
    main()
