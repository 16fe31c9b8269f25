"""`GET /v1/changes` and the listings' `state`, in process over the router's test double
(`tests.fake_mail.FakeMail`: each mutation appends to the user's change feed), and the
client's `changes` (typed `CannotCalculateChanges`) on both clients."""
from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from http_edge.feed import collapse
from tests.fake_mail import Change, FakeMail, LoopThread
from tests.http.test_api import USER, assert_error, run, seeded
from tidings.v1 import types_pb2
from tidings_client import CannotCalculateChanges, FailedPrecondition, MailClient, SyncMailClient


async def state_of(c: httpx.AsyncClient, auth: dict[str, str], folder: str = "inbox") -> str:
    r = await c.get(f"/v1/folders/{folder}/messages", headers=auth)
    assert r.status_code == 200, r.text
    return r.json()["state"]


async def changes(c: httpx.AsyncClient, auth: dict[str, str], since: str, **params: Any) -> dict[str, Any]:
    r = await c.get("/v1/changes", headers=auth, params={"since": since, **params})
    assert r.status_code == 200, r.text
    return r.json()


def test_listing_state_then_changes_collapsed_per_id() -> None:
    async def scenario(c: httpx.AsyncClient, fake: FakeMail, auth: dict[str, str]) -> None:
        state = await state_of(c, auth)
        assert state == "4"  # the four seeded messages
        assert (await c.get("/v1/search", headers=auth, params={"q": "hi"})).json()["state"] == "4"
        nothing = await changes(c, auth, state)
        assert nothing == {"old_state": "4", "new_state": "4", "has_more": False, "created": [], "updated": [],
                           "destroyed": [], "folders": {"created": [], "updated": [], "destroyed": []},
                           "folders_changed": []}

        sent = (await c.post("/v1/messages", headers=auth, json={"to": [USER.email], "text": "x"})).json()
        [copy] = [m["id"] for m in (await c.get("/v1/folders/inbox/messages", headers=auth)).json()["messages"]
                  if m["id"] not in ("m1", "m2", "m3", "parent")]
        assert (await c.patch(f"/v1/messages/{copy}", headers=auth, json={"unread": False})).status_code == 200
        assert (await c.patch("/v1/messages/m1", headers=auth, json={"starred": True})).status_code == 200
        for _ in range(2):  # to Trash, then gone for good
            assert (await c.delete("/v1/messages/m2", headers=auth)).status_code == 204
            assert (await c.delete(f"/v1/messages/{sent['id']}", headers=auth)).status_code == 204

        got = await changes(c, auth, state)
        assert got["old_state"] == "4" and got["new_state"] == "12" and not got["has_more"]
        assert got["created"] == [copy]  # created then updated: created only
        assert got["updated"] == ["m1"]
        assert got["destroyed"] == ["m2"]  # updated then destroyed: destroyed only; Sent's copy: created and
        assert sent["id"] not in str(got)  # destroyed in the window, so left out

        # a later state sees only what came after it
        assert (await changes(c, auth, "11"))["destroyed"] == [sent["id"]]

    run(scenario)


def test_paging_with_limit_and_has_more() -> None:
    async def scenario(c: httpx.AsyncClient, fake: FakeMail, auth: dict[str, str]) -> None:
        for id in ("m1", "m2", "m3"):
            await c.patch(f"/v1/messages/{id}", headers=auth, json={"unread": True})
        first = await changes(c, auth, "4", limit=2)
        assert first["updated"] == ["m1", "m2"] and first["has_more"] and first["new_state"] == "6"
        second = await changes(c, auth, first["new_state"], limit=2)
        assert second["updated"] == ["m3"] and not second["has_more"] and second["new_state"] == "7"
        assert fake.calls["Changes"][0].limit == 2 and fake.calls["Changes"][0].since == 4
        assert (await changes(c, auth, "0"))["created"] == ["m1", "m2", "m3", "parent"]

    run(scenario)


def test_folder_changes_split_by_the_folders_still_there() -> None:
    async def scenario(c: httpx.AsyncClient, fake: FakeMail, auth: dict[str, str]) -> None:
        for folder_id in ("inbox", "f-gone", "inbox", "archive"):
            fake.record(USER.user_id, Change.FOLDER_UPDATED, folder_id)
        got = await changes(c, auth, "4")
        assert got["folders"] == {"created": [], "updated": ["inbox", "archive"], "destroyed": ["f-gone"]}
        assert got["folders_changed"] == ["inbox", "f-gone", "archive"]
        assert got["created"] == got["updated"] == got["destroyed"] == []
        assert len(fake.calls["ListFolders"]) == 1
        await changes(c, auth, got["new_state"])  # no folder in the window: no ListFolders
        assert len(fake.calls["ListFolders"]) == 1

    run(scenario)


