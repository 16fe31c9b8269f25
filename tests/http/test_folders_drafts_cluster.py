"""Custom folders and drafts against the real processes (the shared `grid`: 3 storage nodes,
router, `python -m http_edge`), spoken to with httpx as a client would."""
from __future__ import annotations

from collections.abc import Callable
from email import message_from_bytes, policy

import httpx
import pytest

from tests.http.conftest import Login
from tests.http.test_http_cluster import by_subject, error, listing, send

pytestmark = pytest.mark.timeout(120)


def folders(http: httpx.Client, auth: dict[str, str]) -> dict:
    r = http.get("/v1/folders", headers=auth)
    assert r.status_code == 200, r.text
    return r.json()


def custom(http: httpx.Client, auth: dict[str, str]) -> dict[str, dict]:
    return {f["id"]: f for f in folders(http, auth)["folders"] if not f["role"]}


def create(http: httpx.Client, auth: dict[str, str], name: str) -> dict:
    r = http.post("/v1/folders", headers=auth, json={"name": name})
    assert r.status_code == 201, r.text
    return r.json()


def move(http: httpx.Client, auth: dict[str, str], message_id: str, folder_id: str) -> httpx.Response:
    return http.patch(f"/v1/messages/{message_id}", headers=auth, json={"folder_id": folder_id})


def test_custom_folder_create_move_list_rename_delete(http: httpx.Client, new_user: Callable[[str], str],
                                                     login: Login) -> None:
    ann = new_user("ann")
    a = login(ann)
    send(http, a, to=[ann], subject="to file", text="quarterly figures")
    message = by_subject(http, a, "to file")

    before = folders(http, a)["state"]
    folder = create(http, a, "Projects/2026")
    assert folder["id"].startswith("f") and len(folder["id"]) == 9
    assert folder == {"id": folder["id"], "name": "Projects/2026", "role": "", "total": 0, "unread": 0}
    listed = folders(http, a)
    assert [f["role"] for f in listed["folders"][:6]] == ["inbox", "sent", "drafts", "spam", "trash", "archive"]
    assert custom(http, a) == {folder["id"]: folder}
    assert int(listed["state"]) >= 0

    r = move(http, a, message["id"], folder["id"])
    assert r.status_code == 200 and r.json()["folder_id"] == folder["id"], r.text
    assert [m["id"] for m in listing(http, a, folder["id"])["messages"]] == [message["id"]]
    assert message["id"] not in [m["id"] for m in listing(http, a)["messages"]]
    held = custom(http, a)[folder["id"]]
    assert (held["total"], held["unread"]) == (1, 1)
    detail = http.get(f"/v1/messages/{message['id']}", headers=a).json()
    assert detail["folder_id"] == folder["id"]
    found = http.get("/v1/search", headers=a, params={"q": f"quarterly in:{folder['id']}"}).json()
    assert [m["id"] for m in found["messages"]] == [message["id"]]

    r = http.patch(f"/v1/folders/{folder['id']}", headers=a, json={"name": "Work"})
    assert r.status_code == 200, r.text
    assert r.json() == {**folder, "name": "Work", "total": 1, "unread": 1}
    assert custom(http, a)[folder["id"]]["name"] == "Work"
    r = http.patch(f"/v1/folders/{folder['id']}", headers=a, json={"name": "WORK"})    # its own name, recased
    assert r.status_code == 200 and r.json()["name"] == "WORK", r.text

    error(http.delete(f"/v1/folders/{folder['id']}", headers=a), 409, "folder_not_empty")
    assert move(http, a, message["id"], "inbox").status_code == 200
    changed = http.get("/v1/changes", headers=a, params={"since": before}).json()
    assert changed["folders"]["updated"] == [folder["id"]] and folder["id"] in changed["folders_changed"]
    before = folders(http, a)["state"]
    r = http.delete(f"/v1/folders/{folder['id']}", headers=a)
    assert r.status_code == 204, r.text
    assert custom(http, a) == {}
    changed = http.get("/v1/changes", headers=a, params={"since": before}).json()
    assert changed["folders"]["destroyed"] == [folder["id"]]
    error(move(http, a, message["id"], folder["id"]), 404, "not_found")
    error(http.patch(f"/v1/folders/{folder['id']}", headers=a, json={"name": "Again"}), 404, "not_found")
    error(http.delete(f"/v1/folders/{folder['id']}", headers=a), 404, "not_found")
    # the name is free again, under a new id
    again = create(http, a, "Work")
    assert again["id"] != folder["id"]


