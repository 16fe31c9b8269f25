"""Tidings and Debian's Postfix 3.7 exchange mail both ways over SMTP on loopback.

The cluster (3 storage nodes, router, SMTP and HTTP edges, the delivery worker) serves
`example.test` on 127.0.0.1:P; a private Postfix instance (its own config directory under
/tmp, started with `postfix -c DIR`) serves `postfix.test` on 127.0.0.9:P, the same port, as
the worker's `--outbound-port` is one port. A dnslib server answers MX/A for `postfix.test`
and publishes `example.test`'s DKIM keys.

- Tidings → Postfix: alice sends over HTTP to carol@postfix.test; the worker looks up the MX,
  Postfix's `virtual` delivers to carol's maildir, the message verifies as DKIM-signed by
  example.test, and alice's Sent copy shows carol as delivered.
- Postfix → Tidings: a message injected into Postfix over SMTP for bob@example.test is
  relayed by Postfix (`transport_maps` to [127.0.0.1]:P) and shows up in bob's Inbox.
"""
from __future__ import annotations

import email
import smtplib
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path
from typing import TypeVar

import dkim
import httpx
import pytest

from tests.cluster.grid import PASSWORD, Grid, running
from tests.interop import mta
from tests.mailnet import Zone, port_free_on, serving
from tidings.v1 import mail_pb2

T = TypeVar("T")

POSTFIX_HOST = "127.0.0.9"
CAROL = "carol@postfix.test"
ALICE, BOB = "alice@example.test", "bob@example.test"

pytestmark = [pytest.mark.timeout(180),
              pytest.mark.skipif(mta.unavailable() is not None, reason=mta.unavailable() or "")]


@dataclass
class Net:
    zone: Zone
    grid: Grid
    postfix: mta.Postfix
    http: httpx.Client

    def login(self, address: str) -> dict[str, str]:
        r = self.http.post("/v1/auth/token", json={"email": address, "password": PASSWORD})
        assert r.status_code == 200, r.text
        return {"Authorization": f"Bearer {r.json()['token']}"}


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    port = port_free_on("127.0.0.1", POSTFIX_HOST)
    with serving(Zone()) as zone:
        zone.mx("postfix.test", (10, "mx.postfix.test", POSTFIX_HOST))
        worker = ("--dns", zone.address, "--outbound-port", str(port), "--poll-interval-s", "0.2",
                  "--retry-schedule", "1s", "--timeout-scale", "0.1")
        with running(tmp_path_factory.mktemp("interop"), edges=("smtp", "http", "outbound"), smtp_port=port,
                     args={"outbound": worker}) as grid:
            grid.add_user(ALICE)
            grid.add_user(BOB)
            records = grid.admin.DkimRecords(mail_pb2.AddDomainRequest(domain="example.test"), timeout=30)
            for record in records.records:
                zone.txt(record.name, record.value)
            relay = {"transport_maps": f"inline:{{ example.test=smtp:[127.0.0.1]:{port} }}"}
            with mta.running(POSTFIX_HOST, port, mailboxes={CAROL: "postfix.test/carol/"}, settings=relay,
                             tls=True) as postfix, \
                    httpx.Client(base_url=grid.http_url, timeout=30) as http:
                yield Net(zone, grid, postfix, http)
                daemons = postfix.pids()
    assert daemons and not [pid for pid in daemons if Path(f"/proc/{pid}").exists()], "postfix still running"


def eventually(probe: Callable[[], T | None], what: str, logs: Callable[[], str], timeout: float = 60) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"{what} within {timeout:.0f} s\n{logs()}")


def test_postfix_receives_our_mail_dkim_signed(net: Net) -> None:
    subject = f"to postfix {uuid.uuid4().hex[:8]}"
    auth = net.login(ALICE)
    r = net.http.post("/v1/messages", headers=auth, json={"to": [CAROL], "subject": subject, "text": "Hi Carol"})
    assert r.status_code == 202, r.text
    sent = r.json()

    def arrived() -> bytes | None:
        return next((m for m in net.postfix.maildir_messages("postfix.test/carol") if subject.encode() in m), None)

    raw = eventually(arrived, "the message in carol's maildir",
                     lambda: f"--- postfix\n{net.postfix.log_tail()}\n{net.grid.logs()}")
    message = email.message_from_bytes(raw)
    assert message["Return-Path"] == f"<{ALICE}>"
    assert message["Delivered-To"] == CAROL
    received = " ".join(message["Received"].split())
    assert "by mx.postfix.test (Postfix) with ESMTPS" in received and "(using TLSv1." in received, received
    assert message["Message-ID"].strip("<>") == sent["message_id"]
    assert str(message.get_payload()).strip() == "Hi Carol"
    signatures = message.get_all("DKIM-Signature") or []
    assert len(signatures) == 2 and all("d=example.test;" in "".join(s.split()) for s in signatures), signatures
    # Postfix prepended Return-Path, Delivered-To and Received; both signatures (Ed25519, RSA) still hold
    checker = dkim.DKIM(raw)
    assert all(checker.verify(idx=i, dnsfunc=net.zone.dkim_dnsfunc) for i in range(2)), "DKIM does not verify"

    def delivered() -> list[dict[str, object]] | None:
        detail = net.http.get(f"/v1/messages/{sent['id']}", headers=auth).json()
        states = detail["delivery"]
        return states if states and all(s["state"] == "delivered" for s in states) else None

    [state] = eventually(delivered, "carol shown delivered on alice's Sent copy", net.grid.logs, timeout=30)
    assert state["email"] == CAROL and state["attempts"] == 1
    assert str(state["last_reply"]).startswith("250")


def test_postfix_relays_mail_to_us(net: Net) -> None:
    subject = f"from postfix {uuid.uuid4().hex[:8]}"
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = CAROL, BOB, subject
    m["Message-ID"] = f"<{uuid.uuid4().hex}@postfix.test>"
    m.set_content("Hi Bob, this went through Postfix.")
    with smtplib.SMTP(POSTFIX_HOST, net.postfix.port, timeout=30) as client:
        refused = client.sendmail(CAROL, [BOB], m.as_bytes(policy=SMTP))
    assert refused == {}
    auth = net.login(BOB)

    def in_inbox() -> dict[str, object] | None:
        page = net.http.get("/v1/folders/inbox/messages", headers=auth, params={"limit": 50}).json()
        return next((s for s in page["messages"] if s["subject"] == subject), None)

    summary = eventually(in_inbox, "the relayed message in bob's Inbox",
                         lambda: f"--- postfix\n{net.postfix.log_tail()}\n{net.grid.logs()}")
    raw = net.http.get(f"/v1/messages/{summary['id']}/raw", headers=auth).content
    received = email.message_from_bytes(raw).get_all("Received") or []
    assert any("by mx.postfix.test (Postfix)" in h for h in received), received
    log = net.postfix.log_tail(400)
    assert f"to=<{BOB}>, relay=127.0.0.1[127.0.0.1]:{net.postfix.port}" in log and "status=sent" in log, log
    assert net.postfix.queued() == 0, "mail left in Postfix's queue"
