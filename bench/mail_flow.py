"""Mail flow: messages accepted per second over SMTP by a real local cluster (3 storage
nodes, router, SMTP edge; each 250 means durable on 2 of 3 replicas, WAL synced, and
searchable), on 1 and 8 connections.

Baseline in the same run: raw rocksdict, one synced 4 KB put at a time, the floor a
naive store-per-message design would hit on this disk. Postfix + Dovecot figures for
this machine are in ../shared/MEASURED.md (185 msg/s on 1 connection, 316 on 8;
searchable only at 60-66 msg/s).
"""
from __future__ import annotations

import argparse
import os
import smtplib
import statistics
import tempfile
import textwrap
import threading
import time
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

from rocksdict import Options, Rdict, WriteOptions

from tests.cluster.grid import Grid
from tidings_cli.cluster import HOST

RECIPIENT = "bench@example.test"


def make_message(i: int, size: int) -> bytes:
    m = EmailMessage()
    m["From"] = f"sender{i % 50}@outside.test"
    m["To"] = RECIPIENT
    m["Subject"] = f"benchmark message {i}"
    m["Message-ID"] = f"<bench-{i}@outside.test>"
    words = ("quarterly budget review meeting notes attached please find the latest numbers "
             "from our team and let me know what you think about the plan ").split()
    m.set_content(textwrap.fill(" ".join(words[(i + k) % len(words)] for k in range(size // 6)), 72))
    return m.as_bytes(policy=SMTP)


def smtp_rate(port: int, messages: list[bytes], connections: int) -> tuple[float, list[float]]:
    latencies: list[float] = []
    lock = threading.Lock()
    chunks = [messages[c::connections] for c in range(connections)]

    def worker(chunk: list[bytes]) -> None:
        with smtplib.SMTP(HOST, port, timeout=60) as client:
            for raw in chunk:
                t = time.perf_counter()
                client.sendmail("s@outside.test", [RECIPIENT], raw)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--size", type=int, default=4000, help="approximate body bytes")
    args = parser.parse_args()
    messages = [make_message(i, args.size) for i in range(args.messages)]
    baseline = raw_synced_puts(2000, args.size)
    with tempfile.TemporaryDirectory() as d:
        grid = Grid(Path(d), edges=("smtp",)).start()
        try:
            grid.add_user(RECIPIENT)
            smtp_rate(grid.smtp_port, messages[:50], 1)  # warm-up
            print(f"mail flow: {args.messages} messages of ~{args.size} B, N=3 W=2, synced WAL, indexed")
            print(f"{'connections':>12} {'msg/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'vs raw synced put':>18}")
            for connections in (1, 8):
                rate, lat = smtp_rate(grid.smtp_port, messages, connections)
                print(f"{connections:>12} {rate:>8.0f} {pct(lat, 50):>8.1f} {pct(lat, 99):>8.1f} {rate / baseline:>17.2f}x")
        finally:
            grid.stop()
    print(f"baseline: raw rocksdict synced single put of {args.size} B: {baseline:.0f}/s (same run)")


if __name__ == "__main__":
    main()
