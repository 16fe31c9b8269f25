"""Segments against a dict model: merges, the block codec, key lookups (segment_reader) and guarded
maintenance steps (maintenance)."""
from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from pyroaring import BitMap

from search_node import keys as K
from search_node import maintenance as M
from search_node import segments as S
from search_node.keys import COLUMN_FAMILIES, DOCS_CF, POSTINGS_CF, state_key
from search_node.records import UserState
from search_node.segment_reader import Postings, fresh_in_range
from storage_node.rdict_store import RdictStore

USER = bytes.fromhex("00000000000000cc")
keys = st.builds(lambda kind, rest: kind + rest.replace(S.SEP, b"\xfe"), st.sampled_from([b"\x01", b"\x02"]),
                 st.binary(max_size=5))
docs_keys = st.lists(st.sets(keys, max_size=12), min_size=1, max_size=40)


def model(per_doc: list[set[bytes]], first: int = 0) -> dict[bytes, list[int]]:
    out: dict[bytes, list[int]] = {}
    for docnum, ks in enumerate(per_doc, first):
        for key in ks:
            out.setdefault(key, []).append(docnum)
    return dict(sorted(out.items()))


def as_dict(run: S.Run) -> dict[bytes, list[int]]:
    out, at = {}, 0
    for key, count in zip(run.keys, run.counts.tolist()):
        out[key] = run.docs[at:at + count].tolist()
        at += count
    return out