def test_folder_refusals(http: httpx.Client, new_user: Callable[[str], str], login: Login) -> None:
    ann, bob = new_user("ann"), new_user("bob")
    a, b = login(ann), login(bob)
    work = create(http, a, "Work")
    error(http.post("/v1/folders", headers=a, json={"name": "work"}), 409, "folder_exists")
    error(http.post("/v1/folders", headers=a, json={"name": " WORK "}), 409, "folder_exists")
    error(http.post("/v1/folders", headers=a, json={"name": "Inbox"}), 409, "folder_exists")
    other = create(http, a, "Other")
    error(http.patch(f"/v1/folders/{other['id']}", headers=a, json={"name": "Work"}), 409, "folder_exists")
    for name in ("", "   ", "x" * 129, "a\nb", "a\x7f", "a//b", "/a"):
        error(http.post("/v1/folders", headers=a, json={"name": name}), 400, "invalid_request")
    for role in ("inbox", "sent", "drafts", "spam", "trash", "archive"):
        error(http.patch(f"/v1/folders/{role}", headers=a, json={"name": "Mine"}), 409, "system_folder")
        error(http.delete(f"/v1/folders/{role}", headers=a), 409, "system_folder")
    for unknown in ("f0abcdef0", "nope", "f0000ffff"):
        error(http.patch(f"/v1/folders/{unknown}", headers=a, json={"name": "x"}), 404, "not_found")
        error(http.delete(f"/v1/folders/{unknown}", headers=a), 404, "not_found")
        error(http.get(f"/v1/folders/{unknown}/messages", headers=a), 404, "not_found")
    # another user's folder is no folder of bob's; bob may use the same name
    send(http, b, to=[bob], subject="bob's")
    mine = by_subject(http, b, "bob's")
    error(move(http, b, mine["id"], work["id"]), 404, "not_found")
    error(http.get(f"/v1/folders/{work['id']}/messages", headers=b), 404, "not_found")
    assert create(http, b, "Work")["name"] == "Work"
    assert custom(http, a).keys() == {work["id"], other["id"]}


