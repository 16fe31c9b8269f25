"""Outbound: how fast queued mail reaches the far end, Tidings against Postfix in one run.

The far end is one aiosmtpd sink on 127.0.0.20 (a process of its own, so its CPU is not the
driver's) that counts the messages it accepts. Both systems get the same N messages
(from alice@example.test to rcpt@sink.test) and hand them to that sink:

- Tidings: a local cluster (3 storage nodes, router, the delivery worker with its defaults
  and `--relayhost` the sink); each message is `Mail.Deliver` from the sending user alice,
  16 calls at a time (the HTTP edge's send without its HTTP), so it is durable in the
  outgoing queue on W=2 replicas and in alice's Sent folder before the call returns; the
  worker leases it, DKIM-signs it (Ed25519 and RSA 2048) and delivers it.
- Postfix 3.7 (Debian's, a private instance on 127.0.0.21, `relayhost = [127.0.0.20]:PORT`,
  its defaults otherwise): the messages injected over SMTP on 8 connections.

Timed from the first submit to the sink holding all N. CPU seconds per message are the
systems' processes' (and their reaped children's) utime + stime from /proc/PID/stat over
the same interval; the driver and the sink are not counted. Each side gets a warm-up of 20
messages first. `--messages 200` is the quick mode.
"""
from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import smtplib
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from email.policy import SMTP as SMTP_POLICY
from multiprocessing.sharedctypes import Synchronized
from pathlib import Path
from typing import Any

import grpc

from tests.cluster.grid import Grid
from tests.interop import mta
from tests.mailnet import port_free_on
from tidings.v1 import mail_pb2, mail_pb2_grpc
from tidings_runtime.ids import new_entry_id

SINK_HOST, POSTFIX_HOST = "127.0.0.20", "127.0.0.21"
SENDER, RECIPIENT = "alice@example.test", "rcpt@sink.test"
WARM_UP = 20
DELIVER_CONCURRENCY = 16
SMTP_CONNECTIONS = 8
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# --- the sink: a process of its own, counting ----------------------------------------------------

class _Counting:
    """aiosmtpd handler: accepts everything, counts messages and repeated Message-IDs."""

    def __init__(self, count: Synchronized[int], repeats: Synchronized[int]) -> None:
        self.count, self.repeats = count, repeats
        self.seen: set[str] = set()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message_id = str(BytesHeaderParser().parsebytes(envelope.content)["Message-ID"] or "")
        with self.count.get_lock():
            self.count.value += 1
        if message_id in self.seen:
            with self.repeats.get_lock():
                self.repeats.value += 1
        self.seen.add(message_id)
        return "250 2.0.0 Ok: queued"


def _run_sink(port: int, count: Synchronized[int], repeats: Synchronized[int], ready: Any) -> None:
    from aiosmtpd.smtp import SMTP

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        handler = _Counting(count, repeats)
        server = await loop.create_server(lambda: SMTP(handler, hostname="mx.sink.test", decode_data=False,
                                                       enable_SMTPUTF8=True, loop=loop), SINK_HOST, port)
        ready.set()
        async with server:
            await server.serve_forever()

    asyncio.run(serve())


class Sink:
    def __init__(self, port: int) -> None:
        context = multiprocessing.get_context("spawn")
        self.port = port
        self._count: Synchronized[int] = context.Value("q", 0)
        self._repeats: Synchronized[int] = context.Value("q", 0)
        ready = context.Event()
        self.process = context.Process(target=_run_sink, args=(port, self._count, self._repeats, ready),
                                       name="sink", daemon=True)
        self.process.start()
        if not ready.wait(30):
            raise RuntimeError("the sink did not start")

    @property
    def count(self) -> int:
        return int(self._count.value)

    @property
    def repeats(self) -> int:
        return int(self._repeats.value)

    def wait_for(self, total: int, timeout: float, progress: Callable[[], str]) -> float:
        """Seconds (perf_counter) when the sink holds `total` messages."""
        deadline = time.monotonic() + timeout
        while self.count < total:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the sink has {self.count} of {total} after {timeout:.0f} s\n{progress()}")
            time.sleep(0.005)
        return time.perf_counter()

    def stop(self) -> None:
        self.process.terminate()
        self.process.join(10)


