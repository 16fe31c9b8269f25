"""Page cursors: the (received ms, message id) of the last item a page showed, as one opaque
token. Folder listings (router) and search results (search_node) page with the same codec."""
from __future__ import annotations

import re

_CURSOR = re.compile(r"^([0-9a-f]{1,12})\.([0-9a-f]{32})$")

SortKey = tuple[int, str]


class InvalidCursor(ValueError):
    """A cursor this system did not produce."""


def encode(key: SortKey) -> str:
    received_ms, message_id = key
    return f"{received_ms:x}.{message_id}"


def decode(cursor: str) -> SortKey:
    match = _CURSOR.match(cursor)
    if match is None:
        raise InvalidCursor(f"malformed cursor {cursor[:80]!r}")
    return int(match.group(1), 16), match.group(2)
