"""Mail flow: messages accepted per second over SMTP by a real local cluster (3 storage
nodes, router, SMTP edge; each 250 means durable on 2 of 3 replicas, WAL synced, and
searchable), on 1 and 8 connections, with the SMTP edge's inbound checks on and off.

Checks on: sender authentication against a loopback DNS server (tests/mailnet.py) serving the
senders' SPF, DKIM key and DMARC p=reject (every message is DKIM-signed with dkimpy, so SPF,
DKIM and DMARC pass), and clamd scanning (its test signatures). Checks off: `--no-auth-checks`,
`--virus-scan off` (TIDINGS_VIRUS_SCAN=off). The same messages both ways, to one recipient per
mode; the edge is restarted between modes. CPU per message from /proc/PID/stat (utime + stime)
of every process of the cluster, clamd's reported apart.

Baseline in the same run: raw rocksdict, one synced 4 KB put at a time, the floor a
naive store-per-message design would hit on this disk. Postfix + Dovecot figures for
this machine are in ../shared/MEASURED.md (185 msg/s on 1 connection, 316 on 8;
searchable only at 60-66 msg/s).
"""
from __future__ import annotations

import argparse
import base64
import os
import smtplib
import statistics
import tempfile
import textwrap
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Sequence
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

import dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from prometheus_client.parser import text_string_to_metric_families
from rocksdict import Options, Rdict, WriteOptions

from tests.cluster.grid import Grid
from tests.mailnet import Zone, serving
from tidings.v1 import mail_pb2
from tidings_cli.cluster import HOST, SCANNER

RECIPIENT = "bench@example.test"
SENDER_DOMAIN = "outside.test"
SELECTOR = b"bench"
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
KEY_PEM = KEY.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
MODES = {  # the SMTP edge's flags; "on" also gets --dns
    "on": (),
    "off": ("--no-auth-checks", "--virus-scan", "off"),
}
TICK = os.sysconf("SC_CLK_TCK")