def test_bad_since_limit_and_auth() -> None:
    async def scenario(c: httpx.AsyncClient, fake: FakeMail, auth: dict[str, str]) -> None:
        for since in ("", "abc", "-1", "1.5", "٣", "18446744073709551616", " 4"):
            err = assert_error(await c.get("/v1/changes", headers=auth, params={"since": since}), 400,
                               "invalid_request")
            assert "since" in err["message"], err
        assert_error(await c.get("/v1/changes", headers=auth), 400, "invalid_request")
        for limit in (0, 1025, "x"):
            assert_error(await c.get("/v1/changes", headers=auth, params={"since": "1", "limit": limit}), 400,
                         "invalid_request")
        assert_error(await c.get("/v1/changes", params={"since": "1"}), 401, "unauthenticated")
        assert "Changes" not in fake.calls

    run(scenario)


def test_a_state_too_old_is_409_cannot_calculate_changes() -> None:
    async def scenario(c: httpx.AsyncClient, fake: FakeMail, auth: dict[str, str]) -> None:
        fake.compact(USER.user_id, 3)
        assert (await changes(c, auth, "3"))["created"] == ["parent"]
        err = assert_error(await c.get("/v1/changes", headers=auth, params={"since": "2"}), 409,
                           "cannot_calculate_changes")
        assert "resync" in err["message"] and "state" in err["message"], err

    run(scenario)


def test_collapse_rules() -> None:
    def change(modseq: int, kind: int, id: str) -> types_pb2.MailboxChange:
        return types_pb2.MailboxChange(modseq=modseq, kind=kind, id=id)  # type: ignore[arg-type]

    got = collapse([change(1, Change.MESSAGE_NEW, "a"), change(2, Change.MESSAGE_UPDATED, "a"),
                    change(3, Change.MESSAGE_UPDATED, "b"), change(4, Change.MESSAGE_DELETED, "b"),
                    change(5, Change.MESSAGE_NEW, "c"), change(6, Change.MESSAGE_DELETED, "c"),
                    change(7, Change.MESSAGE_UPDATED, "d"), change(8, Change.MESSAGE_UPDATED, "d"),
                    change(9, Change.MESSAGE_DELETED, "e"), change(10, Change.KIND_UNSPECIFIED, "f"),
                    change(11, Change.FOLDER_UPDATED, "x"), change(12, Change.FOLDER_UPDATED, "x")])
    assert (got.created, got.updated, got.destroyed, got.folders.changed) == (["a"], ["d"], ["b", "e"], ["x"])


# ---- the client ----------------------------------------------------------------------


def test_client_changes_and_typed_cannot_calculate() -> None:
    async def main() -> None:
        async with seeded() as fake, MailClient(fake.address) as mail:
            page = await mail.changes(USER.user_id, 2, 1)
            assert [c.id for c in page.changes] == ["m3"] and page.has_more and page.new_state == 3
            assert page.changes[0].kind == Change.MESSAGE_NEW and page.changes[0].uid == 3
            assert await mail.mailbox_state(USER.user_id) == 4
            fake.compact(USER.user_id, 2)
            with pytest.raises(CannotCalculateChanges) as caught:
                await mail.changes(USER.user_id, 1)
            assert isinstance(caught.value, FailedPrecondition)
            fake.fail("Changes", FailedPrecondition.code, "something else", times=1)
            with pytest.raises(FailedPrecondition) as other:
                await mail.changes(USER.user_id, 3)
            assert type(other.value) is FailedPrecondition

    asyncio.run(main())


def test_sync_client_changes() -> None:
    loop = LoopThread()
    try:
        with seeded().served_on(loop) as fake, SyncMailClient(fake.address) as mail:
            assert [c.id for c in mail.changes(USER.user_id, 0).changes] == ["m1", "m2", "m3", "parent"]
            assert mail.mailbox_state(USER.user_id) == 4
            loop.run(asyncio.sleep(0))
            fake.compact(USER.user_id, 4)
            with pytest.raises(CannotCalculateChanges):
                mail.changes(USER.user_id, 0)
    finally:
        loop.close()
