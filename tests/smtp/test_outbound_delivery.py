"""The delivery worker against real servers on loopback: aiosmtpd sinks as the far end's
MX hosts (127.0.0.1-127.0.0.9, all on one port, as `TIDINGS_OUTBOUND_PORT` is one port),
a dnslib DNS server answering MX and A for the test domains (both from tests/mailnet.py),
and an in-process `grpc.aio` double of the router's Queue service and Mail.Deliver (the
real router's end-to-end tests, with real clusters and the worker process, are
tests/outbound/).
"""
from __future__ import annotations

import asyncio
import base64
import contextlib
import socket
import ssl
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import grpc
import pytest
from aiosmtpd.smtp import SMTP
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from dnslib import MX, A

from smtp_edge.outbound.delivery import Deliverer, Relay, Timeouts
from smtp_edge.outbound.delivery import Envelope as Mail
from smtp_edge.outbound.dkim import Signer
from smtp_edge.outbound.mx import MxResolver, make_resolver
from smtp_edge.outbound.queue_api import QueueApi
from smtp_edge.outbound.retry import RetrySchedule
from smtp_edge.outbound.worker import Worker
from tests.mailnet import FarEnd, Sink, Zone, serving, verify_signatures
from tidings.v1 import mail_pb2, mail_pb2_grpc, queue_pb2, queue_pb2_grpc, types_pb2
from tidings_runtime.tls import server_context

State = types_pb2.QueueRecipient
SENDER = "alice@example.test"
SCHEDULE = "2m,5m,10m"
MINUTE_MS = 60_000
FAST = Timeouts(connect=2, greeting=5, ehlo=5, starttls=5, mail=5, rcpt=5, data=5)


# --- DNS and the far end (tests/mailnet.py) -------------------------------------------------------

@pytest.fixture(scope="module")
def zone() -> Iterator[Zone]:
    with serving(Zone()) as zone:
        yield zone


# --- The router's double: Queue and Mail.Deliver --------------------------------------------------

class FakeRouter(queue_pb2_grpc.QueueServicer, mail_pb2_grpc.MailServicer):  # type: ignore[misc]
    def __init__(self) -> None:
        self.items: dict[str, queue_pb2.QueueItem] = {}
        self.bodies: dict[str, bytes] = {}
        self.keys: dict[str, queue_pb2.SigningKeys] = {}
        self.reports: list[queue_pb2.QueueItem] = []
        self.bounces: list[mail_pb2.DeliverRequest] = []
        self.refuse_bounces = False

    def enqueue(self, item_id: str, recipients: list[str], raw: bytes, **fields: Any) -> queue_pb2.QueueItem:
        now = int(time.time() * 1000)
        item = queue_pb2.QueueItem(id=item_id, mail_from=SENDER, sender_user_id="00000000000000a1",
                                   recipients=[State(address=r, state=State.QUEUED) for r in recipients],
                                   created_ms=now, expires_ms=now + 5 * 86_400_000, size=len(raw), due_ms=now)
        for name, value in fields.items():
            setattr(item, name, value)
        self.items[item_id], self.bodies[item_id] = item, raw
        return item

    async def LeaseDue(self, request: queue_pb2.LeaseRequest, context: Any) -> queue_pb2.QueueItems:
        now = int(time.time() * 1000)
        due = [i for i in self.items.values() if 0 < i.due_ms <= now and i.lease_until_ms <= now][:request.limit]
        for item in due:
            item.lease_owner, item.lease_until_ms = request.worker, now + request.lease_ms
        return queue_pb2.QueueItems(items=due)

    async def GetBody(self, request: queue_pb2.QueueItemRef, context: Any) -> mail_pb2.RawMessage:
        return mail_pb2.RawMessage(raw=self.bodies[request.id])

    async def ReportAttempt(self, request: queue_pb2.QueueItem, context: Any) -> queue_pb2.QueueItem:
        self.reports.append(request)
        item = queue_pb2.QueueItem()
        item.CopyFrom(request)
        item.lease_owner, item.lease_until_ms = "", 0
        pending = [r.next_attempt_ms for r in item.recipients if r.state in (State.QUEUED, State.DEFERRED)]
        failed = any(r.state == State.FAILED for r in item.recipients)
        item.due_ms = int(time.time() * 1000) if failed else min(pending, default=0)
        self.items[item.id] = item
        return item

    async def GetSigningKeys(self, request: queue_pb2.SigningKeysRequest, context: Any) -> queue_pb2.SigningKeys:
        if request.domain not in self.keys:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"{request.domain} is not hosted")
        return self.keys[request.domain]

    async def Deliver(self, request: mail_pb2.DeliverRequest, context: Any) -> mail_pb2.DeliverResponse:
        if self.refuse_bounces:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "not a hosted recipient")
        if all(b.entry_id != request.entry_id for b in self.bounces):
            self.bounces.append(request)
        return mail_pb2.DeliverResponse()


