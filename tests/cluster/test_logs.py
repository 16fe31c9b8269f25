"""Structured logs of real processes (docs/architecture.md, Logs): one JSON access line an API
request with its request id, the same id on the router's lines for that request, one line an
SMTP transaction with its reply code, and no subject, body or password in any process's log."""
from __future__ import annotations

import json
import smtplib
import ssl
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.cluster.grid import Grid, running
from tidings_cli.cluster import HOST

pytestmark = pytest.mark.timeout(180)

SECRET = "pw-Zq7xSecretMarker"     # the users' password: sent to AUTH and /v1/auth/token
CONTENT = "BodyMarker5kRt"         # in every subject and body sent
DEBUG = ("--log-level", "debug")   # the router logs a debug line an RPC that carries a request id


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Grid]:
    args = {"router": DEBUG, "smtp": ("--no-auth-checks",)}
    with running(tmp_path_factory.mktemp("logs-grid"), edges=("smtp", "http"), args=args) as grid:
        grid.add_user("alice@example.test", SECRET)
        grid.add_user("bob@example.test", SECRET)
        yield grid


def json_lines(path: Path) -> list[dict[str, object]]:
    """The JSON lines of a process's log (its banner print is not one)."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.startswith("{")]


def test_logs_of_api_requests_and_smtp_transactions(grid: Grid) -> None:
    with httpx.Client(base_url=grid.http_url, timeout=30) as http:
        r = http.post("/v1/auth/token", json={"email": "alice@example.test", "password": SECRET})
        assert r.status_code == 200
        auth = {"Authorization": f"Bearer {r.json()['token']}"}
        listed = http.get("/v1/folders", headers={**auth, "X-Request-ID": "client-chosen-1"})
        assert listed.status_code == 200 and listed.headers["x-request-id"] == "client-chosen-1"
        sent = http.post("/v1/messages", headers=auth, json={"to": ["bob@example.test"],
                                                             "subject": f"s {CONTENT}", "text": f"b {CONTENT}"})
        assert sent.status_code == 202
        searched = http.get("/v1/search", headers={**auth, "X-Request-ID": "bad id;x"}, params={"q": CONTENT})
        assert searched.status_code == 200 and searched.headers["x-request-id"] != "bad id;x"
        made_ids = [r.headers["x-request-id"], sent.headers["x-request-id"], searched.headers["x-request-id"]]

    raw = f"From: a@example.org\r\nTo: bob@example.test\r\nSubject: {CONTENT}\r\n\r\n{CONTENT} body\r\n"
    with smtplib.SMTP(HOST, grid.smtp_port, timeout=30) as mx:
        mx.ehlo("client.example.org")
        assert mx.docmd("MAIL FROM:<carol>")[0] == 553   # refused: logged with its code
        assert mx.docmd("MAIL FROM:<a@example.org>")[0] == 250
        assert mx.rcpt("bob@example.test")[0] == 250
        assert mx.data(raw.encode())[0] == 250
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    with smtplib.SMTP(HOST, grid.submission_port, timeout=30) as sub:
        sub.ehlo("laptop")
        sub.starttls(context=context)
        sub.login("alice@example.test", SECRET)
        sub.sendmail("alice@example.test", ["bob@example.test"], raw.replace("a@example.org", "alice@example.test"))
    grid.stop()   # every process has written all it will

    logs_dir = grid.layout.base_dir / "logs"
    files = sorted(logs_dir.glob("*.log"))
    assert {"router.log", "http.log", "smtp.log", "storage-1.log"} <= {f.name for f in files}
    for path in files:
        text = path.read_text(errors="replace")
        assert SECRET not in text, path
        assert CONTENT not in text, path

    access = [line for line in json_lines(logs_dir / "http.log") if line["logger"] == "http_edge.access"]
    assert [(a["method"], a["route"], a["status"]) for a in access] == [
        ("POST", "/v1/auth/token", 200), ("GET", "/v1/folders", 200),
        ("POST", "/v1/messages", 202), ("GET", "/v1/search", 200)]
    assert all(a["process"] == "http_edge" and float(str(a["duration_ms"])) >= 0 for a in access)
    assert access[1]["request_id"] == "client-chosen-1"
    assert [a["request_id"] for a in (access[0], access[2], access[3])] == made_ids
    user_ids = {a.get("user") for a in access[1:]}
    assert len(user_ids) == 1 and None not in user_ids   # the account id once the token is verified

    router = json_lines(logs_dir / "router.log")
    for request_id, method in (("client-chosen-1", "/tidings.v1.Mail/ListFolders"),
                               (made_ids[1], "/tidings.v1.Mail/Deliver")):
        assert any(line.get("request_id") == request_id and line.get("method") == method for line in router), method

    transactions = [line for line in json_lines(logs_dir / "smtp.log") if line["logger"] == "smtp_edge.transaction"]
    refused, mx_line, sub_line = transactions
    assert refused["code"] >= 500 and refused["reason"] and refused["listener"] == "mx"   # type: ignore[operator]
    assert mx_line["code"] == 250 and mx_line["enhanced"] == "2.0.0" and mx_line["message_id"]
    assert mx_line["rcpt"] == ["bob@example.test"] and mx_line["size"] == len(raw)
    assert mx_line["helo"] == "client.example.org" and mx_line["peer"] == HOST
    assert sub_line["code"] == 250 and sub_line["listener"] == "submission" and sub_line["auth_user"]
    assert len({refused["txn"], mx_line["txn"], sub_line["txn"]}) == 3
    # the transaction id is the request id of the router calls the transaction made
    assert any(line.get("request_id") == mx_line["txn"] and line.get("method") == "/tidings.v1.Mail/Deliver"
               for line in router)
