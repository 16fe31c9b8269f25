"""Mail between two real clusters: alice@example.test (cluster A) writes to bob@other.test
(cluster B) over HTTP and over submission; A's delivery worker looks up other.test's MX in
our DNS server and delivers to B's SMTP edge; the message is DKIM-signed for example.test
and verifies against the record A publishes; bob's reply comes back and threads."""
from __future__ import annotations

import smtplib
import ssl
import time
import uuid
from email.message import EmailMessage

import dkim

from tests.cluster.grid import PASSWORD
from tests.outbound.conftest import ALICE, BOB, Net, eventually


def verified_for(raw: bytes, net: Net) -> list[bytes]:
    """The d= of each DKIM signature of `raw` that verifies, keys from our DNS server."""
    domains = []
    for index in range(raw.count(b"DKIM-Signature:")):
        checker = dkim.DKIM(raw)
        try:
            if checker.verify(idx=index, dnsfunc=net.zone.dkim_dnsfunc):
                domains.append(checker.domain)
        except dkim.DKIMException:
            pass
    return domains


def delivered_to(net: Net, sent_id: str) -> list[dict[str, object]]:
    delivery = net.alice.message(sent_id)["delivery"]
    return delivery if delivery and all(d["state"] == "delivered" for d in delivery) else []


def test_http_message_reaches_the_other_cluster_signed_and_the_reply_threads(net: Net) -> None:
    subject = f"Lunch {uuid.uuid4().hex[:8]}"
    started = time.monotonic()
    sent = net.alice.send([BOB], subject, "Shall we have lunch on Friday?")
    got = net.bob.wait_for(subject)
    took = time.monotonic() - started
    raw = net.bob.raw(got["id"])
    assert b"Shall we have lunch on Friday?" in raw
    assert verified_for(raw, net) == [b"example.test", b"example.test"], raw[:2000]   # rsa-sha256 and ed25519
    assert verified_for(raw.replace(b"Friday?", b"Monday?"), net) == []                 # the check can fail
    [state] = eventually(lambda: delivered_to(net, sent["id"]), "the Sent copy shows delivered")
    assert state["email"] == BOB and state["attempts"] == 1 and str(state["last_reply"]).startswith("250")
    assert took < 10, took

    reply = net.bob.send([ALICE], f"Re: {subject}", "Friday works.", in_reply_to=got["id"])
    back = net.alice.wait_for(f"Re: {subject}")
    assert back["thread_id"] == sent["thread_id"]
    thread = net.alice.http.get(f"/v1/threads/{sent['thread_id']}").json()
    assert [m["subject"] for m in thread["messages"]] == [subject, f"Re: {subject}"]
    assert verified_for(net.alice.raw(back["id"]), net) == [b"other.test", b"other.test"]
    assert net.bob.message(reply["id"])["delivery"][0]["email"] == ALICE


def test_submission_message_reaches_the_other_cluster_signed(net: Net) -> None:
    subject = f"Minutes {uuid.uuid4().hex[:8]}"
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = f"Alice <{ALICE}>", BOB, subject
    message["Message-ID"] = f"<{uuid.uuid4().hex}@example.test>"
    message.set_content("The minutes of Tuesday's meeting.")
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    with smtplib.SMTP(net.a.host, net.a.submission_port, timeout=30) as client:
        client.starttls(context=context)
        client.login(ALICE, PASSWORD)
        assert client.send_message(message) == {}
    got = net.bob.wait_for(subject)
    raw = net.bob.raw(got["id"])
    assert message["Message-ID"].encode() in raw
    assert verified_for(raw, net) == [b"example.test", b"example.test"]
    sent = net.alice.wait_for(subject, "sent")
    [state] = eventually(lambda: delivered_to(net, sent["id"]), "the Sent copy shows delivered")
    assert state["email"] == BOB and state["state"] == "delivered"