@dataclass
class DkimKeys:
    signing: queue_pb2.SigningKeys
    records: dict[bytes, bytes]

    def verify(self, message: bytes) -> list[bool]:
        return verify_signatures(message, self.records)


@pytest.fixture(scope="module")
def dkim_keys() -> DkimKeys:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ed_key = ed25519.Ed25519PrivateKey.generate()

    def pkcs8(key: Any) -> bytes:
        return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())

    rsa_record = b"v=DKIM1; k=rsa; p=" + base64.b64encode(rsa_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo))
    ed_record = b"v=DKIM1; k=ed25519; p=" + base64.b64encode(ed_key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw))
    keys = queue_pb2.SigningKeys(domain="example.test", keys=[
        queue_pb2.SigningKey(selector="rsa2026", algorithm="rsa-sha256", private_key=pkcs8(rsa_key),
                             dns_record=rsa_record.decode()),
        queue_pb2.SigningKey(selector="ed2026", algorithm="ed25519-sha256", private_key=pkcs8(ed_key),
                             dns_record=ed_record.decode())])
    return DkimKeys(keys, {b"rsa2026._domainkey.example.test.": rsa_record,
                           b"ed2026._domainkey.example.test.": ed_record})


@dataclass
class World:
    far: FarEnd
    router: FakeRouter
    api: QueueApi
    worker: Worker
    zone: Zone

    def mx(self, domain: str, *hosts: tuple[int, str, str]) -> None:
        """`domain`'s MX records: (preference, host name, address)."""
        self.zone.mx(domain, *hosts)

    async def attempt(self, item: queue_pb2.QueueItem) -> queue_pb2.QueueItem:
        return await self.worker.process(item)


@contextlib.asynccontextmanager
async def world(zone: Zone, tls_dir: Path, dkim_keys: DkimKeys, *, relay: Relay | None = None,
                timeouts: Timeouts = FAST) -> AsyncIterator[World]:
    far = FarEnd(tls_dir)
    await far.sink("127.0.0.1")     # takes the port every other sink shares
    router = FakeRouter()
    router.keys["example.test"] = dkim_keys.signing
    server = grpc.aio.server()
    queue_pb2_grpc.add_QueueServicer_to_server(router, server)
    mail_pb2_grpc.add_MailServicer_to_server(router, server)
    grpc_port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    api = QueueApi(f"127.0.0.1:{grpc_port}", rpc_timeout=5)
    await api.open()
    resolver = MxResolver(make_resolver([("127.0.0.1", zone.port)]))
    deliverer = Deliverer(resolver, hostname="out.example.test", port=far.port, timeouts=timeouts, relay=relay)
    worker = Worker(api, deliverer, Signer(api.signing_keys), worker_id="test-worker", hostname="out.example.test",
                    schedule=RetrySchedule.parse(SCHEDULE), lifetime_ms=5 * 86_400_000, lease_s=60,
                    poll_interval_s=0.05, concurrency=4)
    try:
        yield World(far, router, api, worker, zone)
    finally:
        await worker.stop(grace_s=1)
        await api.close()
        await server.stop(None)
        await far.close()


def message(to: str, subject: str = "Plans") -> bytes:
    return (f"From: Alice <{SENDER}>\r\nTo: {to}\r\nSubject: {subject}\r\n"
            "Date: Tue, 14 Nov 2023 22:13:20 +0000\r\nMessage-ID: <m1@example.test>\r\n"
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
            "Hi there.\r\n.leading dot\r\n").encode()