@given(docs_keys, st.integers(1, 7), st.sets(st.integers(0, 39)))
def test_merge_equals_the_model(per_doc: list[set[bytes]], parts: int, dead: set[int]) -> None:
    runs = [S.Run.of_doc(d, sorted(ks)) for d, ks in enumerate(per_doc)]
    size = -(-len(runs) // parts)
    merged = [S.merge(runs[i:i + size]) for i in range(0, len(runs), size)]  # runs of runs, as levels carry
    assert as_dict(S.merge(merged)) == model(per_doc)
    live = BitMap(range(len(per_doc))) - BitMap(dead)
    expected = {k: [d for d in v if d in live] for k, v in model(per_doc).items()}
    assert as_dict(S.merge(merged, live)) == {k: v for k, v in expected.items() if v}


@settings(max_examples=30, deadline=None)
@given(docs_keys, st.sampled_from([1, 3, S.BIG]))
def test_blocks_round_trip_and_find_every_key(tmp_path_factory, per_doc: list[set[bytes]], big: int) -> None:
    """Every key is found with its docs, whether they are stored plain or as roaring (`big`)."""
    run = S.merge([S.Run.of_doc(d, sorted(ks)) for d, ks in enumerate(per_doc)])
    store = RdictStore(str(tmp_path_factory.mktemp("seg") / "db"), COLUMN_FAMILIES)
    saved, S.BIG = S.BIG, big
    try:
        with store.txn() as txn:
            for key, value in S.encode_blocks(K.segment_prefix(USER, (0, 64)), run):
                txn.put(POSTINGS_CF, key, value)
            txn.put(DOCS_CF, K.dir_key(USER), S.Directory(b"n" * 8, 64, ((0, 64),)).encode())
            txn.put(DOCS_CF, state_key(USER), UserState(64).encode())
        postings = Postings(store, USER)
        expected = model(per_doc)
        for key, docs in expected.items():
            assert list(postings.exact(key)) == docs
            assert list(postings.exact(key + b"\x00")) == expected.get(key + b"\x00", [])
        assert {k: list(v) for k, v in postings.all_postings()} == expected
        assert as_dict(S.read_run(store, USER, (0, 64))[0]) == expected
    finally:
        S.BIG = saved
        store.close()


words = st.text(alphabet="ab\x00\x01\u00e9", min_size=1, max_size=4)


@given(st.lists(st.sets(words, min_size=1, max_size=8), max_size=20), words, words, st.booleans())
def test_fresh_records_give_the_keys_of_a_range(per_doc: list[set[str]], a: str, b: str, prefix: bool) -> None:
    """What a fresh record holds in [start, end), found by one search of its bytes first, is what
    splitting every record would find (`prefix`: a prefix range, as `union` asks)."""
    start, end = sorted([a.encode(), b.encode()])
    if prefix:
        end = start + K.KEY_END
    fresh = [(d, S.fresh_record(ks)) for d, ks in enumerate(per_doc)]
    expected = [(d, sorted(k.encode() for k in ks if start <= k.encode() < end)) for d, ks in enumerate(per_doc)]
    assert list(fresh_in_range(fresh, start, end)) == [(d, ks) for d, ks in expected if ks]


def _store_fresh(store: RdictStore, per_doc: list[set[bytes]]) -> None:
    with store.txn() as txn:
        if txn.get(DOCS_CF, K.dir_key(USER)) is None:
            txn.put(DOCS_CF, K.dir_key(USER), S.Directory.new().encode())
        first = UserState.decode(txn.get(DOCS_CF, state_key(USER))).next_docnum
        for docnum, ks in enumerate(per_doc, first):
            txn.put(DOCS_CF, K.fresh_key(USER, docnum), S.fresh_record(k.decode() for k in ks))
        txn.put(DOCS_CF, state_key(USER), UserState(first + len(per_doc)).encode())


def _seal_all(store: RdictStore) -> int:
    steps = 0
    while (plan := M.plan_step(store, USER)) is not None:
        with store.txn() as txn:
            assert M.apply(txn, plan)
        steps += 1
    return steps


def test_steps_seal_and_carry_and_keep_every_posting(tmp_path: Path) -> None:
    per_doc = [{b"\x01all\x00\x06", b"\x01doc%d\x00\x06" % d, b"\x01mod%d\x00\x05" % (d % 7)} for d in range(700)]
    store = RdictStore(str(tmp_path / "db"), COLUMN_FAMILIES)
    _store_fresh(store, per_doc)
    assert _seal_all(store) == 700 // S.SEAL_DOCS
    postings = Postings(store, USER)
    spans = [b - a for a, b in postings.directory.spans]
    assert spans == [256, 256, 32, 32, 32, 32, 32] and postings.directory.sealed == 672
    assert [d for d, _ in postings.fresh] == list(range(672, 700))
    assert {k: list(v) for k, v in _merged(postings.all_postings()).items()} == model(per_doc)
    assert list(postings.exact(b"\x01mod3\x00\x05")) == list(range(3, 700, 7))
    assert list(postings.union(b"\x01mod", b"\x01mod\xff", frozenset({5}))) == list(range(700))
    assert not postings.union(b"\x01mod", b"\x01mod\xff", frozenset({6}))
    store.close()


def _merged(pairs) -> dict[bytes, BitMap]:
    out: dict[bytes, BitMap] = {}
    for key, docs in pairs:
        out.setdefault(key, BitMap()).update(docs)
    return dict(sorted(out.items()))


def test_a_plan_made_before_the_directory_changed_writes_nothing(tmp_path: Path) -> None:
    store = RdictStore(str(tmp_path / "db"), COLUMN_FAMILIES)
    _store_fresh(store, [{b"\x01a\x00\x06"}] * S.SEAL_DOCS)
    stale = M.plan_step(store, USER)
    assert stale is not None
    with store.txn() as txn:  # a rebuild: the user's index starts over under a new nonce
        txn.put(DOCS_CF, K.dir_key(USER), S.Directory.new().encode())
    with store.txn() as txn:
        assert not M.apply(txn, stale)
    assert not list(store.scan(POSTINGS_CF, USER, USER + b"\xff"))
    assert len(Postings(store, USER).fresh) == S.SEAL_DOCS
    store.close()


def test_wide_segments_carry_prefix_summaries_that_check_can_verify(tmp_path: Path) -> None:
    width = S.SUMMARY_SPAN
    per_doc = [{b"\x01doc%d\x00\x06" % d, b"\x01mod%d\x00\x05" % (d % 7), b"\x01msgid%d\x00\x09" % d}
               for d in range(width)]
    store = RdictStore(str(tmp_path / "db"), COLUMN_FAMILIES)
    _store_fresh(store, per_doc)
    _seal_all(store)
    postings = Postings(store, USER)
    assert postings.directory.spans == ((0, width),)
    everything = BitMap(range(width))
    assert postings.exact(K.summary_key("mo")) == everything == postings.exact(K.summary_key("doc"))
    assert not postings.exact(K.summary_key("ms"))  # field 9 (message id) is not a plain field
    broad = postings.union(b"\x01mo", b"\x01mo\xff", S.PLAIN_CODES, K.summary_key("mo"))
    assert broad == everything == postings.union(b"\x01mo", b"\x01mo\xff", S.PLAIN_CODES)
    assert Postings(store, USER).summaries_hold((0, width))
    blocks = [k for k, _ in store.scan(POSTINGS_CF, K.segment_prefix(USER, (0, width)),
                                       K.segment_prefix(USER, (0, width + 1)))]
    with store.txn() as txn:
        txn.delete(POSTINGS_CF, blocks[-1])  # summary keys sort last
    assert not Postings(store, USER).summaries_hold((0, width))
    store.close()


def test_what_a_step_replaces_stays_for_the_grace_then_goes(tmp_path: Path) -> None:
    store = RdictStore(str(tmp_path / "db"), COLUMN_FAMILIES)
    _store_fresh(store, [{b"\x01a\x00\x06"}] * S.SEAL_DOCS)
    with store.txn() as txn:
        assert M.apply(txn, M.plan_step(store, USER, now_ms=0), now_ms=0)
    assert store.get(DOCS_CF, K.fresh_key(USER, 0)) is not None  # retired: a search that read the old directory sees it
    assert M.plan_step(store, USER, now_ms=S.GRACE_MS - 1) is None
    purge = M.plan_step(store, USER, now_ms=S.GRACE_MS)
    assert purge is not None and purge.docs == 0
    with store.txn() as txn:
        assert M.apply(txn, purge)
    assert store.get(DOCS_CF, K.fresh_key(USER, 0)) is None
    assert not list(store.scan(DOCS_CF, USER + b"x", USER + b"y"))
    assert list(Postings(store, USER).exact(b"\x01a\x00\x06")) == list(range(S.SEAL_DOCS))
    store.close()
