"""`PlainJSONResponse` writes the bytes Starlette's `JSONResponse` writes, for any plain data a
listing holds: strings of any characters (controls, quotes, non-ASCII, beyond the BMP), ints of
uint64's range, booleans, None, lists and dicts; and it is what the listing routes answer."""
from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse
from hypothesis import given
from hypothesis import strategies as st

from http_edge.plain_json import PlainJSONResponse
from http_edge.routes import folders, search, threads

_scalars = (st.text() | st.integers(min_value=-(2**63), max_value=2**64 - 1) | st.booleans() | st.none())
_documents = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=5)
                          | st.dictionaries(st.text(max_size=10), inner, max_size=5), max_leaves=30)


@given(_documents)
def test_same_bytes_as_starlette(document: Any) -> None:
    assert bytes(PlainJSONResponse(document).body) == bytes(JSONResponse(document).body)


def test_the_listings_answer_with_it() -> None:
    for route in (*folders.router.routes, *search.router.routes, *threads.router.routes):
        endpoint = getattr(route, "endpoint", None)
        if getattr(route, "methods", None) == {"GET"} and endpoint is not None:
            assert endpoint.__annotations__["return"] == "PlainJSONResponse", route
