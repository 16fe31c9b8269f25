"""Custom folders and drafts over the HTTP edge in process, against the router's test double
(tests/fake_mail.py): the routes, their JSON, and how the router's refusals are mapped. The
real processes: tests/http/test_folders_drafts_cluster.py."""
from __future__ import annotations

from email import message_from_bytes, policy

import grpc
import httpx

from tests.fake_mail import FakeMail
from tests.http.test_api import USER, assert_error, run


def test_custom_folder_lifecycle_and_listing_state() -> None:
    async def scenario(c: httpx.AsyncClient, fake: FakeMail, auth: dict[str, str]) -> None:
        r = await c.post("/v1/folders", headers=auth, json={"name": "Projects/2026"})
        assert r.status_code == 201, r.text
        folder = r.json()
        assert folder["id"].startswith("f") and len(folder["id"]) == 9
        assert folder == {"id": folder["id"], "name": "Projects/2026", "role": "", "total": 0, "unread": 0}
        assert fake.calls["CreateFolder"][-1].name == "Projects/2026"

        r = await c.patch("/v1/messages/m1", headers=auth, json={"folder_id": folder["id"]})
        assert r.status_code == 200 and r.json()["folder_id"] == folder["id"], r.text
        r = await c.get(f"/v1/folders/{folder['id']}/messages", headers=auth)
        assert [m["id"] for m in r.json()["messages"]] == ["m1"]

        listing = (await c.get("/v1/folders", headers=auth)).json()
        assert listing["state"] == str(fake.users[USER.user_id].modseq)
        assert [f["role"] for f in listing["folders"]][:6] == ["inbox", "sent", "drafts", "spam", "trash", "archive"]
        assert listing["folders"][-1] == {**folder, "total": 1, "unread": 1}

        r = await c.patch(f"/v1/folders/{folder['id']}", headers=auth, json={"name": "Work"})
        assert r.status_code == 200 and r.json()["name"] == "Work", r.text
        assert_error(await c.delete(f"/v1/folders/{folder['id']}", headers=auth), 409, "folder_not_empty")
        await c.patch("/v1/messages/m1", headers=auth, json={"folder_id": "inbox"})
        r = await c.delete(f"/v1/folders/{folder['id']}", headers=auth)
        assert r.status_code == 204 and not r.content
        assert_error(await c.delete(f"/v1/folders/{folder['id']}", headers=auth), 404, "not_found")
        assert_error(await c.patch("/v1/messages/m1", headers=auth, json={"folder_id": folder["id"]}), 404,
                     "not_found")

    run(scenario)


def test_folder_refusals_carry_their_codes() -> None:
    async def scenario(c: httpx.AsyncClient, fake: FakeMail, auth: dict[str, str]) -> None:
        r = await c.post("/v1/folders", headers=auth, json={"name": "Work"})
        assert r.status_code == 201
        error = assert_error(await c.post("/v1/folders", headers=auth, json={"name": "work"}), 409, "folder_exists")
        assert "work" in error["message"] and not error["message"].startswith("folder_exists")
        assert_error(await c.post("/v1/folders", headers=auth, json={"name": "INBOX"}), 409, "folder_exists")
        assert_error(await c.patch("/v1/folders/inbox", headers=auth, json={"name": "Mine"}), 409, "system_folder")
        assert_error(await c.delete("/v1/folders/trash", headers=auth), 409, "system_folder")
        assert_error(await c.patch("/v1/folders/f00ffffff", headers=auth, json={"name": "x"}), 404, "not_found")
        # the edge's own checks: no router call
        calls = len(fake.calls["CreateFolder"])
        for body in ({"name": ""}, {"name": "x" * 129}, {"name": "a\nb"}, {"name": "a\x00"}, {}, {"name": 3},
                     {"name": "ok", "role": "inbox"}):
            assert_error(await c.post("/v1/folders", headers=auth, json=body), 400, "invalid_request")
        assert len(fake.calls["CreateFolder"]) == calls
        # the router's: a rule the edge does not check itself
        fake.fail("CreateFolder", grpc.StatusCode.INVALID_ARGUMENT, "'/' separates the levels of a folder name",
                  times=1)
        assert_error(await c.post("/v1/folders", headers=auth, json={"name": "a//b"}), 400, "invalid_request")
        fake.fail("CreateFolder", grpc.StatusCode.FAILED_PRECONDITION, "too_many_folders: at most 1000", times=1)
        assert_error(await c.post("/v1/folders", headers=auth, json={"name": "more"}), 409, "too_many_folders")
        fake.fail("DeleteFolder", grpc.StatusCode.FAILED_PRECONDITION, "something else", times=1)
        assert_error(await c.delete("/v1/folders/f00010001", headers=auth), 409, "failed_precondition")

    run(scenario)


