"""Txn reads: get and multi_get agree with a plain model of puts, deletes and range deletes over a parent."""
from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from storage_node.batch import Txn

CF = "c"
KEYS = [bytes([k]) for k in range(8)]


class Committed:
    """A parent source: committed values, counting reads."""

    def __init__(self, values: dict[bytes, bytes]) -> None:
        self.values = values
        self.reads = 0

    def get(self, cf: str, key: bytes) -> bytes | None:
        self.reads += 1
        return self.values.get(key)

    def multi_get(self, cf: str, keys: list[bytes]) -> list[bytes | None]:
        self.reads += 1
        return [self.values.get(k) for k in keys]


key = st.sampled_from(KEYS)
op = st.one_of(st.tuples(st.just("put"), key, st.binary(min_size=1, max_size=3)),
               st.tuples(st.just("delete"), key),
               st.tuples(st.just("range"), key, key))


@given(st.dictionaries(key, st.binary(min_size=1, max_size=3)), st.lists(op, max_size=12), st.booleans())
def test_reads_see_the_batch_over_its_source(committed: dict[bytes, bytes], ops: list[tuple], in_child: bool) -> None:
    source = Committed(committed)
    txn = Txn(source)
    target = txn.child() if in_child else txn
    model: dict[bytes, bytes | None] = dict(committed)
    for kind, *args in ops:
        if kind == "put":
            target.put(CF, args[0], args[1])
            model[args[0]] = args[1]
        elif kind == "delete":
            target.delete(CF, args[0])
            model[args[0]] = None
        else:
            start, end = sorted(args)
            target.delete_range(CF, start, end)
            for k in KEYS:
                if start <= k < end:
                    model[k] = None
    expected = [model.get(k) for k in KEYS]
    assert [target.get(CF, k) for k in KEYS] == expected
    source.reads = 0
    assert target.multi_get(CF, KEYS) == expected
    assert source.reads <= 1
    assert target.multi_get(CF, []) == []
