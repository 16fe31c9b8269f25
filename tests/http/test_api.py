"""The HTTP edge in process (httpx ASGITransport) over the router's test double.

The double is :class:`tests.fake_mail.FakeMail`, with ann (the signed-in user), bob and
cat at ``example.test`` and four messages in ann's inbox; each test injects the router
failures it maps. The cluster tests (test_http_cluster.py) run the same API against the
real processes.
"""
from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from email import message_from_bytes, policy
from typing import Any

import grpc
import httpx
from prometheus_client import REGISTRY

from http_edge.app import create_app
from http_edge.settings import Settings
from tests.fake_mail import FakeMail
from tidings.v1 import mail_pb2, types_pb2

USER = types_pb2.Account(user_id="00000000000000a1", email="ann@example.test")


def summary(id: str, **kw: Any) -> types_pb2.MessageSummary:
    s = types_pb2.MessageSummary(
        id=id, thread_id="t1", folder_id="inbox", subject="hi", snippet="hello", received_ms=1_700_000_000_123,
        size=123, to=[types_pb2.Address(name="Ann", email="ann@example.test")], **kw
    )
    getattr(s, "from").CopyFrom(types_pb2.Address(name="Bob", email="bob@example.test"))
    return s


def seeded() -> FakeMail:
    """ann's inbox: m1 (unread, HTML with an attachment), m2, m3 (a hostile attachment), parent."""
    fake = FakeMail()
    fake.add_user(USER.email, "pw", user_id=USER.user_id)
    fake.add_user("bob@example.test", "bob-pw")
    fake.add_user("cat@example.test", "cat-pw")
    fake.store(USER.user_id, summary("m1", unread=True), message_id="m1@example.test", text="hello",
               html='<p onclick="x()">hi<script>alert(1)</script></p>', attachments=[mail_pb2.AttachmentContent(
                   info=types_pb2.AttachmentInfo(id="a1", filename="x.html", content_type="text/html", size=3),
                   content=b"<p>")])
    fake.store(USER.user_id, summary("m2"))
    fake.store(USER.user_id, summary("m3"), attachments=[mail_pb2.AttachmentContent(
        info=types_pb2.AttachmentInfo(id="a1", filename='résumé "1".html', content_type="text/html\r\nX: y"),
        content=b"<script>")])
    fake.store(USER.user_id, summary("parent"), message_id="p@example.test", references=["r@example.test"])
    return fake


Scenario = Callable[[httpx.AsyncClient, FakeMail, dict[str, str]], Awaitable[None]]


def run(scenario: Scenario, **settings: Any) -> None:
    async def main() -> None:
        async with seeded() as fake:
            app = create_app(Settings(token_secret=b"k" * 32, router=fake.address, rpc_timeout=5, **settings))
            token, _ = app.state.signer.mint(USER.user_id, USER.email)
            async with app.router.lifespan_context(app):
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(transport=transport, base_url="http://edge") as client:
                    await scenario(client, fake, {"Authorization": f"Bearer {token}"})

    asyncio.run(main())