def test_drafts_save_replace_send(http: httpx.Client, new_user: Callable[[str], str], login: Login) -> None:
    ann, bob, cat = new_user("ann"), new_user("bob"), new_user("cat")
    a, b, c = login(ann), login(bob), login(cat)
    r = http.post("/v1/drafts", headers=a, json={"subject": "draft one", "text": "not yet"})
    assert r.status_code == 201, r.text
    first = r.json()
    assert first["folder_id"] == "drafts" and first["unread"] is False and first["replaces"] is None
    assert [m["id"] for m in listing(http, a, "drafts")["messages"]] == [first["id"]]
    assert listing(http, a, "sent")["messages"] == []

    r = http.put(f"/v1/drafts/{first['id']}", headers=a, json={
        "to": [bob], "bcc": [f"Cat <{cat}>"], "subject": "the plan", "text": "final words",
        "attachments": [{"filename": "a.txt", "content_type": "text/plain", "content_base64": "aGk="}]})
    assert r.status_code == 200, r.text
    second = r.json()
    assert second["id"] != first["id"] and second["replaces"] == first["id"] and second["has_attachments"]
    assert [m["id"] for m in listing(http, a, "drafts")["messages"]] == [second["id"]]
    error(http.get(f"/v1/messages/{first['id']}", headers=a), 404, "not_found")
    error(http.put(f"/v1/drafts/{first['id']}", headers=a, json={"text": "late"}), 404, "not_found")
    detail = http.get(f"/v1/messages/{second['id']}", headers=a).json()
    assert [x["email"] for x in detail["bcc"]] == [cat] and detail["message_id"] == second["message_id"]

    key = {"Idempotency-Key": f"send-{second['id']}"}
    r = http.post(f"/v1/drafts/{second['id']}/send", headers={**a, **key})
    assert r.status_code == 202, r.text
    sent = r.json()
    assert sent["message_id"] == second["message_id"]
    assert listing(http, a, "drafts")["messages"] == []
    mine = by_subject(http, a, "the plan", "sent")
    assert mine["id"] == sent["id"] and mine["thread_id"] == sent["thread_id"]
    for auth in (b, c):
        got = by_subject(http, auth, "the plan")
        raw = http.get(f"/v1/messages/{got['id']}/raw", headers=auth).content
        parsed = message_from_bytes(raw, policy=policy.default)
        assert parsed["Bcc"] is None and cat.encode() not in raw.split(b"\r\n\r\n")[0]
        assert parsed["Message-ID"].strip("<>") == second["message_id"]
        assert got["has_attachments"]

    # the same send again: the first answer, nothing twice; without the key: no such draft
    r = http.post(f"/v1/drafts/{second['id']}/send", headers={**a, **key})
    assert r.status_code == 202 and r.json() == sent, r.text
    assert len([m for m in listing(http, b)["messages"] if m["subject"] == "the plan"]) == 1
    error(http.post(f"/v1/drafts/{second['id']}/send", headers=a), 404, "not_found")
    error(http.post(f"/v1/drafts/{second['id']}/send", headers={**a, "Idempotency-Key": "other"}), 404, "not_found")


def test_draft_refusals(http: httpx.Client, new_user: Callable[[str], str], login: Login) -> None:
    ann = new_user("ann")
    a = login(ann)
    empty = http.post("/v1/drafts", headers=a, json={"text": "for nobody"}).json()
    error(http.post(f"/v1/drafts/{empty['id']}/send", headers=a), 400, "invalid_request")
    lost = http.post("/v1/drafts", headers=a, json={"to": ["nobody-here@example.test"], "subject": "x"}).json()
    rejected = error(http.post(f"/v1/drafts/{lost['id']}/send", headers=a), 422, "recipients_rejected")
    assert rejected["recipients"] == [{"email": "nobody-here@example.test", "reason": "unknown_user"}]
    assert {m["id"] for m in listing(http, a, "drafts")["messages"]} == {empty["id"], lost["id"]}
    send(http, a, to=[ann], subject="not a draft")
    message = by_subject(http, a, "not a draft")
    error(http.post(f"/v1/drafts/{message['id']}/send", headers=a), 404, "not_found")
    error(http.put(f"/v1/drafts/{message['id']}", headers=a, json={"text": "x"}), 404, "not_found")
    error(http.put("/v1/drafts/0123", headers=a, json={"text": "x"}), 404, "not_found")
    error(http.post("/v1/drafts/0123/send", headers=a), 404, "not_found")
    error(http.post("/v1/drafts", headers=a, json={"to": ["not an address"]}), 400, "invalid_request")
    # a sent draft's key, reused for another draft
    ok = http.post("/v1/drafts", headers=a, json={"to": [ann], "subject": "keyed"}).json()
    assert http.post(f"/v1/drafts/{ok['id']}/send", headers={**a, "Idempotency-Key": "k"}).status_code == 202
    other = http.post("/v1/drafts", headers=a, json={"to": [ann], "subject": "keyed 2"}).json()
    error(http.post(f"/v1/drafts/{other['id']}/send", headers={**a, "Idempotency-Key": "k"}), 422,
          "idempotency_key_reused")
    # a draft moved out of Drafts is no draft any more
    assert move(http, a, other["id"], "archive").status_code == 200
    error(http.post(f"/v1/drafts/{other['id']}/send", headers=a), 404, "not_found")
