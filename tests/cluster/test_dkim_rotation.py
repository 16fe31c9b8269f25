"""DKIM key rotation through the `tidings dkim` commands on a real grid: a message sent through
the submission edge before the rotation is signed with the first keys; `rotate` prints new
records (published in a loopback dnslib server), `activate` switches signing, and the next
message is signed with the new selectors only, verifying with dkimpy against the new records
while the first still verifies against the old ones, kept published. Refusals (an active key
retired, an unknown selector or domain) exit 1 and change nothing."""
from __future__ import annotations

import smtplib
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from email.message import EmailMessage
from email.parser import BytesHeaderParser

import dkim
import pytest
from dkim.util import parse_tag_value

from tests.cluster.grid import PASSWORD, Grid, running
from tests.cluster.test_cli import zone_records
from tests.mailnet import Received, Sink, ThreadedFarEnd, Zone, port_free_on, serving

FAR = "127.0.0.9"
ALICE = "alice@example.test"
YEAR = time.gmtime().tm_year


class Net:
    def __init__(self, grid: Grid, zone: Zone, sink: Sink) -> None:
        self.grid, self.zone, self.sink = grid, zone, sink


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    base = tmp_path_factory.mktemp("dkim-rotation")
    port = port_free_on(FAR)
    far = ThreadedFarEnd(base / "far", port)
    try:
        sink = far.sink(FAR)
        with serving(Zone()) as zone:
            zone.mx("far.test", (10, "mx.far.test", FAR))
            worker = ("--dns", zone.address, "--outbound-port", str(port), "--poll-interval-s", "0.2")
            with running(base / "grid", ("smtp", "outbound"), args={"outbound": worker}) as grid:
                grid.add_user(ALICE)
                yield Net(grid, zone, sink)
    finally:
        far.close()


def tidings(net: Net, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tidings_cli", "--router", net.grid.router_address, *args],
                          check=False, capture_output=True, text=True, timeout=60)


def ok(net: Net, *args: str) -> str:
    done = tidings(net, *args)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def publish(net: Net, zone_text: str) -> list[str]:
    """The records of `tidings` zone-file output put in the DNS server; their selectors."""
    records = zone_records(zone_text)
    for name, value in records.items():
        net.zone.txt(name, value)
    return [name.split(".")[0] for name in records]


def listing(net: Net) -> dict[str, str]:
    """selector -> "active" / "published", from `tidings dkim list`."""
    return {line.split()[0]: line.split()[2] for line in ok(net, "dkim", "list", "example.test").splitlines()[1:]}


def submit(net: Net) -> Received:
    """A message from alice to far.test through the submission edge, as the far end got it."""
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = ALICE, "carol@far.test", f"rotation {uuid.uuid4().hex}"
    message["Message-ID"] = f"<{uuid.uuid4().hex}@example.test>"
    message.set_content("Signed with whichever key is active.")
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    with smtplib.SMTP(net.grid.host, net.grid.submission_port, timeout=30) as client:
        client.starttls(context=context)
        client.login(ALICE, PASSWORD)
        assert client.send_message(message) == {}
    wanted = message["Message-ID"].strip("<>")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        got = next((r for r in net.sink.received if r.message_id == wanted), None)
        if got is not None:
            return got
        time.sleep(0.1)
    raise AssertionError(f"{wanted} not delivered to the far end:\n{net.grid.logs()}")


def verified_selectors(raw: bytes, net: Net) -> list[str]:
    """The s= of each DKIM signature of `raw` that verifies against the DNS server's records."""
    selectors = []
    for index in range(raw.count(b"DKIM-Signature:")):
        checker = dkim.DKIM(raw)
        try:
            if checker.verify(idx=index, dnsfunc=net.zone.dkim_dnsfunc):
                selectors.append(checker.selector.decode())
        except dkim.DKIMException:
            pass
    return sorted(selectors)


def signed_selectors(raw: bytes) -> list[str]:
    """The s= of every DKIM signature of `raw`, verifying or not."""
    headers = BytesHeaderParser().parsebytes(raw).get_all("DKIM-Signature") or []
    return sorted(parse_tag_value("".join(str(h).split()).encode())[b"s"].decode() for h in headers)


def test_rotate_publish_activate_then_retire(net: Net) -> None:
    old = publish(net, ok(net, "domain", "dkim", "example.test"))
    assert sorted(old) == [f"ed{YEAR}a", f"rsa{YEAR}a"]
    before = submit(net)
    assert verified_selectors(before.content, net) == sorted(old)

    rotated = ok(net, "dkim", "rotate", "example.test")
    new = publish(net, rotated)
    assert sorted(new) == [f"ed{YEAR}b", f"rsa{YEAR}b"]
    assert f"tidings dkim activate example.test {' '.join(new)}" in rotated
    assert listing(net) == {**dict.fromkeys(old, "active"), **dict.fromkeys(new, "published")}

    ok(net, "dkim", "activate", "example.test", *new)
    assert listing(net) == {**dict.fromkeys(old, "published"), **dict.fromkeys(new, "active")}
    net.grid.kill("outbound")           # its key cache would keep the old keys up to 5 minutes
    net.grid.restart_edge("outbound")
    after = submit(net)
    assert signed_selectors(after.content) == sorted(new)
    assert verified_selectors(after.content, net) == sorted(new)
    assert verified_selectors(before.content, net) == sorted(old)      # the old records are still published
    assert verified_selectors(after.content.replace(b"whichever", b"whatever"), net) == []   # it can fail

    refused = tidings(net, "dkim", "retire", "example.test", new[0])
    assert refused.returncode == 1 and "FAILED_PRECONDITION" in refused.stderr and "activate another" in refused.stderr
    unknown = tidings(net, "dkim", "retire", "example.test", old[0], "nosuch")
    assert unknown.returncode == 1 and "no DKIM key with selector nosuch" in unknown.stderr
    assert tidings(net, "dkim", "activate", "example.test", "nosuch").returncode == 1
    unhosted = tidings(net, "dkim", "rotate", "nowhere.test")
    assert unhosted.returncode == 1 and "nowhere.test is not hosted" in unhosted.stderr
    assert listing(net) == {**dict.fromkeys(old, "published"), **dict.fromkeys(new, "active")}

    assert "remove the TXT record" in ok(net, "dkim", "retire", "example.test", *old)
    assert listing(net) == dict.fromkeys(new, "active")
    assert sorted(zone_records(ok(net, "domain", "dkim", "example.test"))) == sorted(
        f"{s}._domainkey.example.test." for s in new)


def test_rotate_one_algorithm_under_a_named_selector(net: Net) -> None:
    [selector] = publish(net, ok(net, "dkim", "rotate", "example.test", "--algorithm", "ed25519",
                                 "--selector", "brisbane"))
    assert selector == "brisbane" and listing(net)["brisbane"] == "published"
    two = tidings(net, "dkim", "rotate", "example.test", "--selector", "sydney")
    assert two.returncode == 1 and "say which algorithm" in two.stderr and "sydney" not in listing(net)