def assert_error(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert list(body) == ["error"] and body["error"]["code"] == code and body["error"]["message"], body
    return body["error"]


def test_token_from_router_authentication() -> None:
    async def scenario(c: httpx.AsyncClient, fake: FakeMail, auth: dict[str, str]) -> None:
        r = await c.post("/v1/auth/token", json={"email": USER.email, "password": "pw"})
        assert r.status_code == 200 and set(r.json()) == {"token", "expires_at"}
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", r.json()["expires_at"])
        r = await c.get("/v1/folders", headers={"Authorization": f"Bearer {r.json()['token']}"})
        assert r.json()["folders"][0] == {"id": "inbox", "name": "Inbox", "role": "inbox", "total": 4, "unread": 1}
        assert_error(await c.post("/v1/auth/token", json={"email": USER.email, "password": "no"}), 401,
                     "unauthenticated")
        # an unknown account looks like a wrong password
        fake.fail("Authenticate", grpc.StatusCode.NOT_FOUND, "no such account", times=1)
        err = assert_error(await c.post("/v1/auth/token", json={"email": "ghost@example.test", "password": "x"}),
                           401, "unauthenticated")
        assert "account" not in err["message"]

    run(scenario)


def test_summary_and_detail_shape_html_sanitised() -> None:
    async def scenario(c: httpx.AsyncClient, fake: FakeMail, auth: dict[str, str]) -> None:
        r = await c.get("/v1/messages/m1", headers=auth)
        assert r.status_code == 200, r.text
        d = r.json()
        assert d["from"] == {"name": "Bob", "email": "bob@example.test"}
        assert d["received_at"] == "2023-11-14T22:13:20.123Z"
        assert d["message_id"] == "m1@example.test" and d["in_reply_to"] is None
        assert "script" not in d["html"] and "onclick" not in d["html"] and "hi" in d["html"]
        assert d["attachments"] == [{"id": "a1", "filename": "x.html", "content_type": "text/html", "size": 3}]
        assert fake.calls["GetMessage"][0].user_id == USER.user_id
        assert_error(await c.get("/v1/messages/zzz", headers=auth), 404, "not_found")

    run(scenario)


def test_listing_passes_paging_through() -> None:
    async def scenario(c: httpx.AsyncClient, fake: FakeMail, auth: dict[str, str]) -> None:
        page = (await c.get("/v1/folders/inbox/messages", headers=auth, params={"limit": 3})).json()
        assert set(page) == {"messages", "next_cursor", "state"} and len(page["messages"]) == 3 and page["next_cursor"]
        assert set(page["messages"][0]) == {"id", "thread_id", "folder_id", "from", "to", "cc", "subject",
                                            "snippet", "received_at", "size", "unread", "starred",
                                            "has_attachments", "answered", "draft", "keywords"}
        cursor = page["next_cursor"]
        page = (await c.get("/v1/folders/inbox/messages", headers=auth, params={"cursor": cursor})).json()
        assert len(page["messages"]) == 1 and page["next_cursor"] is None
        page = (await c.get("/v1/folders/inbox/messages", headers=auth, params={"unread": "true"})).json()
        assert [m["id"] for m in page["messages"]] == ["m1"]
        first, second, third = fake.calls["ListMessages"]
        assert (first.user_id, first.folder_id, first.limit, first.unread_only, first.cursor) == (
            USER.user_id, "inbox", 3, False, "")
        assert (second.limit, second.unread_only, second.cursor) == (50, False, cursor)
        assert third.unread_only
        for bad in ({"limit": 0}, {"limit": 201}, {"limit": "x"}, {"unread": "perhaps"}):
            assert_error(await c.get("/v1/folders/inbox/messages", headers=auth, params=bad), 400, "invalid_request")

    run(scenario)


def test_send_builds_mime_and_delivers_once() -> None:
    async def scenario(c: httpx.AsyncClient, fake: FakeMail, auth: dict[str, str]) -> None:
        r = await c.post("/v1/messages", headers=auth, json={
            "to": ["Bob <bob@example.test>"], "cc": [], "bcc": ["cat@example.test"], "subject": "Re: hi",
            "text": "yes", "in_reply_to": "parent",
            "attachments": [{"filename": "a.txt", "content_type": "text/plain", "content_base64": "aGk="}]})
        assert r.status_code == 202, r.text
        body = r.json()
        [sent] = fake.mailbox(USER.user_id, "sent")
        assert (body["id"], body["thread_id"]) == (sent.id, sent.thread_id)
        assert body["message_id"].endswith("@example.test")
        [deliver] = fake.calls["Deliver"]
        assert re.fullmatch(r"[0-9a-f]{32}", deliver.entry_id)
        assert list(deliver.recipients) == ["bob@example.test", "cat@example.test"]
        assert deliver.sender_user_id == USER.user_id
        msg = message_from_bytes(deliver.raw, policy=policy.default)
        assert msg["From"] == USER.email and msg["Bcc"] is None and b"cat@example.test" not in deliver.raw
        assert msg["Message-ID"] == f"<{body['message_id']}>"
        assert msg["In-Reply-To"] == "<p@example.test>"
        assert str(msg["References"]).split() == ["<r@example.test>", "<p@example.test>"]
        [att] = msg.iter_attachments()
        assert att.get_payload(decode=True) == b"hi"

    run(scenario)


def test_send_rejections_write_nothing() -> None:
    async def scenario(c: httpx.AsyncClient, fake: FakeMail, auth: dict[str, str]) -> None:
        err = assert_error(await c.post("/v1/messages", headers=auth, json={
            "to": ["bob@example.test", "x@elsewhere.example"], "cc": ["nobody@example.test"]}), 422,
            "recipients_rejected")
        assert err["recipients"] == [{"email": "nobody@example.test", "reason": "unknown_user"}]
        for body in ({}, {"to": []}, {"to": ["bob"]}, {"to": "bob@example.test"}, {"too": ["bob@example.test"]},
                     {"to": ["bob@example.test"], "subject": "a\r\nBcc: x@example.test"},
                     {"to": ["bob@example.test"], "attachments": [{"filename": "a", "content_base64": "%%"}]},
                     {"to": ["bob@example.test"], "in_reply_to": "unknown-id"}):
            assert_error(await c.post("/v1/messages", headers=auth, json=body), 400, "invalid_request")
        assert_error(await c.post("/v1/messages", headers=auth, json={"to": ["bob@example.test"], "text": "x" * 3000}),
                     413, "message_too_large")
        assert "Deliver" not in fake.calls

    run(scenario, max_message_bytes=2000)


def test_router_status_mapping() -> None:
    async def scenario(c: httpx.AsyncClient, fake: FakeMail, auth: dict[str, str]) -> None:
        fake.fail("Search", grpc.StatusCode.INVALID_ARGUMENT, "expected ')' at position 6", times=1)
        err = assert_error(await c.get("/v1/search", headers=auth, params={"q": "(from:x"}), 400, "invalid_request")
        assert "position 6" in err["message"]
        fake.fail("Search", grpc.StatusCode.UNIMPLEMENTED, "search is not served yet", times=1)
        assert_error(await c.get("/v1/search", headers=auth, params={"q": "hello"}), 501, "not_implemented")
        fake.fail("Search", grpc.StatusCode.UNAVAILABLE, "two replicas down")
        r = await c.get("/v1/search", headers=auth, params={"q": "down"})
        assert_error(r, 503, "unavailable")
        assert r.headers["retry-after"] == "1"
        assert len([s for s in fake.calls["Search"] if s.query == "down"]) > 1  # retried by the channel
        fake.fail("UpdateMessage", grpc.StatusCode.INTERNAL, "secret stack trace", times=1)
        err = assert_error(await c.patch("/v1/messages/m2", headers=auth, json={"starred": True}), 500,
                           "internal")
        assert "secret" not in err["message"]
        r = await c.patch("/v1/messages/m2", headers=auth, json={"starred": True})
        assert r.status_code == 200 and r.json()["starred"] is True
        assert not fake.calls["UpdateMessage"][-1].HasField("unread")
        r = await c.delete("/v1/messages/m2", headers=auth)
        assert r.status_code == 204 and r.content == b""

    run(scenario)


def test_attachment_served_inert() -> None:
    async def scenario(c: httpx.AsyncClient, fake: FakeMail, auth: dict[str, str]) -> None:
        r = await c.get("/v1/messages/m3/attachments/a1", headers=auth)
        assert r.status_code == 200 and r.content == b"<script>"
        assert r.headers["content-type"] == "application/octet-stream"  # the stored type was not a safe one
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["content-disposition"].startswith('attachment; filename="r_sum_ _1_.html"')
        assert "filename*=UTF-8''r%C3%A9sum%C3%A9%20%221%22.html" in r.headers["content-disposition"]

    run(scenario)


def test_error_bodies_without_router_calls() -> None:
    async def scenario(c: httpx.AsyncClient, fake: FakeMail, auth: dict[str, str]) -> None:
        json_headers = {**auth, "Content-Type": "application/json"}
        err = assert_error(await c.post("/v1/messages", headers=json_headers, content=b'{"to": [}'), 400,
                           "invalid_request")
        assert "JSON" in err["message"]
        assert_error(await c.post("/v1/auth/token", content=b"email=a", headers={
            "Content-Type": "application/x-www-form-urlencoded"}), 400, "invalid_request")
        assert_error(await c.patch("/v1/messages/m1", headers=auth, json={"unread": "yes"}), 400, "invalid_request")
        assert_error(await c.patch("/v1/messages/m1", headers=auth, json={"flagged": True}), 400, "invalid_request")
        for bad in (["two words"], ["(paren"], ["x" * 65], [f"k{i}" for i in range(33)], "$Forwarded"):
            err = assert_error(await c.patch("/v1/messages/m1", headers=auth, json={"add_keywords": bad}), 400,
                               "invalid_request")
            assert "keyword" in err["message"] or "list" in err["message"], err

        r = await c.get("/v1/folders")
        assert_error(r, 401, "unauthenticated")
        assert r.headers["www-authenticate"] == "Bearer"
        assert_error(await c.get("/v1/folders", headers={"Authorization": "Basic YTpi"}), 401, "unauthenticated")
        assert_error(await c.get("/v1/folders", headers={"Authorization": "Bearer v1.e30.AAAA"}), 401,
                     "unauthenticated")
        assert_error(await c.get("/no/such/route"), 404, "not_found")
        assert_error(await c.put("/v1/folders", headers=auth), 405, "method_not_allowed")
        assert_error(await c.post("/v1/messages", headers=json_headers, content=b"[" * 2_000_000), 413,
                     "payload_too_large")

    run(scenario, max_message_bytes=1000)


def test_expired_token_refused() -> None:
    async def scenario(c: httpx.AsyncClient, fake: FakeMail, auth: dict[str, str]) -> None:
        app = c._transport.app  # type: ignore[attr-defined]
        token, _ = app.state.signer.mint(USER.user_id, USER.email, now=0)
        err = assert_error(await c.get("/v1/folders", headers={"Authorization": f"Bearer {token}"}), 401,
                           "unauthenticated")
        assert "expired" in err["message"]

    run(scenario)


def test_metrics_by_route_template() -> None:
    def count(route: str, status: str) -> float:
        value = REGISTRY.get_sample_value(
            "tidings_http_requests_total", {"method": "GET", "route": route, "status": status})
        return value or 0.0

    before_found, before_missing = count("/v1/messages/{message_id}", "200"), count("/v1/messages/{message_id}", "404")

    async def scenario(c: httpx.AsyncClient, fake: FakeMail, auth: dict[str, str]) -> None:
        await c.get("/v1/messages/m1", headers=auth)
        await c.get("/v1/messages/nope", headers=auth)

    run(scenario)
    assert count("/v1/messages/{message_id}", "200") == before_found + 1
    assert count("/v1/messages/{message_id}", "404") == before_missing + 1


def test_readyz_follows_router() -> None:
    async def scenario(c: httpx.AsyncClient, fake: FakeMail, auth: dict[str, str]) -> None:
        # The double serves no health service: UNIMPLEMENTED still proves the router answers.
        assert (await c.get("/readyz")).status_code == 200
        assert (await c.get("/healthz")).json() == {"status": "ok"}

    run(scenario)