def states(item: queue_pb2.QueueItem) -> dict[str, int]:
    return {r.address: r.state for r in item.recipients}


def by_address(item: queue_pb2.QueueItem) -> dict[str, types_pb2.QueueRecipient]:
    return {r.address: r for r in item.recipients}


def run(zone: Zone, tmp_path: Path, dkim_keys: DkimKeys, scenario: Any, **options: Any) -> None:
    async def main() -> None:
        async with world(zone, tmp_path, dkim_keys, **options) as w:
            await asyncio.wait_for(scenario(w), 60)
    asyncio.run(main())


def unused_loopback(address: str) -> None:
    """Nothing may already listen where a test expects a refusal."""
    with socket.socket() as probe:
        probe.settimeout(0.2)
        assert probe.connect_ex((address, 1)) != 0


# --- Tests ----------------------------------------------------------------------------------------

def test_2xx_delivers_signed_mail_that_verifies(zone: Zone, tmp_path: Path, dkim_keys: DkimKeys) -> None:
    async def scenario(w: World) -> None:
        sink = await w.far.sink("127.0.0.2")
        w.mx("ok.test", (10, "mx1.ok.test", "127.0.0.2"))
        raw = message("bob@ok.test, carol@ok.test")
        item = w.router.enqueue("01" * 16, ["bob@ok.test", "Carol@OK.test"], raw)
        stored = await w.attempt(item)
        assert states(stored) == {"bob@ok.test": State.DELIVERED, "Carol@OK.test": State.DELIVERED}
        bob = by_address(stored)["bob@ok.test"]
        assert bob.attempts == 1 and bob.remote_mta == "mx1.ok.test" and bob.last_reply.startswith("250 2.0.0")
        assert stored.due_ms == 0 and w.router.bounces == []
        [got] = sink.received       # one transaction for the domain
        assert got.mail_from == SENDER and got.rcpt_tos == ["bob@ok.test", "Carol@OK.test"]
        assert any(o.startswith("SIZE=") for o in got.mail_options)
        assert got.content.endswith(b"Hi there.\r\n.leading dot\r\n")
        assert dkim_keys.verify(got.content) == [True, True]
        assert b"a=rsa-sha256" in got.content and b"a=ed25519-sha256" in got.content

    run(zone, tmp_path, dkim_keys, scenario)


def test_a_550_on_one_rcpt_fails_only_that_recipient_and_bounces_it(
        zone: Zone, tmp_path: Path, dkim_keys: DkimKeys) -> None:
    async def scenario(w: World) -> None:
        sink = await w.far.sink("127.0.0.3", Sink(refuse={"nobody@mixed.test": "550 5.1.1 <nobody@mixed.test>: no such user"}))
        w.mx("mixed.test", (10, "mx.mixed.test", "127.0.0.3"))
        item = w.router.enqueue("02" * 16, ["bob@mixed.test", "nobody@mixed.test"], message("bob@mixed.test"))
        stored = await w.attempt(item)
        assert states(stored) == {"bob@mixed.test": State.DELIVERED, "nobody@mixed.test": State.BOUNCED}
        assert by_address(stored)["nobody@mixed.test"].last_reply == "550 5.1.1 <nobody@mixed.test>: no such user"
        assert [r.rcpt_tos for r in sink.received] == [["bob@mixed.test"]]
        [dsn] = w.router.bounces
        assert list(dsn.recipients) == [SENDER] and dsn.mail_from == ""
        report = message_from_bytes(dsn.raw, policy=policy.default)
        assert report.get_content_type() == "multipart/report"
        status = list(report.iter_parts())[1].get_payload()
        assert [(b["Final-Recipient"], b["Status"], b["Remote-MTA"]) for b in status[1:]] == [
            ("rfc822; nobody@mixed.test", "5.1.1", "dns; mx.mixed.test")]

        again = await w.attempt(stored)     # nothing due, the bounce owed is paid: nothing is sent again
        assert states(again) == states(stored) and len(w.router.bounces) == 1

    run(zone, tmp_path, dkim_keys, scenario)


