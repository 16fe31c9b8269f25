"""The change feed and push over HTTP against the real cluster: mail arriving over SMTP and HTTP
shows as SSE events and in `GET /v1/changes`; across a router restart (a grid of this module's
own) the edge's stream redials and a reconnect with `Last-Event-ID` replays exactly the rest."""
from __future__ import annotations

import smtplib
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from email.message import EmailMessage

import httpx
import pytest

from tests.cluster.grid import PASSWORD, Grid
from tests.http.conftest import Login
from tests.http.sse import SyncReader

pytestmark = pytest.mark.timeout(180)


@contextmanager
def events(http: httpx.Client, auth: dict[str, str], **headers: str) -> Iterator[SyncReader]:
    """An open event stream, its first comment read (from then on nothing is missed)."""
    with http.stream("GET", "/v1/events", headers={**auth, **headers},
                     timeout=httpx.Timeout(30, read=20)) as response:
        assert response.status_code == 200, response.read().decode()
        reader = SyncReader(response.iter_lines())
        first = reader.block()
        assert first is not None and first.comments[0].startswith("after state "), first
        yield reader


def smtp_send(grid: Grid, to: str, subject: str) -> None:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "carol@example.org", to, subject
    message.set_content("over SMTP")
    with smtplib.SMTP(grid.host, grid.smtp_port, timeout=30) as client:
        assert client.sendmail("carol@example.org", [to], message.as_bytes()) == {}


def inbox(http: httpx.Client, auth: dict[str, str]) -> dict:
    r = http.get("/v1/folders/inbox/messages", headers=auth)
    assert r.status_code == 200, r.text
    return r.json()


def test_smtp_and_http_mail_arrive_as_events_and_changes(grid: Grid, http: httpx.Client,
                                                         new_user: Callable[[str], str], login: Login) -> None:
    ann = new_user("push")
    auth = login(ann)
    state = inbox(http, auth)["state"]
    with events(http, auth) as stream:
        smtp_send(grid, ann, "by smtp")
        new = stream.event()
        assert new.name == "message.new" and int(new.id or 0) > int(state), new
        [listed] = inbox(http, auth)["messages"]
        assert new.data["id"] == listed["id"] and new.data["folder_id"] == listed["folder_id"]
        assert new.data["thread_id"] == listed["thread_id"] and listed["subject"] == "by smtp"

        r = http.patch(f"/v1/messages/{listed['id']}", headers=auth, json={"unread": False})
        assert r.status_code == 200, r.text
        updated = stream.event()
        assert (updated.name, updated.data["id"]) == ("message.updated", listed["id"])
        assert int(updated.id or 0) > int(new.id or 0)

        r = http.post("/v1/messages", headers=auth, json={"to": [ann], "subject": "by http", "text": "hi"})
        assert r.status_code == 202, r.text
        arrived = {stream.event().data["id"] for _ in range(2)}  # the Inbox copy and the Sent copy
        assert r.json()["id"] in arrived

    got = http.get("/v1/changes", headers=auth, params={"since": state})
    assert got.status_code == 200, got.text
    body = got.json()
    assert body["old_state"] == state and not body["has_more"]
    assert listed["id"] in body["created"] and r.json()["id"] in body["created"] and len(body["created"]) == 3
    assert body["updated"] == [] and body["destroyed"] == []  # created then updated: created
    assert http.get("/v1/changes", headers=auth, params={"since": body["new_state"]}).json()["created"] == []
    assert inbox(http, auth)["state"] == body["new_state"]


def test_bad_states_over_the_cluster(http: httpx.Client, new_user: Callable[[str], str], login: Login) -> None:
    auth = login(new_user("push-bad"))
    for params in ({"since": "x"}, {}):
        r = http.get("/v1/changes", headers=auth, params=params)
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_request", r.text
    r = http.get("/v1/events", headers={**auth, "Last-Event-ID": "nope"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_request", r.text
    assert http.get("/v1/events").status_code == 401


def test_router_restart_then_last_event_id_replays_the_rest(own_grid: Grid) -> None:
    grid = own_grid
    email = "push-restart@example.test"
    grid.add_user(email)
    with httpx.Client(base_url=grid.http_url, timeout=30) as http:
        token = http.post("/v1/auth/token", json={"email": email, "password": PASSWORD}).json()["token"]
        auth = {"Authorization": f"Bearer {token}"}
        ids: list[str] = []
        with events(http, auth) as stream:
            smtp_send(grid, email, "before")
            ids.append(stream.event().id or "")
            grid.restart_router()  # the edge's Watch breaks; it redials from the last MODSEQ
            deadline = time.monotonic() + 30
            while True:  # the SMTP edge may answer 451 for a moment while the router comes back
                try:
                    smtp_send(grid, email, "after")
                    break
                except smtplib.SMTPException:
                    assert time.monotonic() < deadline
                    time.sleep(0.2)
            after = stream.event()
            ids.append(after.id or "")
            smtp_send(grid, email, "third")
            ids.append(stream.event().id or "")
        assert [int(i) for i in ids] == sorted(int(i) for i in ids) and len(set(ids)) == 3, ids

        with events(http, auth, **{"Last-Event-ID": ids[0]}) as stream:  # a reconnect replays what followed
            assert [stream.event().id, stream.event().id] == ids[1:]
            smtp_send(grid, email, "fourth")
            assert int(stream.event().id or 0) > int(ids[2])
        subjects = [m["subject"] for m in inbox(http, auth)["messages"]]
        assert sorted(subjects) == ["after", "before", "fourth", "third"]
