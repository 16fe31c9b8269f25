"""The search key serializer: its tags cannot collide, its key kinds are disjoint ranges, and
it builds the bytes the layout had before it existed (written here from the old code's output)."""
from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from search_node import fields as F
from search_node import keys as K

USER = K.user_prefix("0123456789abcdef")
U = b"\x01#Eg\x89\xab\xcd\xef"
DOC = "00112233445566778899aabbccddeeff"


def test_tags_are_distinct_single_bytes_below_the_user_range_end() -> None:
    for table in (K.DocTag, K.Tier):
        values = [tag.value for tag in table]
        assert len(set(values)) == len(values) and all(len(v) == 1 and v < K.KEY_END for v in values)
    kinds = [int(kind) for kind in K.Kind]
    assert len(set(kinds)) == len(kinds) and 0 not in kinds and max(K.Kind) is K.SUMMARY
    codes = [f.code for f in F.FIELDS]  # the last byte of a posting key; 0 is the summaries' field
    assert len(set(codes)) == len(codes) and 0 not in codes and max(codes) < 0xff


_DOC_KEYS = {
    K.DocTag.STATE: K.state_key(USER),
    K.DocTag.REBUILD: K.rebuild_marker(USER),
    K.DocTag.DIRECTORY: K.dir_key(USER),
    K.DocTag.RETIRED: K.retired_key(USER, (1 << 64) - 1, (1 << 32) - 1),
    K.DocTag.FRESH: K.fresh_key(USER, 0),
    K.DocTag.META: K.meta_key(USER, (1 << 32) - 1),
    K.DocTag.FORWARD: K.forward_key(USER, 7),
    K.DocTag.ID: K.id_key(USER, "f" * 32),
    K.DocTag.LATE: K.late_key(USER, -(1 << 62), 3),
    K.DocTag.BITMAP: K.tier_key(K.bitmap_key(USER, K.folder_bitmap("\U0010ffff")), K.Tier.TAIL),
}


def test_every_kind_of_doc_key_lies_in_its_own_range_only() -> None:
    assert set(_DOC_KEYS) == set(K.DocTag)
    for tag, key in _DOC_KEYS.items():
        for other in K.DocTag:
            start, end = K.tag_range(USER, other)
            assert (start <= key < end) == (other is tag)
        assert K.user_range(USER)[0] <= key < K.user_range(USER)[1]
    for a, b in itertools.combinations(K.DocTag, 2):  # no kind's range overlaps another's
        (a0, a1), (b0, b1) = K.tag_range(USER, a), K.tag_range(USER, b)
        assert a1 <= b0 or b1 <= a0


terms = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=6)


@given(st.sampled_from(list(K.Kind)), terms, st.sampled_from([f.code for f in F.FIELDS]), terms)
def test_posting_keys_split_back_and_stay_in_their_ranges(kind: K.Kind, term: str, field: int, other: str) -> None:
    key = K.posting_key(kind, term, field)
    assert K.split_posting_key(key) == (kind, term, field) and K.posting_field(key) == field
    assert K.posting_term(key) == term.encode() and K.KEY_END not in key
    prefix, suffix = K.posting_affixes(kind, field)
    assert (prefix + term + suffix).encode() == key
    assert key.endswith(K.field_suffix(field))
    for k in K.Kind:
        start, end = K.kind_range(k)
        assert (start <= key < end) == (k is kind)
    start, end = K.term_range(kind, term)
    assert start <= key < end
    assert (start <= K.posting_key(kind, other, field) < end) == (other == term)  # a term is no other's prefix
    start, end = K.prefix_range(kind, term[:2])
    assert start <= key < end


def test_summaries_sort_after_every_other_posting_key() -> None:
    assert K.posting_key(K.PAIR, "\U0010ffff" * 3, 0xfe) < K.summary_key("") < K.summary_key("a")
    assert K.kind_range(K.SUMMARY)[0] <= K.summary_key("\U0010ffff") < K.KEY_END


def test_segment_block_keys_belong_to_their_segment_only() -> None:
    span, wider = (32, 64), (32, 256)
    last = K.posting_key(K.TERM, "zz", 6)
    key = K.block_key(K.segment_prefix(USER, span), last)
    assert K.block_last_key(K.segment_prefix(USER, span), key) == last
    start, end = K.segment_range(USER, span)
    assert start <= key < end and not K.segment_range(USER, wider)[0] <= key < K.segment_range(USER, wider)[1]