def test_drafts_save_replace_send() -> None:
    async def scenario(c: httpx.AsyncClient, fake: FakeMail, auth: dict[str, str]) -> None:
        r = await c.post("/v1/drafts", headers=auth, json={"subject": "plan", "text": "first"})
        assert r.status_code == 201, r.text     # no recipients yet: fine for a draft
        first = r.json()
        assert first["folder_id"] == "drafts" and not first["unread"] and first["replaces"] is None
        assert first["message_id"] and not fake.delivered

        r = await c.put(f"/v1/drafts/{first['id']}", headers=auth, json={
            "to": ["bob@example.test"], "bcc": ["Cat <cat@example.test>"], "subject": "plan", "text": "second"})
        assert r.status_code == 200, r.text
        second = r.json()
        assert second["id"] != first["id"] and second["replaces"] == first["id"]
        saved = fake.calls["SaveDraft"][-1]
        assert saved.replaces == first["id"]
        assert message_from_bytes(saved.raw, policy=policy.default)["Bcc"] == "Cat <cat@example.test>"
        assert [m.id for m in fake.mailbox(USER.user_id, "drafts")] == [second["id"]]
        assert_error(await c.put(f"/v1/drafts/{first['id']}", headers=auth, json={"text": "x"}), 404, "not_found")

        r = await c.post(f"/v1/drafts/{second['id']}/send", headers={**auth, "Idempotency-Key": "k1"})
        assert r.status_code == 202, r.text
        sent = r.json()
        assert set(sent) == {"id", "message_id", "thread_id"} and sent["message_id"] == second["message_id"]
        request = fake.calls["SendDraft"][-1]
        assert (request.id, request.mail_from, request.idempotency_key) == (second["id"], USER.email, "k1")
        assert sorted(fake.checked[-2:]) == ["bob@example.test", "cat@example.test"]
        delivered = fake.delivered[-1]
        assert b"cat@example.test" not in delivered.raw.split(b"\r\n\r\n")[0]
        assert list(delivered.recipients) == ["bob@example.test", "cat@example.test"]
        assert fake.mailbox(USER.user_id, "drafts") == []
        assert_error(await c.post(f"/v1/drafts/{second['id']}/send", headers=auth), 404, "not_found")

    run(scenario)


def test_draft_send_refusals() -> None:
    async def scenario(c: httpx.AsyncClient, fake: FakeMail, auth: dict[str, str]) -> None:
        empty = (await c.post("/v1/drafts", headers=auth, json={"text": "nobody yet"})).json()
        assert_error(await c.post(f"/v1/drafts/{empty['id']}/send", headers=auth), 400, "invalid_request")
        # a message that is no draft, and an id that is nothing
        assert_error(await c.post("/v1/drafts/m1/send", headers=auth), 404, "not_found")
        assert_error(await c.post("/v1/drafts/nope/send", headers=auth), 404, "not_found")
        assert_error(await c.put("/v1/drafts/m1", headers=auth, json={"text": "x"}), 404, "not_found")
        unknown = (await c.post("/v1/drafts", headers=auth, json={"to": ["zed@example.test"]})).json()
        error = assert_error(await c.post(f"/v1/drafts/{unknown['id']}/send", headers=auth), 422,
                             "recipients_rejected")
        assert error["recipients"] == [{"email": "zed@example.test", "reason": "unknown_user"}]
        assert [r.id for r in fake.calls["SendDraft"]] == ["nope"]    # a draft not found: the router's to judge
        ok = (await c.post("/v1/drafts", headers=auth, json={"to": ["bob@example.test"]})).json()
        assert_error(await c.post(f"/v1/drafts/{ok['id']}/send", headers={**auth, "Idempotency-Key": "\x01"}),
                     400, "invalid_request")
        fake.fail("SendDraft", grpc.StatusCode.ALREADY_EXISTS, "idempotency_key_reused: another request", times=1)
        assert_error(await c.post(f"/v1/drafts/{ok['id']}/send", headers={**auth, "Idempotency-Key": "k"}),
                     422, "idempotency_key_reused")
        assert_error(await c.post("/v1/drafts", headers=auth, json={"to": ["not an address"]}), 400,
                     "invalid_request")

    run(scenario)
