"""What the schemathesis run (test_openapi_schemathesis.py) found, pinned: bad input that
gave a 5xx, and the spec's shape (every route's errors documented with the error body)."""
from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from http_edge.app import create_app
from http_edge.settings import Settings
from tests.http.conftest import Login

pytestmark = pytest.mark.timeout(60)


def _not_found(r: httpx.Response) -> None:
    assert r.status_code == 404, r.text
    assert r.json()["error"]["code"] == "not_found"


def test_ids_that_cannot_exist_are_404_not_503(http: httpx.Client, new_user: Callable[[str], str],
                                               login: Login) -> None:
    """A thread id of the right length but not hex, and a PATCH of such a message id, made the
    storage nodes raise ValueError (bytes.fromhex): UNKNOWN, "0 of 2 replicas answered", 503."""
    auth = login(new_user("ids"))
    _not_found(http.get("/v1/threads/" + "z" * 16, headers=auth))
    _not_found(http.get("/v1/threads/%C2%B3%04%F3%8A%BA%B1%13%F2%A2%8B%A1R%C3%80%24%F3%BE%B1%B1%C3%9D%F0%96"
                        "%B0%AB%C2%BAn%C2%B3%C3%8D%C2%8A", headers=auth))  # 16 characters, as schemathesis sent
    for patch in ({"unread": True}, {"starred": False}, {"folder_id": "archive"}):
        _not_found(http.patch("/v1/messages/" + "z" * 32, headers=auth, json=patch))
    _not_found(http.patch("/v1/messages/" + "Z" * 32, headers=auth, json={"unread": True}))


def test_every_route_documents_its_errors() -> None:
    spec = create_app(Settings(token_secret=b"k" * 32)).openapi()
    assert "HTTPValidationError" not in spec["components"]["schemas"]  # bad input is 400, not FastAPI's 422
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            errors = {int(s) for s in responses if int(s) >= 400}
            if path != "/healthz":
                assert errors, (method, path)
            if path.startswith("/v1/") and path != "/v1/auth/token":
                assert {401, 429, 503} <= errors, (method, path, errors)
            if operation.get("parameters") or operation.get("requestBody"):
                assert 400 in errors, (method, path)
            if operation.get("requestBody"):
                assert 413 in errors, (method, path)
            for status in errors:
                schema = responses[str(status)]["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/ErrorBody"}, (method, path, status)
    send = spec["paths"]["/v1/messages"]["post"]["responses"]
    assert "Retry-After" in send["429"]["headers"] and "422" in send


def test_a_cursor_we_did_not_make_is_400(http: httpx.Client, new_user: Callable[[str], str], login: Login) -> None:
    auth = login(new_user("cursors"))
    for cursor in ("nonsense", "zz.0123456789abcdef0123456789abcdef", "1." + "0" * 31):
        r = http.get("/v1/folders/inbox/messages", params={"cursor": cursor}, headers=auth)
        assert r.status_code == 400, r.text
        assert r.json()["error"]["code"] == "invalid_request" and "cursor" in r.json()["error"]["message"]
