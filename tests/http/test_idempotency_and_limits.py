"""`POST /v1/messages` with `Idempotency-Key` and its rate limit, over the shared grid."""
from __future__ import annotations

import uuid
from collections.abc import Callable

import httpx

from tests.cluster.grid import Grid
from tests.http.conftest import Login
from tidings.v1 import mail_pb2


def _folder(grid: Grid, email: str, folder: str, subject: str) -> list[str]:
    account = grid.mail.Authenticate(mail_pb2.AuthenticateRequest(email=email, password="correct horse battery"),
                                     timeout=10)
    page = grid.mail.ListMessages(mail_pb2.ListMessagesRequest(user_id=account.user_id, folder_id=folder, limit=200),
                                  timeout=10)
    return [m.id for m in page.messages if m.subject == subject]


def test_same_key_same_body_is_sent_once_with_the_same_answer(
        grid: Grid, http: httpx.Client, login: Login, new_user: Callable[[str], str]) -> None:
    alice, bob = new_user("idem"), new_user("idem")
    headers = {**login(alice), "Idempotency-Key": f"k-{uuid.uuid4()}"}
    body = {"to": [{"email": bob}], "subject": "only once", "text": "hello"}
    first = http.post("/v1/messages", json=body, headers=headers)
    assert first.status_code == 202, first.text
    again = http.post("/v1/messages", json={"text": "hello", "subject": "only once", "to": [{"email": bob}]},
                      headers=headers)      # the same body, its keys in another order
    assert again.status_code == 202, again.text
    assert again.json() == first.json()
    assert _folder(grid, alice, "sent", "only once") == [first.json()["id"]]
    assert len(_folder(grid, bob, "inbox", "only once")) == 1
    other = http.post("/v1/messages", json={**body, "text": "changed"}, headers=headers)
    assert other.status_code == 422, other.text
    assert other.json()["error"]["code"] == "idempotency_key_reused"
    assert len(_folder(grid, bob, "inbox", "only once")) == 1


def test_keys_are_per_user_and_checked(http: httpx.Client, login: Login, new_user: Callable[[str], str]) -> None:
    alice, carol, bob = new_user("idem"), new_user("idem"), new_user("idem")
    key = f"shared-{uuid.uuid4()}"
    a = http.post("/v1/messages", json={"to": [{"email": bob}], "subject": "a"},
                  headers={**login(alice), "Idempotency-Key": key})
    c = http.post("/v1/messages", json={"to": [{"email": bob}], "subject": "c"},
                  headers={**login(carol), "Idempotency-Key": key})
    assert a.status_code == c.status_code == 202
    assert a.json()["id"] != c.json()["id"]
    for bad in ("", "x" * 256, "caf\u00e9".encode()):
        r = http.post("/v1/messages", json={"to": [{"email": bob}], "subject": "bad"},
                      headers={**login(alice), "Idempotency-Key": bad})
        assert r.status_code == 400, (bad, r.text)
        assert r.json()["error"]["code"] == "invalid_request"


def test_a_burst_over_the_send_rate_is_429_with_retry_after(
        http: httpx.Client, login: Login, new_user: Callable[[str], str]) -> None:
    alice, bob = new_user("burst"), new_user("burst")
    headers = login(alice)
    statuses = []
    for i in range(40):     # the default burst is 20, refilled at 1 a second
        r = http.post("/v1/messages", json={"to": [{"email": bob}], "subject": f"burst {i}"}, headers=headers)
        statuses.append(r.status_code)
        if r.status_code != 202:
            break
    assert statuses[:20] == [202] * 20
    assert statuses[-1] == 429, r.text
    assert r.json()["error"]["code"] == "rate_limited"
    assert int(r.headers["Retry-After"]) >= 1
    other = http.post("/v1/messages", json={"to": [{"email": alice}], "subject": "unlimited"}, headers=login(bob))
    assert other.status_code == 202     # per user