def test_bitmap_and_id_keys_split_back() -> None:
    logical = K.bitmap_key(USER, K.size_slice(7))
    assert K.split_tier(K.tier_key(logical, K.Tier.BASE)) == (logical, K.Tier.BASE)
    assert K.bitmap_name(USER, logical) == b"size:07"
    assert K.key_doc_id(K.id_key(USER, DOC)) == DOC and K.key_docnum(K.meta_key(USER, 258)) == 258
    assert K.late_docnum(K.late_key(USER, 5, 9)) == 9
    assert K.pending_user(K.pending_key(USER)) == "0123456789abcdef"
    with pytest.raises(ValueError):
        K.user_prefix("0123456789ABCDEF")
    with pytest.raises(ValueError):
        K.id_key(USER, "abc")


# What the code before keys.py produced for these keys, byte for byte.
OLD_BYTES = [
    (K.user_prefix("0123456789abcdef"), U),
    (K.state_key(USER), U + b"s"),
    (K.rebuild_marker(USER), U + b"r"),
    (K.meta_key(USER, 258), U + b"d\x00\x00\x01\x02"),
    (K.forward_key(USER, 7), U + b"f\x00\x00\x00\x07"),
    (K.late_key(USER, 1700000000123, 9), U + b"t\x80\x00\x01\x8b\xcf\xe5h{\x00\x00\x00\t"),
    (K.late_range(USER, 5, 70), (U + b"t\x80\x00\x00\x00\x00\x00\x00\x05\x00\x00\x00\x00",
                                  U + b"t\x80\x00\x00\x00\x00\x00\x00F\x00\x00\x00\x00")),
    (K.late_range(USER, None, None), (U + b"t", U + b"u")),
    (K.id_key(USER, DOC), U + b'i\x00\x11"3DUfw\x88\x99\xaa\xbb\xcc\xdd\xee\xff'),
    (K.tier_key(K.bitmap_key(USER, K.ALL), K.Tier.TAIL), U + b"ball\x01"),
    (K.tier_key(K.bitmap_key(USER, K.folder_bitmap("f1")), K.Tier.BASE), U + b"bfolder:f1\x00"),
    (K.bitmap_key(USER, K.size_slice(7)), U + b"bsize:07"),
    (K.bitmap_range(USER), (U + b"b", U + b"c")),
    (K.dir_key(USER), U + b"g"),
    (K.fresh_key(USER, 65536), U + b"p\x00\x01\x00\x00"),
    (K.segment_prefix(USER, (32, 256)), U + b"\x00\x00\x00 \x00\x00\x01\x00"),
    (K.segment_range(USER, (32, 256)), (U + b"\x00\x00\x00 \x00\x00\x01\x00", U + b"\x00\x00\x00 \x00\x00\x01\x01")),
    (K.retired_key(USER, 1700000010000, 64), U + b"x\x00\x00\x01\x8b\xcf\xe5\x8f\x10\x00\x00\x00@"),
    (K.retired_range(USER), (U + b"x", U + b"y")),
    (K.retired_range(USER, 1699999999999), (U + b"x", U + b"x\x00\x00\x01\x8b\xcf\xe5h\x00\x00\x00\x00\x00")),
    (K.posting_key(K.TERM, "kalé", F.BODY.code), b"\x01kal\xc3\xa9\x00\x06"),
    (K.posting_key(K.PAIR, "a b", F.SUBJECT.code), b"\x02a b\x00\x05"),
    (K.summary_key("ka"), b"\x03ka\x00\x00"),
    (K.term_range(K.TERM, "ann"), (b"\x01ann\x00", b"\x01ann\x01")),
    (K.prefix_range(K.TERM, "an"), (b"\x01an", b"\x01an\xff")),
    (K.user_range(USER), (U, U + b"\xff")),
    (K.pending_key(USER), U),
    (sorted(F.posting_texts({6: [F.Value(("ann", "bob"))], 1: [F.Value(("ann",), ("ann@x.org",))]})),
     ["\x01ann\x00\x01", "\x01ann\x00\x06", "\x01ann@x.org\x00\x01", "\x01bob\x00\x06", "\x02ann bob\x00\x06"]),
]


@pytest.mark.parametrize("built, old", OLD_BYTES)
def test_keys_are_the_bytes_of_the_old_layout(built: object, old: object) -> None:
    assert built == old