def test_4xx_defers_per_schedule(zone: Zone, tmp_path: Path, dkim_keys: DkimKeys) -> None:
    async def scenario(w: World) -> None:
        await w.far.sink("127.0.0.4", Sink(refuse={"bob@grey.test": "451 4.7.1 greylisted, try again"}))
        w.mx("grey.test", (10, "mx.grey.test", "127.0.0.4"))
        item = w.router.enqueue("03" * 16, ["bob@grey.test"], message("bob@grey.test"))
        before = int(time.time() * 1000)
        first = by_address(await w.attempt(item))["bob@grey.test"]
        assert first.state == State.DEFERRED and first.attempts == 1
        assert first.last_reply == "451 4.7.1 greylisted, try again" and first.remote_mta == "mx.grey.test"
        assert before + 2 * MINUTE_MS <= first.next_attempt_ms <= int(time.time() * 1000) + 2 * MINUTE_MS
        assert w.router.items[item.id].due_ms == first.next_attempt_ms

        second_try = w.router.items[item.id]
        second_try.recipients[0].next_attempt_ms = 0    # as if two minutes had passed
        second = by_address(await w.attempt(second_try))["bob@grey.test"]
        assert second.attempts == 2 and second.next_attempt_ms - second.updated_ms == 5 * MINUTE_MS

    run(zone, tmp_path, dkim_keys, scenario)


def test_connection_refused_defers(zone: Zone, tmp_path: Path, dkim_keys: DkimKeys) -> None:
    unused_loopback("127.0.0.5")

    async def scenario(w: World) -> None:
        w.mx("down.test", (10, "mx.down.test", "127.0.0.5"))
        item = w.router.enqueue("04" * 16, ["bob@down.test"], message("bob@down.test"))
        bob = by_address(await w.attempt(item))["bob@down.test"]
        assert bob.state == State.DEFERRED and bob.next_attempt_ms > 0
        assert bob.last_reply.startswith("451 4.4.1 connect to mx.down.test[127.0.0.5]")
        assert "refused" in bob.last_reply.lower() and bob.remote_mta == ""

    run(zone, tmp_path, dkim_keys, scenario)


def test_null_mx_and_nxdomain_fail_for_good_and_servfail_defers(zone: Zone, tmp_path: Path,
                                                                dkim_keys: DkimKeys) -> None:
    async def scenario(w: World) -> None:
        w.zone.add("nomail.test", "MX", MX(".", 0))
        w.zone.broken.add("broken.test")
        w.zone.add("broken.test", "MX", MX("mx.broken.test", 10))
        item = w.router.enqueue("05" * 16, ["bob@nomail.test", "x@nowhere.test", "y@broken.test"],
                                message("bob@nomail.test"))
        stored = by_address(await w.attempt(item))
        assert stored["bob@nomail.test"].state == State.BOUNCED
        assert stored["bob@nomail.test"].last_reply.startswith("556 5.1.10")
        assert stored["x@nowhere.test"].state == State.BOUNCED
        assert stored["x@nowhere.test"].last_reply.startswith("550 5.1.2")
        assert stored["y@broken.test"].state == State.DEFERRED
        assert stored["y@broken.test"].last_reply.startswith("451 4.4.3")
        [dsn] = w.router.bounces
        status = list(message_from_bytes(dsn.raw, policy=policy.default).iter_parts())[1].get_payload()
        assert sorted(b["Status"] for b in status[1:]) == ["5.1.10", "5.1.2"]

    run(zone, tmp_path, dkim_keys, scenario)


def test_starttls_with_a_self_signed_certificate_is_used(zone: Zone, tmp_path: Path, dkim_keys: DkimKeys) -> None:
    async def scenario(w: World) -> None:
        sink = await w.far.sink("127.0.0.6", starttls=True)
        w.mx("tls.test", (10, "mx.tls.test", "127.0.0.6"))
        item = w.router.enqueue("06" * 16, ["bob@tls.test"], message("bob@tls.test"))
        assert states(await w.attempt(item)) == {"bob@tls.test": State.DELIVERED}
        [got] = sink.received
        assert got.tls and dkim_keys.verify(got.content) == [True, True]

    run(zone, tmp_path, dkim_keys, scenario)