def make_message(i: int, size: int) -> bytes:
    m = EmailMessage()
    m["From"] = f"sender{i % 50}@outside.test"
    m["To"] = RECIPIENT
    m["Subject"] = f"benchmark message {i}"
    m["Message-ID"] = f"<bench-{i}@outside.test>"
    words = ("quarterly budget review meeting notes attached please find the latest numbers "
             "from our team and let me know what you think about the plan ").split()
    m.set_content(textwrap.fill(" ".join(words[(i + k) % len(words)] for k in range(size // 6)), 72))
    raw = m.as_bytes(policy=SMTP)
    return dkim.sign(raw, SELECTOR, SENDER_DOMAIN.encode(), KEY_PEM,
                     include_headers=[b"from", b"to", b"subject", b"message-id"]) + raw


def sender_zone() -> Zone:
    """The senders' DNS: SPF for loopback, the DKIM key, DMARC p=reject (so a failure would show)."""
    zone = Zone()
    zone.spf(SENDER_DOMAIN, "v=spf1 ip4:127.0.0.0/8 -all")
    zone.dmarc(SENDER_DOMAIN, "v=DMARC1; p=reject")
    public = KEY.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    zone.txt(f"{SELECTOR.decode()}._domainkey.{SENDER_DOMAIN}", "v=DKIM1; k=rsa; p=" + base64.b64encode(public).decode())
    return zone


def cpu_seconds(pid: int) -> float:
    """utime + stime of process ``pid`` (all its threads), from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def cluster_cpu(grid: Grid) -> dict[str, float]:
    """CPU seconds so far of every running process of the cluster, by name, and of this process."""
    found = {name: cpu_seconds(process.popen.pid) for name, process in grid.cluster.processes.items()
             if process.popen is not None and process.running}
    times = os.times()
    found["bench client"] = times.user + times.system
    return found


def storage_calls(grid: Grid) -> Counter[str]:
    """Calls served so far by the cluster's storage nodes, by method, all nodes added up (their
    `tidings_storage_calls_total`; "(batches)" counts the coalesced batches (Batch RPCs and
    requests on Batches streams) that carried "(calls in batches)" of them, "(synced writes)"
    the write batches group commit synced)."""
    calls: Counter[str] = Counter()
    for name, port in grid.cluster.layout.metrics_ports.items():
        if not name.startswith("storage-") or not port:
            continue
        with urllib.request.urlopen(f"http://{grid.cluster.layout.host}:{port}/metrics", timeout=10) as answer:
            for family in text_string_to_metric_families(answer.read().decode()):
                for sample in family.samples:
                    if sample.name == "tidings_storage_calls_total":
                        calls[sample.labels["method"]] += int(sample.value)
                    elif sample.name == "tidings_storage_batches_total":
                        calls["(batches)"] += int(sample.value)
                    elif sample.name == "tidings_storage_batched_calls_total":
                        calls["(calls in batches)"] += int(sample.value)
                    elif sample.name == "tidings_storage_commit_group_size_count":
                        calls["(synced writes)"] += int(sample.value)
    return calls


def smtp_rate(port: int, messages: list[bytes], connections: int,
              recipient: str = RECIPIENT) -> tuple[float, list[float]]:
    latencies: list[float] = []
    lock = threading.Lock()
    chunks = [messages[c::connections] for c in range(connections)]

    def worker(chunk: list[bytes]) -> None:
        with smtplib.SMTP(HOST, port, timeout=60) as client:
            for raw in chunk:
                t = time.perf_counter()
                client.sendmail(f"s@{SENDER_DOMAIN}", [recipient], raw)
                with lock:
                    latencies.append(time.perf_counter() - t)

    threads = [threading.Thread(target=worker, args=(c,)) for c in chunks]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return len(messages) / (time.perf_counter() - start), latencies


def raw_synced_puts(count: int, size: int) -> float:
    with tempfile.TemporaryDirectory() as d:
        options = Options(raw_mode=True)
        options.create_if_missing(True)
        db = Rdict(os.path.join(d, "db"), options)
        wo = WriteOptions()
        wo.sync = True
        value = os.urandom(size)
        start = time.perf_counter()
        for i in range(count):
            db.put(i.to_bytes(8, "big"), value, wo)
        rate = count / (time.perf_counter() - start)
        db.close()
        return rate


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] * 1000 if len(values) > 1 else 0.0


def start_edge(grid: Grid, flags: tuple[str, ...]) -> None:
    """(Re)start the cluster's SMTP edge with ``flags``."""
    cluster = grid.cluster
    if "smtp" in cluster.processes:
        cluster.processes["smtp"].stop()
    cluster.args["smtp"] = flags
    cluster.start_edges(("smtp",))


def check_authenticated(grid: Grid, user_id: str) -> str:
    """The Authentication-Results our edge put on the newest message of ``user_id``'s Inbox."""
    page = grid.mail.ListMessages(mail_pb2.ListMessagesRequest(user_id=user_id, folder_id="inbox", limit=1), timeout=10)
    raw = grid.mail.GetRawMessage(mail_pb2.MessageRef(user_id=user_id, id=page.messages[0].id), timeout=10).raw
    found = [line for line in raw.decode(errors="replace").split("\r\n\r\n")[0].replace("\r\n\t", " ").split("\r\n")
             if line.startswith("Authentication-Results:")]
    return " ".join(found[0].split()) if found else ""


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--size", type=int, default=4000, help="approximate body bytes")
    parser.add_argument("--connections", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--warm-up", type=int, default=50, help="messages sent first in each mode, not timed")
    parser.add_argument("--modes", nargs="+", choices=list(MODES), default=list(MODES),
                        help="inbound checks on, off or both (the comparison needs both)")
    args = parser.parse_args(argv)
    messages = [make_message(i, args.size) for i in range(args.messages)]
    baseline = raw_synced_puts(2000, args.size)
    results: dict[tuple[str, int], tuple[float, list[float], dict[str, float]]] = {}
    calls: dict[tuple[str, int], dict[str, float]] = {}
    zone = sender_zone()
    with tempfile.TemporaryDirectory() as d, serving(zone):
        grid = Grid(Path(d), edges=("smtp",), args={"smtp": ("--dns", zone.address)}, virus_scan=True).start()
        try:
            print(f"mail flow: {args.messages} messages of ~{args.size} B (DKIM-signed), N=3 W=2, synced WAL, indexed")
            for mode, flags in ((m, MODES[m]) for m in args.modes):
                recipient = f"bench-checks-{mode}@example.test"
                user_id = grid.add_user(recipient).user_id
                start_edge(grid, (*flags, "--dns", zone.address) if mode == "on" else flags)
                smtp_rate(grid.smtp_port, messages[:args.warm_up], 1, recipient)
                if mode == "on":
                    results_line = check_authenticated(grid, user_id)
                    assert "spf=pass" in results_line and "dkim=pass" in results_line and "dmarc=pass" in results_line, \
                        results_line
                    print(f"checks on, as stored: {results_line}")
                for connections in args.connections:
                    before, calls_before = cluster_cpu(grid), storage_calls(grid)
                    rate, lat = smtp_rate(grid.smtp_port, messages, connections, recipient)
                    after, calls_after = cluster_cpu(grid), storage_calls(grid)
                    cpu = {name: (after[name] - before.get(name, 0.0)) / len(messages) * 1000 for name in after}
                    results[mode, connections] = rate, lat, cpu
                    calls[mode, connections] = {m: (n - calls_before[m]) / len(messages)
                                                for m, n in calls_after.items() if n > calls_before[m]}
        finally:
            grid.stop()
    print(f"{'checks':>7} {'conns':>5} {'msg/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'CPU ms/msg':>11} "
          f"{'edge':>6} {'clamd':>6} {'router':>7} {'storage':>8} {'client':>7} {'vs raw put':>11}")
    for (mode, connections), (rate, lat, cpu) in results.items():
        storage = sum(value for name, value in cpu.items() if name.startswith("storage-"))
        cluster = sum(value for name, value in cpu.items() if name != "bench client")
        print(f"{mode:>7} {connections:>5} {rate:>7.0f} {pct(lat, 50):>7.1f} {pct(lat, 99):>7.1f} {cluster:>11.2f} "
              f"{cpu.get('smtp', 0):>6.2f} {cpu.get(SCANNER, 0):>6.2f} {cpu.get('router', 0):>7.2f} {storage:>8.2f} "
              f"{cpu.get('bench client', 0):>7.2f} {rate / baseline:>10.2f}x")
    for (mode, connections), (_, _, cpu) in results.items():
        print(f"CPU ms/msg by process, checks {mode}, {connections} connection(s): " +
              ", ".join(f"{name} {value:.2f}" for name, value in sorted(cpu.items())))
    for (mode, connections), served in calls.items():
        total = sum(v for m, v in served.items() if not m.startswith("("))
        sent = total - served.get("(calls in batches)", 0.0) + served.get("(batches)", 0.0)
        print(f"storage calls a message (3 nodes), checks {mode}, {connections} connection(s): "
              f"{total:.2f} in {sent:.2f} RPCs or batches: " +
              ", ".join(f"{m} {v:.2f}" for m, v in sorted(served.items(), key=lambda kv: -kv[1])))
    for connections in args.connections if len(args.modes) == len(MODES) else ():
        (on_rate, _, on_cpu), (off_rate, _, off_cpu) = results["on", connections], results["off", connections]
        added = {name: on_cpu.get(name, 0.0) - off_cpu.get(name, 0.0) for name in ("smtp", SCANNER)}
        wall = (1 / on_rate - 1 / off_rate) * 1000
        total = sum(v for k, v in on_cpu.items() if k != "bench client") - \
            sum(v for k, v in off_cpu.items() if k != "bench client")
        print(f"checks cost, {connections} connection(s): {wall:+.2f} ms wall a message ({on_rate / off_rate:.2f}x the rate), "
              f"{total:+.2f} ms CPU a message: edge {added['smtp']:+.2f}, clamd {added[SCANNER]:+.2f}")
    print(f"baseline: raw rocksdict synced single put of {args.size} B: {baseline:.0f}/s (same run)")


if __name__ == "__main__":
    main()
