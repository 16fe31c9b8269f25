"""IMAP reads against Dovecot: the same 1,000 messages in a Tidings local cluster and in a private
Dovecot (Debian's dovecot-imapd), the same imaplib client on one connection, the same run.

Dovecot: installed when missing as bench/ingest_vs_postfix.py installs the peer (its
``install_peer``), run as ``dovecot -c FILE -F`` with every path under one scratch directory in
/tmp (nothing in /etc/dovecot read or written), IMAP only, plaintext login, on 127.0.0.23; stopped
when the benchmark ends however it ends (SIGTERM too). Its messages go in with ``doveadm save``
(one call a message, into INBOX of a Maildir: the fair way, Dovecot writes its own index and
cache). No FTS plugin is configured: SEARCH TEXT/SUBJECT/FROM are Dovecot's own scan of the
mailbox (headers from its cache, bodies read from the Maildir files) — the plain install.

Tidings: tests/cluster/grid.py (3 storage nodes N=3 W=2, router, IMAP edge), the messages
delivered over gRPC (Mail.Deliver), 16 at a time.

Operations, each after one untimed warm-up call, REPEAT times: ``UID FETCH 1:* (ENVELOPE)``, mutt's
``UID FETCH 1:* (UID FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[HEADER.FIELDS (DATE FROM ...)])`` (and
the same in a new connection each call: LOGIN, EXAMINE, FETCH, LOGOUT: nothing a session holds),
``FETCH 1:* (FLAGS RFC822.SIZE INTERNALDATE)``, ``FETCH 1:100 (BODY.PEEK[])``, ``SEARCH TEXT w``,
``SEARCH SUBJECT w``, ``SEARCH FROM a``. p50/p99 of the wall time a call, and CPU ms a call of the
server processes from /proc/PID/stat over the repeats (Tidings: edge + router + storage nodes,
each shown; Dovecot: its master and every child, reaped ones included).
"""
from __future__ import annotations

import argparse
import imaplib
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench.ingest_vs_postfix import RCPT, install_peer, make_message, run_stopped_by_sigterm, vmail_user
from bench.mail_flow import cluster_cpu
from bench.outbound import tree_cpu
from bench.push_latency import pct
from tests.cluster.grid import PASSWORD, Grid
from tests.mailnet import port_free_on
from tidings.v1 import mail_pb2
from tidings_client import new_entry_id

HOST = "127.0.0.23"
# what mutt 2.2 asks for on opening a mailbox (imap/message.c, want_headers)
MUTT_HEADERS = ("(UID FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[HEADER.FIELDS (DATE FROM SENDER SUBJECT TO CC "
                "MESSAGE-ID REFERENCES CONTENT-TYPE CONTENT-DESCRIPTION IN-REPLY-TO REPLY-TO LINES LIST-POST X-LABEL)])")
PACKAGES = ("dovecot-core", "dovecot-imapd")
OPERATIONS: dict[str, tuple[str, ...]] = {
    "UID FETCH 1:* (ENVELOPE)": ("UID", "FETCH", "1:*", "(ENVELOPE)"),
    "UID FETCH 1:* (mutt's HEADER.FIELDS)": ("UID", "FETCH", "1:*", MUTT_HEADERS),
    # a client opening the mailbox afresh, as mutt without a header cache: nothing held by a session
    "new session: LOGIN, EXAMINE, mutt's FETCH": ("NEW", "FETCH", "1:*", MUTT_HEADERS),
    "FETCH 1:* (FLAGS RFC822.SIZE INTERNALDATE)": ("FETCH", "1:*", "(FLAGS RFC822.SIZE INTERNALDATE)"),
    "FETCH 1:100 (BODY.PEEK[])": ("FETCH", "1:100", "(BODY.PEEK[])"),
    "SEARCH TEXT zenith": ("SEARCH", "TEXT", "zenith"),
    "SEARCH SUBJECT meeting": ("SEARCH", "SUBJECT", "meeting"),
    "SEARCH FROM sender07": ("SEARCH", "FROM", "sender07"),
}

