"""The request id of an HTTP request: the client's first `X-Request-ID` when well formed, else a
fresh one (16 hex digits), however many other headers the request has."""
from __future__ import annotations

import re

from http_edge.access_log import request_id


def _scope(*headers: tuple[bytes, bytes]) -> dict[str, object]:
    return {"type": "http", "headers": [(b"host", b"127.0.0.1"), *headers, (b"accept", b"*/*")]}


def test_the_clients_well_formed_id_is_kept() -> None:
    assert request_id(_scope((b"x-request-id", b"client-chosen.1:a"))) == "client-chosen.1:a"
    assert request_id(_scope((b"x-request-id", b"first"), (b"x-request-id", b"second"))) == "first"


def test_a_missing_or_bad_id_is_replaced() -> None:
    for scope in (_scope(), _scope((b"x-request-id", b"bad id;x")), _scope((b"x-request-id", b"")),
                  _scope((b"x-request-id", b"\xe9t\xe9")), _scope((b"x-request-id", b"a" * 129))):
        assert re.fullmatch(r"[0-9a-f]{16}", request_id(scope)), scope
    assert request_id(_scope()) != request_id(_scope())