# --- CPU from /proc -------------------------------------------------------------------------------

def _stat(pid: int) -> tuple[int, float]:
    """(parent pid, CPU seconds of the process and its reaped children)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # after the command: state ppid ... utime(14) stime(15) cutime(16) cstime(17), numbered from 1
    return int(fields[1]), sum(int(x) for x in fields[11:15]) / CLOCK_TICKS


def tree_cpu(roots: Iterable[int]) -> float:
    """CPU seconds of `roots` and every live descendant (a child that exits moves its CPU to its
    parent's cutime/cstime when reaped, so the sum is steady across exits)."""
    parents: dict[int, tuple[int, float]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                parents[int(entry)] = _stat(int(entry))
            except (OSError, ValueError, IndexError):
                continue
    wanted = set(roots)
    grew = True
    while grew:
        more = {pid for pid, (ppid, _) in parents.items() if ppid in wanted} - wanted
        grew = bool(more)
        wanted |= more
    return sum(parents[pid][1] for pid in wanted if pid in parents)


# --- messages -------------------------------------------------------------------------------------

def make_message(i: int, size: int, tag: str) -> bytes:
    m = EmailMessage()
    m["From"], m["To"] = SENDER, RECIPIENT
    m["Subject"] = f"outbound benchmark {tag} {i}"
    m["Message-ID"] = f"<outbound-{tag}-{i}@example.test>"
    words = ("quarterly budget review meeting notes attached please find the latest numbers "
             "from our team and let me know what you think about the plan ").split()
    m.set_content(textwrap.fill(" ".join(words[(i + k) % len(words)] for k in range(size // 6)), 72))
    return m.as_bytes(policy=SMTP_POLICY)


@dataclass
class Result:
    name: str
    messages: int
    accepted_s: float
    delivered_s: float
    cpu_s: float
    parts: dict[str, float]  # CPU seconds by process
    at_accepted: int  # delivered when the last submit was answered

    @property
    def rate(self) -> float:
        return self.messages / self.delivered_s

    @property
    def cpu_ms(self) -> float:
        return self.cpu_s / self.messages * 1000


# --- Tidings --------------------------------------------------------------------------------------

async def _deliver_all(address: str, user_id: str, messages: list[bytes]) -> None:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = mail_pb2_grpc.MailStub(channel)
        todo = iter(messages)

        async def one_at_a_time() -> None:
            for raw in todo:
                await stub.Deliver(mail_pb2.DeliverRequest(entry_id=new_entry_id(), raw=raw, recipients=[RECIPIENT],
                                                           sender_user_id=user_id, mail_from=SENDER), timeout=60)

        await asyncio.gather(*(one_at_a_time() for _ in range(DELIVER_CONCURRENCY)))


def run_tidings(base: Path, sink: Sink, messages: list[bytes], size: int, timeout: float) -> Result:
    worker = ("--relayhost", f"{SINK_HOST}:{sink.port}")
    grid = Grid(base, edges=("outbound",), args={"outbound": worker}).start()
    try:
        user_id = grid.add_user(SENDER).user_id
        pids = {p.name: p.popen.pid for p in grid.cluster.processes.values() if p.popen is not None and p.running}
        first = sink.count
        asyncio.run(_deliver_all(grid.router_address, user_id, [make_message(i, size, "t-warm")
                                                                 for i in range(WARM_UP)]))
        sink.wait_for(first + WARM_UP, timeout, grid.logs)
        first = sink.count
        cpu = {name: tree_cpu([pid]) for name, pid in pids.items()}
        start = time.perf_counter()
        asyncio.run(_deliver_all(grid.router_address, user_id, messages))
        accepted, at_accepted = time.perf_counter(), sink.count - first
        done = sink.wait_for(first + len(messages), timeout, grid.logs)
        parts = {name: tree_cpu([pid]) - cpu[name] for name, pid in pids.items()}
        return Result("Tidings", len(messages), accepted - start, done - start, sum(parts.values()), parts,
                      at_accepted)
    finally:
        grid.stop()


# --- Postfix --------------------------------------------------------------------------------------

def _inject(port: int, messages: list[bytes]) -> None:
    chunks = [messages[c::SMTP_CONNECTIONS] for c in range(SMTP_CONNECTIONS)]
    failures: list[BaseException] = []

    def send(chunk: list[bytes]) -> None:
        try:
            with smtplib.SMTP(POSTFIX_HOST, port, timeout=60) as client:
                for raw in chunk:
                    client.sendmail(SENDER, [RECIPIENT], raw)
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    threads = [threading.Thread(target=send, args=(c,)) for c in chunks if c]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:
        raise failures[0]


def run_postfix(sink: Sink, messages: list[bytes], size: int, timeout: float) -> Result:
    port = port_free_on(POSTFIX_HOST)
    relay = {"relayhost": f"[{SINK_HOST}]:{sink.port}"}
    with mta.running(POSTFIX_HOST, port, hostname="mx.bench.test", settings=relay) as postfix:
        def logs() -> str:
            return postfix.log_tail()

        first = sink.count
        _inject(port, [make_message(i, size, "p-warm") for i in range(WARM_UP)])
        sink.wait_for(first + WARM_UP, timeout, logs)
        first = sink.count
        master = postfix.master_pid()
        assert master is not None
        cpu = tree_cpu([master])
        start = time.perf_counter()
        _inject(port, messages)
        accepted, at_accepted = time.perf_counter(), sink.count - first
        done = sink.wait_for(first + len(messages), timeout, logs)
        used = tree_cpu([master]) - cpu
        return Result("Postfix", len(messages), accepted - start, done - start, used, {"master and daemons": used},
                      at_accepted)


# --- main -----------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--size", type=int, default=4000, help="approximate body bytes")
    parser.add_argument("--timeout", type=float, default=0, help="seconds to wait for the sink (0: from N)")
    parser.add_argument("--no-postfix", action="store_true", help="Tidings only")
    args = parser.parse_args(argv)
    timeout = args.timeout or max(120.0, args.messages / 5)
    why_not = None if not args.no_postfix else "--no-postfix"
    why_not = why_not or mta.unavailable()
    sink = Sink(port_free_on(SINK_HOST))
    results: list[Result] = []
    try:
        with tempfile.TemporaryDirectory() as d:
            tidings_messages = [make_message(i, args.size, "t") for i in range(args.messages)]
            results.append(run_tidings(Path(d), sink, tidings_messages, args.size, timeout))
        if why_not is None:
            postfix_messages = [make_message(i, args.size, "p") for i in range(args.messages)]
            results.append(run_postfix(sink, postfix_messages, args.size, timeout))
        repeats = sink.repeats
    finally:
        sink.stop()
    print(f"outbound: {args.messages} messages of ~{args.size} B, first submit to all at the sink "
          f"({SINK_HOST}, aiosmtpd)")
    print(f"{'system':>8} {'accepted s':>11} {'at the sink then':>17} {'delivered s':>12} {'msg/s':>8} "
          f"{'tail msg/s':>11} {'CPU ms/msg':>11}")
    for r in results:
        tail = (r.messages - r.at_accepted) / max(r.delivered_s - r.accepted_s, 1e-9)
        print(f"{r.name:>8} {r.accepted_s:>11.2f} {r.at_accepted:>17} {r.delivered_s:>12.2f} {r.rate:>8.0f} "
              f"{tail:>11.0f} {r.cpu_ms:>11.2f}")
    for r in results:
        print(f"{r.name} CPU ms/msg by process: "
              + ", ".join(f"{name} {used / r.messages * 1000:.2f}" for name, used in sorted(r.parts.items())))
    if len(results) == 2:
        ours, theirs = results
        print(f"Tidings/Postfix: rate {ours.rate / theirs.rate:.2f}x, CPU per message {ours.cpu_ms / theirs.cpu_ms:.2f}x")
    else:
        print(f"Postfix not run: {why_not}")
    print(f"repeated Message-IDs at the sink: {repeats}; tail msg/s: delivered after the last submit was answered")
    print("Tidings: Mail.Deliver 16 at a time (quorum-durable queue item and Sent copy, indexed), worker defaults, "
          "DKIM Ed25519 + RSA; CPU of 3 storage nodes, router, worker. Postfix: SMTP on 8 connections, defaults, "
          "no signing; CPU of master and its daemons.")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
