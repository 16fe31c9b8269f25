"""Two real clusters that mail each other, for the end-to-end tests of outgoing mail.

One DNS server (dnslib on 127.0.0.1) and one pair of clusters for the whole package, since
each cluster start costs seconds:

- cluster A hosts `example.test` on 127.0.0.1, cluster B hosts `other.test` on 127.0.0.2;
  both SMTP edges (the MX role) listen on the same port P, and each runs a delivery worker
  process that asks our DNS server and connects to port P of the MX host;
- aiosmtpd sinks on 127.0.0.3, .4 and .6, port P, stand in for other far ends
  (`flaky.test`, `slow.test`, `steady.test`); `down.test`'s MX is 127.0.0.5, where
  nothing listens;
- the DNS server publishes MX and A for every domain, and as TXT the DKIM records each
  cluster gives `Admin.DkimRecords`.

Times are short so the tests are: retries 1 s then every 2 s, a 10 s queue lifetime on A,
a 4 s lease (a killed worker's item is taken again 4 s after it was leased), lease rounds
every 0.2 s.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import pytest

from tests.cluster.grid import PASSWORD, Grid, running
from tests.mailnet import Sink, ThreadedFarEnd, Zone, nothing_listens, port_free_on, serving
from tidings.v1 import mail_pb2

T = TypeVar("T")

A_HOST, B_HOST = "127.0.0.1", "127.0.0.2"
FLAKY, SLOW, DOWN, STEADY = "127.0.0.3", "127.0.0.4", "127.0.0.5", "127.0.0.6"
LIFETIME_S = 10
LEASE_S = 4
SCHEDULE = "1s,2s"
ALICE, BOB = "alice@example.test", "bob@other.test"


def worker_flags(zone: Zone, port: int) -> tuple[str, ...]:
    return ("--dns", zone.address, "--outbound-port", str(port), "--retry-schedule", SCHEDULE,
            "--poll-interval-s", "0.2", "--lease-s", str(LEASE_S))


def eventually(check: Callable[[], T | None], what: str, timeout: float = 20, interval: float = 0.1) -> T:
    """`check()`'s first truthy value, polled until `timeout`; AssertionError naming `what`."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"{what}: not after {timeout} s (last: {last!r})")


class Mailbox:
    """One user's HTTP session with their cluster's HTTP edge."""

    def __init__(self, grid: Grid, email: str) -> None:
        self.grid, self.email = grid, email
        self.http = httpx.Client(base_url=grid.http_url, timeout=30)
        token = self.http.post("/v1/auth/token", json={"email": email, "password": PASSWORD})
        assert token.status_code == 200, token.text
        self.http.headers["Authorization"] = f"Bearer {token.json()['token']}"

    def send(self, to: list[str], subject: str, text: str = "Hello.", **fields: Any) -> dict[str, Any]:
        r = self.http.post("/v1/messages", json={"to": to, "subject": subject, "text": text, **fields})
        assert r.status_code == 202, r.text
        return dict(r.json())

    def folder(self, folder: str = "inbox") -> list[dict[str, Any]]:
        r = self.http.get(f"/v1/folders/{folder}/messages", params={"limit": 200})
        assert r.status_code == 200, r.text
        return list(r.json()["messages"])

    def find(self, subject: str, folder: str = "inbox") -> dict[str, Any] | None:
        return next((m for m in self.folder(folder) if m["subject"] == subject), None)

    def wait_for(self, subject: str, folder: str = "inbox", timeout: float = 20) -> dict[str, Any]:
        return eventually(lambda: self.find(subject, folder), f"{subject!r} in {self.email}'s {folder}", timeout)

    def message(self, message_id: str) -> dict[str, Any]:
        r = self.http.get(f"/v1/messages/{message_id}")
        assert r.status_code == 200, r.text
        return dict(r.json())

    def raw(self, message_id: str) -> bytes:
        r = self.http.get(f"/v1/messages/{message_id}/raw")
        assert r.status_code == 200, r.text
        return r.content

    def close(self) -> None:
        self.http.close()


@dataclass
class Net:
    zone: Zone
    port: int               # SMTP of both clusters and of every sink
    a: Grid
    b: Grid
    flaky: Sink             # flaky.test: 451 to the first DATA, 250 after
    slow: Sink              # slow.test: holds DATA (set per test)
    steady: Sink            # steady.test: takes everything at once
    alice: Mailbox
    bob: Mailbox

    def logs(self) -> str:
        return f"=== cluster A\n{self.a.logs()}\n=== cluster B\n{self.b.logs()}"


def publish_dkim(zone: Zone, grid: Grid) -> None:
    records = grid.admin.DkimRecords(mail_pb2.AddDomainRequest(domain=grid.domain), timeout=30)
    assert len(records.records) >= 1
    for record in records.records:
        zone.txt(record.name, record.value)


@pytest.fixture(scope="package")
def zone() -> Iterator[Zone]:
    """The DNS server every worker asks."""
    with serving(Zone()) as zone:
        yield zone


@pytest.fixture(scope="package")
def net(zone: Zone, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    base = tmp_path_factory.mktemp("outbound")
    port = port_free_on(A_HOST, B_HOST, FLAKY, SLOW, DOWN, STEADY)
    far = ThreadedFarEnd(base / "far", port)
    flaky, slow, steady = (far.sink(FLAKY, Sink(temp_failures=1)), far.sink(SLOW), far.sink(STEADY))
    zone.mx("example.test", (10, "mx.example.test", A_HOST))
    zone.mx("other.test", (10, "mx.other.test", B_HOST))
    zone.mx("flaky.test", (10, "mx.flaky.test", FLAKY))
    zone.mx("slow.test", (10, "mx.slow.test", SLOW))
    zone.mx("down.test", (10, "mx.down.test", DOWN))
    zone.mx("steady.test", (10, "mx.steady.test", STEADY))
    edges = ("smtp", "http", "outbound")
    try:
        with running(base / "a", edges, ("--queue-lifetime", f"{LIFETIME_S}s"), host=A_HOST, domain="example.test",
                     smtp_port=port, args={"outbound": worker_flags(zone, port)}) as a, \
             running(base / "b", edges, host=B_HOST, domain="other.test", smtp_port=port,
                     args={"outbound": worker_flags(zone, port)}) as b:
            assert nothing_listens(DOWN, port)
            publish_dkim(zone, a)
            publish_dkim(zone, b)
            a.add_user(ALICE)
            b.add_user(BOB)
            alice, bob = Mailbox(a, ALICE), Mailbox(b, BOB)
            try:
                yield Net(zone, port, a, b, flaky, slow, steady, alice, bob)
            finally:
                alice.close()
                bob.close()
    finally:
        far.close()