def test_a_failed_tls_handshake_is_retried_in_plain_text(zone: Zone, tmp_path: Path, dkim_keys: DkimKeys) -> None:
    async def scenario(w: World) -> None:
        tls = server_context(tmp_path, "mx.picky.test")
        tls.verify_mode = ssl.CERT_REQUIRED     # we present no client certificate: the handshake fails
        tls.load_verify_locations(tmp_path / "tls" / "cert.pem")
        sink = Sink()
        loop = asyncio.get_running_loop()
        await w.far._listen(lambda: SMTP(sink, hostname="mx.picky.test", decode_data=False, tls_context=tls,
                                         loop=loop), "127.0.0.16")
        w.mx("picky.test", (10, "mx.picky.test", "127.0.0.16"))
        item = w.router.enqueue("0e" * 16, ["bob@picky.test"], message("bob@picky.test"))
        assert states(await w.attempt(item)) == {"bob@picky.test": State.DELIVERED}
        [got] = sink.received
        assert not got.tls

    run(zone, tmp_path, dkim_keys, scenario)


def test_the_next_mx_is_tried_after_a_refused_connection_or_a_4xx_greeting(
        zone: Zone, tmp_path: Path, dkim_keys: DkimKeys) -> None:
    unused_loopback("127.0.0.7")

    async def scenario(w: World) -> None:
        await w.far.greeter("127.0.0.8")
        sink = await w.far.sink("127.0.0.9")
        w.mx("backup.test", (30, "mx3.backup.test", "127.0.0.9"), (10, "mx1.backup.test", "127.0.0.7"),
             (20, "mx2.backup.test", "127.0.0.8"))
        item = w.router.enqueue("07" * 16, ["bob@backup.test"], message("bob@backup.test"))
        bob = by_address(await w.attempt(item))["bob@backup.test"]
        assert bob.state == State.DELIVERED and bob.remote_mta == "mx3.backup.test"
        assert len(sink.received) == 1

    run(zone, tmp_path, dkim_keys, scenario)


def test_all_mx_hosts_down_keeps_the_last_reason(zone: Zone, tmp_path: Path, dkim_keys: DkimKeys) -> None:
    async def scenario(w: World) -> None:
        await w.far.greeter("127.0.0.10")
        w.mx("busy.test", (10, "mx.busy.test", "127.0.0.10"))
        results = await w.worker._deliverer.deliver(
            "busy.test", Mail(SENDER, ("bob@busy.test",), message("bob@busy.test")))
        reply = results["bob@busy.test"]
        assert reply.code == 421 and reply.remote_mta == "mx.busy.test"

    run(zone, tmp_path, dkim_keys, scenario)


def test_an_implicit_mx_is_the_domains_own_address(zone: Zone, tmp_path: Path, dkim_keys: DkimKeys) -> None:
    async def scenario(w: World) -> None:
        sink = await w.far.sink("127.0.0.11")
        w.zone.add("plain.test", "A", A("127.0.0.11"))
        item = w.router.enqueue("08" * 16, ["bob@plain.test"], message("bob@plain.test"))
        assert states(await w.attempt(item)) == {"bob@plain.test": State.DELIVERED}
        assert len(sink.received) == 1

    run(zone, tmp_path, dkim_keys, scenario)


def test_a_message_over_the_far_ends_size_limit_fails_without_data(
        zone: Zone, tmp_path: Path, dkim_keys: DkimKeys) -> None:
    async def scenario(w: World) -> None:
        sink = Sink()
        loop = asyncio.get_running_loop()
        await w.far._listen(lambda: SMTP(sink, hostname="small.test", decode_data=False, data_size_limit=200,
                                         loop=loop), "127.0.0.12")
        w.mx("small.test", (10, "mx.small.test", "127.0.0.12"))
        item = w.router.enqueue("09" * 16, ["bob@small.test"], message("bob@small.test"))
        bob = by_address(await w.attempt(item))["bob@small.test"]
        assert bob.state == State.BOUNCED and bob.last_reply.startswith("552 5.3.4")
        assert sink.received == []

    run(zone, tmp_path, dkim_keys, scenario)