DOVECOT_CONF = """\
protocols = imap
listen = {host}
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
first_valid_uid = {uid}
mail_uid = vmail
mail_gid = vmail
mail_location = maildir:~/Maildir
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/users
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {root}/users
}}
namespace inbox {{
  inbox = yes
  separator = /
}}
service imap-login {{
  inet_listener imap {{
    address = {host}
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
"""


@dataclass
class Dovecot:
    root: Path
    port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def conf(self) -> Path:
        return self.root / "dovecot.conf"

    def start(self) -> None:
        vmail = vmail_user()
        for sub in ("run", "state", "mail"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o755)
        os.chown(self.root / "mail", vmail.pw_uid, vmail.pw_gid)
        users = self.root / "users"
        users.write_text(f"{RCPT}:{{PLAIN}}{PASSWORD}:{vmail.pw_uid}:{vmail.pw_gid}::{self.root}/mail::\n")
        shutil.chown(users, "root", "dovecot")
        users.chmod(0o640)
        self.conf.write_text(DOVECOT_CONF.format(root=self.root, uid=vmail.pw_uid, host=HOST, port=self.port))
        self.process = subprocess.Popen(["dovecot", "-c", str(self.conf), "-F"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while True:
            try:
                imaplib.IMAP4(HOST, self.port, timeout=5).logout()
                return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"dovecot did not start\n{self.log()}") from None
                time.sleep(0.1)

    def save(self, raw: bytes) -> None:
        done = subprocess.run(["doveadm", "-c", str(self.conf), "save", "-u", RCPT, "-m", "INBOX"], input=raw,
                              capture_output=True, timeout=60)
        if done.returncode != 0:
            raise RuntimeError(f"doveadm save exited {done.returncode}: {done.stderr.decode(errors='replace')}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def log(self) -> str:
        try:
            return "\n".join((self.root / "dovecot.log").read_text(errors="replace").splitlines()[-20:])
        except OSError:
            return "(no dovecot log)"


@contextmanager
def dovecot_running() -> Iterator[Dovecot]:
    root = Path(tempfile.mkdtemp(prefix="tidings-dovecot-"))
    server = Dovecot(root, port_free_on(HOST))
    try:
        server.start()
        yield server
    finally:
        try:
            server.stop()
        finally:
            shutil.rmtree(root, ignore_errors=True)


@dataclass
class Measured:
    seconds: list[float]
    cpu_ms: dict[str, float]  # a call, by process
    answer: str               # what the call returned, in short (hits, or bytes)


def measure(imap: imaplib.IMAP4, command: tuple[str, ...], repeat: int,
            cpu: Callable[[], dict[str, float]], connect: Callable[[], imaplib.IMAP4]) -> Measured:
    def call() -> str:
        if command[0] == "NEW":
            fresh = connect()
            fresh.login(RCPT, PASSWORD)
            fresh.select("INBOX", readonly=True)
            status, data = fresh.uid(*command[1:])
            fresh.logout()
        elif command[0] == "UID":
            status, data = imap.uid(*command[1:])
        elif command[0] == "FETCH":
            status, data = imap.fetch(*command[1:])
        else:
            status, data = imap.search(None, *command[1:])
        if status != "OK":
            raise RuntimeError(f"{' '.join(command)}: {status} {data}")
        if command[0] == "SEARCH":
            return f"{len((data[0] or b'').split())} hits"
        return f"{sum(len(p[1]) if isinstance(p, tuple) else len(p or b'') for p in data)} B"

    answer = call()  # warm-up
    times: list[float] = []
    before = cpu()
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    after = cpu()
    return Measured(times, {k: (after[k] - before.get(k, 0.0)) / repeat * 1000 for k in after}, answer)


def run(imap: imaplib.IMAP4, repeat: int, cpu: Callable[[], dict[str, float]],
        connect: Callable[[], imaplib.IMAP4]) -> dict[str, Measured]:
    status, data = imap.select("INBOX", readonly=True)
    if status != "OK":
        raise RuntimeError(f"SELECT INBOX: {data}")
    return {name: measure(imap, command, repeat, cpu, connect) for name, command in OPERATIONS.items()}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=20, help="timed calls an operation")
    args = parser.parse_args(argv)
    run_stopped_by_sigterm(_run, args)


def _run(args: argparse.Namespace) -> None:
    messages = [make_message(i)[1] for i in range(args.messages)]
    print(f"load average at the start: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")
    print(f"IMAP vs Dovecot: {len(messages)} messages (bench.ingest_vs_postfix's), one imaplib connection, "
          f"{args.repeat} calls an operation after one warm-up", flush=True)
    results: dict[str, dict[str, Measured]] = {}
    why_not = install_peer(PACKAGES)
    if why_not is None:
        try:
            with dovecot_running() as dovecot:
                started = time.monotonic()
                for raw in messages:
                    dovecot.save(raw)
                print(f"dovecot: {len(messages)} messages saved with doveadm save in "
                      f"{time.monotonic() - started:.1f} s; no FTS plugin", flush=True)
                port = dovecot.port
                imap = imaplib.IMAP4(HOST, port, timeout=300)
                imap.login(RCPT, PASSWORD)
                assert dovecot.process is not None
                pid = dovecot.process.pid
                results["dovecot"] = run(imap, args.repeat, lambda: {"dovecot (all processes)": tree_cpu([pid])},
                                         lambda: imaplib.IMAP4(HOST, port, timeout=300))
                imap.logout()
        except (RuntimeError, OSError, subprocess.SubprocessError) as e:
            why_not = f"dovecot failed: {e}"
    if why_not is not None:
        print(f"dovecot skipped: {why_not}", flush=True)
    with tempfile.TemporaryDirectory() as d:
        grid = Grid(Path(d), edges=("imap",), virus_scan=False).start()
        try:
            grid.add_user(RCPT)

            def deliver(raw: bytes) -> None:
                grid.mail.Deliver(mail_pb2.DeliverRequest(entry_id=new_entry_id(), raw=raw, recipients=[RCPT]),
                                  timeout=120)

            started = time.monotonic()
            with ThreadPoolExecutor(16) as pool:
                list(pool.map(deliver, messages))
            print(f"tidings: {len(messages)} messages delivered over gRPC in {time.monotonic() - started:.1f} s",
                  flush=True)
            imap = imaplib.IMAP4(grid.host, grid.imap_port, timeout=300)
            imap.login(RCPT, PASSWORD)

            def cpu() -> dict[str, float]:
                found = cluster_cpu(grid)
                found.pop("bench client", None)
                return found

            results["tidings"] = run(imap, args.repeat, cpu,
                                     lambda: imaplib.IMAP4(grid.host, grid.imap_port, timeout=300))
            imap.logout()
        finally:
            grid.stop()
    report(results)
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def report(results: dict[str, dict[str, Measured]]) -> None:
    print(f"{'operation':>44} {'server':>8} {'p50 ms':>8} {'p99 ms':>8} {'CPU ms':>8}  answer")
    for name in OPERATIONS:
        for system, measured in results.items():
            m = measured[name]
            print(f"{name:>44} {system:>8} {pct(m.seconds, 50):>8.1f} {pct(m.seconds, 99):>8.1f} "
                  f"{sum(m.cpu_ms.values()):>8.1f}  {m.answer}")
        if "tidings" in results:
            by = results["tidings"][name].cpu_ms
            print(f"{'':>44} tidings CPU ms by process: " + ", ".join(
                f"{k} {v:.1f}" for k, v in sorted(by.items()) if re.match(r"imap|router|storage", k)))
        if len(results) == 2:
            ours, theirs = results["tidings"][name], results["dovecot"][name]
            theirs_cpu = sum(theirs.cpu_ms.values())
            # /proc counts in clock ticks (10 ms): a call cheaper than a tick over the repeats reads 0
            cpu_ratio = f"{sum(ours.cpu_ms.values()) / theirs_cpu:.2f}x" if theirs_cpu > 0 else "n/a (peer under a tick)"
            print(f"{'':>44} tidings/dovecot: p50 {pct(ours.seconds, 50) / pct(theirs.seconds, 50):.2f}x, "
                  f"p99 {pct(ours.seconds, 99) / pct(theirs.seconds, 99):.2f}x, CPU {cpu_ratio}")


if __name__ == "__main__":
    main()
