"""When the far end says no, is down, or says "later": the sender hears, the queue shows it,
nothing is delivered twice. Cluster A (alice@example.test) sends; the far ends are cluster B
(other.test), a loopback address where nothing listens (down.test) and an aiosmtpd sink
that answers 451 to the first DATA (flaky.test). The CLI is run as the real command."""
from __future__ import annotations

import subprocess
import sys
import time
import uuid
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

from tests.outbound.conftest import ALICE, LIFETIME_S, Net, eventually
from tidings.v1 import queue_pb2, types_pb2

State = types_pb2.QueueRecipient
TIDINGS = str(Path(sys.executable).with_name("tidings"))
DSN_SUBJECT = "Undelivered Mail Returned to Sender"


def tidings(net: Net, *args: str) -> str:
    done = subprocess.run([TIDINGS, "--router", net.a.router_address, *args], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def parsed(raw: bytes) -> EmailMessage:
    message = message_from_bytes(raw, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


def status_blocks(report: EmailMessage) -> list[dict[str, str]]:
    """The per-recipient blocks of a DSN's message/delivery-status part."""
    status = list(report.iter_parts())[1]
    assert status.get_content_type() == "message/delivery-status"
    blocks = status.get_payload()
    assert isinstance(blocks, list)
    return [dict(block.items()) for block in blocks[1:] if not isinstance(block, str)]


def dsn_for(net: Net, address: str) -> EmailMessage | None:
    """The DSN in alice's Inbox that reports on `address`, if one has come."""
    for summary in net.alice.folder():
        if summary["subject"] != DSN_SUBJECT:
            continue
        report = parsed(net.alice.raw(summary["id"]))
        if any(b.get("Final-Recipient") == f"rfc822; {address}" for b in status_blocks(report)):
            return report
    return None


def item(net: Net, item_id: str) -> queue_pb2.QueueItem:
    return net.a.queue.GetItem(queue_pb2.QueueItemRef(id=item_id), timeout=10)


def test_unknown_user_at_the_far_end_bounces_with_a_dsn(net: Net) -> None:
    started = time.monotonic()
    sent = net.alice.send(["nobody@other.test"], f"Hello nobody {uuid.uuid4().hex[:8]}")
    report = eventually(lambda: dsn_for(net, "nobody@other.test"), "a DSN for nobody@other.test", timeout=15)
    took = time.monotonic() - started
    assert report.get_content_type() == "multipart/report"
    assert report.get_param("report-type") == "delivery-status"
    assert report["From"].addresses[0].addr_spec == "MAILER-DAEMON@example.test"
    assert report["To"] == ALICE
    [block] = status_blocks(report)
    assert block["Status"] == "5.1.1" and block["Action"] == "failed"
    assert block["Remote-MTA"] == "dns; mx.other.test" and block["Diagnostic-Code"].startswith("smtp; 550 5.1.1")
    assert took < 10, took

    queued = eventually(lambda: (i := item(net, sent["id"])).recipients[0].state == State.BOUNCED and i,
                        "the item shows bounced")
    assert queued.due_ms == 0 and queued.recipients[0].attempts == 1
    shown = tidings(net, "queue", "show", sent["id"])
    assert "bounced   nobody@other.test  attempts 1" in shown, shown
    assert "(mx.other.test said: 550 5.1.1" in shown, shown
    assert "next due:  done" in shown, shown
    [state] = net.alice.message(sent["id"])["delivery"]
    assert state["state"] == "bounced" and str(state["last_reply"]).startswith("550 5.1.1")


def test_a_destination_that_is_down_is_retried_on_the_schedule_then_expires_with_4_4_7(net: Net) -> None:
    sent = net.alice.send(["bob@down.test"], f"Into the void {uuid.uuid4().hex[:8]}")
    first = eventually(lambda: (i := item(net, sent["id"])).recipients[0].attempts >= 1 and i, "a first attempt")
    bob = first.recipients[0]
    assert bob.state == State.DEFERRED and bob.last_reply.startswith("451 4.4.1 connect to mx.down.test[127.0.0.5]")
    listing = tidings(net, "queue", "list")
    assert sent["id"] in listing and "deferred  bob@down.test  attempts " in listing, listing
    assert "(451 4.4.1 connect to mx.down.test[127.0.0.5]" in listing, listing

    # Watch every attempt: the wait after attempt 1 is 1 s, after each later one 2 s (the
    # schedule's last step repeats), never past the item's expiry.
    waits: dict[int, tuple[int, int]] = {}     # attempts -> (wait, next attempt)
    deadline = time.monotonic() + LIFETIME_S + 10
    while time.monotonic() < deadline:
        bob = item(net, sent["id"]).recipients[0]
        if bob.state != State.DEFERRED:
            break
        waits[bob.attempts] = (bob.next_attempt_ms - bob.updated_ms, bob.next_attempt_ms)
        time.sleep(0.1)
    expires_ms = first.expires_ms
    assert first.expires_ms - first.created_ms == LIFETIME_S * 1000
    assert bob.state == State.BOUNCED, bob
    assert bob.last_reply.startswith(f"4.4.7 delivery time expired after {LIFETIME_S}s; last reply: 451 4.4.1"), bob
    assert waits[1][0] == 1000 and waits[2][0] == 2000, waits
    assert all(wait == 2000 or at == expires_ms for n, (wait, at) in waits.items() if n > 1), waits
    assert 4 <= bob.attempts <= 7, (bob.attempts, waits)     # about 0, 1, 3, 5, 7, 9, 10 s

    report = eventually(lambda: dsn_for(net, "bob@down.test"), "a DSN at expiry", timeout=10)
    [block] = status_blocks(report)
    assert block["Status"] == "4.4.7" and block["Action"] == "failed"
    [state] = net.alice.message(sent["id"])["delivery"]
    assert state["state"] == "bounced"


def test_a_4xx_then_2xx_far_end_gets_the_message_exactly_once(net: Net) -> None:
    sent = net.alice.send(["carol@flaky.test"], f"Second time lucky {uuid.uuid4().hex[:8]}")
    done = eventually(lambda: (i := item(net, sent["id"])).recipients[0].state == State.DELIVERED and i,
                      "delivered on the second attempt", timeout=15)
    carol = done.recipients[0]
    assert carol.attempts == 2 and carol.last_reply.startswith("250"), carol
    assert net.flaky.data_commands == 2
    time.sleep(2.5)     # longer than any wait of the schedule: a second delivery would have come
    assert net.flaky.message_ids() == {sent["message_id"]: 1}, net.flaky.message_ids()
    [state] = net.alice.message(sent["id"])["delivery"]
    assert state["state"] == "delivered" and state["attempts"] == 2
    assert dsn_for(net, "carol@flaky.test") is None