def test_a_smart_host_replaces_mx_lookup(zone: Zone, tmp_path: Path, dkim_keys: DkimKeys) -> None:
    async def scenario(w: World) -> None:
        relay = await w.far.sink("127.0.0.13")
        w.worker._deliverer._relay = Relay("127.0.0.13", w.far.port)
        item = w.router.enqueue("0a" * 16, ["bob@unresolvable.test"], message("bob@unresolvable.test"))
        assert states(await w.attempt(item)) == {"bob@unresolvable.test": State.DELIVERED}
        assert [r.rcpt_tos for r in relay.received] == [["bob@unresolvable.test"]]

    run(zone, tmp_path, dkim_keys, scenario)


def test_a_bounce_never_bounces_and_a_refused_bounce_tells_no_one(
        zone: Zone, tmp_path: Path, dkim_keys: DkimKeys) -> None:
    async def scenario(w: World) -> None:
        w.zone.add("nomail2.test", "MX", MX(".", 0))
        dsn = w.router.enqueue("0b" * 16, ["bob@nomail2.test"], message("bob@nomail2.test"), mail_from="",
                               is_bounce=True, sender_user_id="")
        assert states(await w.attempt(dsn)) == {"bob@nomail2.test": State.BOUNCED}
        w.router.refuse_bounces = True
        item = w.router.enqueue("0c" * 16, ["carol@nomail2.test"], message("carol@nomail2.test"),
                                mail_from="remote@elsewhere.example", sender_user_id="")
        assert states(await w.attempt(item)) == {"carol@nomail2.test": State.BOUNCED}
        assert w.router.bounces == []

    run(zone, tmp_path, dkim_keys, scenario)


def test_an_expired_item_fails_without_an_attempt_with_4_4_7(zone: Zone, tmp_path: Path, dkim_keys: DkimKeys) -> None:
    async def scenario(w: World) -> None:
        sink = await w.far.sink("127.0.0.14")
        w.mx("late.test", (10, "mx.late.test", "127.0.0.14"))
        now = int(time.time() * 1000)
        item = w.router.enqueue("0d" * 16, ["bob@late.test"], message("bob@late.test"),
                                created_ms=now - 6 * 86_400_000, expires_ms=now - 86_400_000)
        item.recipients[0].state, item.recipients[0].last_reply = State.DEFERRED, "451 4.7.1 greylisted"
        bob = by_address(await w.attempt(item))["bob@late.test"]
        assert bob.state == State.BOUNCED and bob.last_reply.startswith("4.4.7 delivery time expired after 5d")
        assert sink.received == []
        status = list(message_from_bytes(w.router.bounces[0].raw, policy=policy.default).iter_parts())[1].get_payload()
        assert status[1]["Status"] == "4.4.7"

    run(zone, tmp_path, dkim_keys, scenario)


def test_the_loop_leases_delivers_and_reports(zone: Zone, tmp_path: Path, dkim_keys: DkimKeys) -> None:
    from tidings_runtime.periodic import Periodic

    async def scenario(w: World) -> None:
        sink = await w.far.sink("127.0.0.15")
        w.mx("loop.test", (10, "mx.loop.test", "127.0.0.15"))
        for n in range(6):
            w.router.enqueue(f"{n:02x}" * 16, [f"user{n}@loop.test"], message(f"user{n}@loop.test"))
        periodic = Periodic()
        w.worker.start(periodic)
        try:
            for _ in range(200):
                if len(w.router.reports) >= 6:
                    break
                await asyncio.sleep(0.05)
        finally:
            await periodic.stop()
        assert sorted(r.id for r in w.router.reports) == sorted(w.router.items)
        assert all(r.lease_owner == "test-worker" for r in w.router.reports)
        assert all(states(i) == {i.recipients[0].address: State.DELIVERED} for i in w.router.items.values())
        assert len(sink.received) == 6

    run(zone, tmp_path, dkim_keys, scenario)
