"""Addresses in `POST /v1/messages` against the shared grid: the router's rules, 4xx for bad ones."""
from __future__ import annotations

import uuid
from collections.abc import Callable
from email import message_from_string, policy

import httpx
import pytest

from tests.cluster.grid import Grid
from tests.http.conftest import Login

pytestmark = pytest.mark.timeout(120)


def inbox(http: httpx.Client, headers: dict[str, str]) -> list[dict]:
    r = http.get("/v1/folders/inbox/messages", headers=headers)
    assert r.status_code == 200, r.text
    return r.json()["messages"]


def post(http: httpx.Client, headers: dict[str, str], **body: object) -> httpx.Response:
    return http.post("/v1/messages", headers=headers, json={"subject": "s", "text": "t", **body})


@pytest.mark.parametrize("recipient", [
    "ann@[127.0.0.1]", "a..b@example.test", "Ann <ann@localhost>", {"email": "no at sign"},
    {"email": "x" * 65 + "@example.test"},
])
def test_bad_recipient_is_400_with_a_json_error(http: httpx.Client, login: Login, new_user: Callable[[str], str],
                                               recipient: object) -> None:
    r = post(http, login(new_user("sender")), to=[recipient])
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["code"] == "invalid_request" and "malformed address" in error["message"]


def test_rfc_5321_recipients_are_delivered(grid: Grid, http: httpx.Client, login: Login,
                                           new_user: Callable[[str], str]) -> None:
    sender = login(new_user("sender"))
    quoted = f'"ann lee {uuid.uuid4().hex[:6]}"@example.test'
    greek = f"δοκιμή{uuid.uuid4().hex[:6]}@example.test"
    for email in (quoted, greek):
        grid.add_user(email)
    greek_sent = greek.upper().replace("EXAMPLE.TEST", "example.test")   # domains: lower case
    r = post(http, sender, to=[f"Ann <{quoted}>", greek.upper()], subject="rfc 5321")
    assert r.status_code == 202, r.text
    for email in (quoted, greek):
        [summary] = inbox(http, login(email))
        assert summary["subject"] == "rfc 5321"
        raw = http.get(f"/v1/messages/{summary['id']}/raw", headers=login(email)).content
        to = message_from_string(raw.decode("utf-8"), policy=policy.default)["To"]   # RFC 6532
        assert [a.addr_spec for a in to.addresses] == [quoted, greek_sent]


def test_spellings_of_one_user_get_one_copy(http: httpx.Client, login: Login, new_user: Callable[[str], str]) -> None:
    sender = login(new_user("sender"))
    email = new_user("bea")
    local, domain = email.split("@")
    r = post(http, sender, to=[email.upper()], cc=[f'"{local}"@{domain}'], subject="once")
    assert r.status_code == 202, r.text
    assert [m["subject"] for m in inbox(http, login(email.title()))] == ["once"]
