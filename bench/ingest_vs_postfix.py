"""Ingest against the peer: Tidings and Postfix → LMTP → Dovecot + fts-xapian, same messages,
same client, same run (issue 19's goal: >= the peer's accept rate and >= 5x its searchable rate).

The peer is set up as ../shared/peer/ does it (setup.sh, conf/), but as a private instance that
touches neither /etc/postfix nor /etc/dovecot: Debian's postfix, dovecot-core, dovecot-lmtpd and
dovecot-fts-xapian, installed when missing the way the Makefile's `postfix` target installs a
Debian package (as root, non-interactive, no service started: policy-rc.d), the `vmail` user
setup.sh creates, then `postfix -c DIR` (tests/interop/mta.py, with the peer's main.cf: one
virtual mailbox carol@example.test, `virtual_transport = lmtp:unix:private/dovecot-lmtp`) and
`dovecot -c FILE -F` (the peer's dovecot.conf: Maildir, `fts = xapian`, `fts_autoindex = yes`,
`fts_enforced = yes`), everything under one scratch directory in /tmp, bound to 127.0.0.22 only.
Both are stopped when the benchmark ends, however it ends (SIGTERM too; SIGKILL aside). When a
package is missing and cannot be installed, the peer is skipped with the reason (Tidings still runs).

Messages: the peer's generator (../shared/peer/load.py `make_message`, copied here: seeded, 3-8 KB,
one mailbox, each body starting "peerbench message I"). Client: load.py's, on 8 connections (one
smtplib session each, messages dealt round robin, a barrier before the first); accepted msg/s is
accepted / (last 250 - first send), as load.py computes it.

Searchable: the peer's time from the first send until `doveadm fts lookup ... body peerbench` (the
index alone: it indexes nothing itself) counts every message, as load.py measures it, polled every
0.5 s once the Maildir holds them all; then one `doveadm search` must find the last message. Tidings:
each 250 is already searchable, so its searchable rate is its accept rate; checked, not assumed:
every 100th message is searched for (its phrase "peerbench message I") right after its 250, on the
connection's thread, and after the run the marker must count every message.

Tidings: a local cluster (tests/cluster/grid.py: 3 storage nodes N=3 W=2, router, SMTP edge), the
inbound checks "off" (`--no-auth-checks --virus-scan off`, bench/mail_flow.py's off mode) and "on"
(SPF against a loopback DNS server serving peer.test's record, DKIM/DMARC looked up, clamd
scanning), one fresh mailbox per mode. CPU ms per message per process from /proc (bench.mail_flow's
`cluster_cpu`) over the timed send; the peer's CPU (Postfix master, Dovecot master and all their
children, reaped ones included) from the first send until searchable. A warm-up of 20 messages
(numbered after the timed ones) goes to each side first, untimed.
"""
from __future__ import annotations

import argparse
import grp
import os
import pwd
import random
import re
import shutil
import signal
import smtplib
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from types import FrameType

from bench.mail_flow import cluster_cpu, start_edge
from bench.outbound import tree_cpu
from tests.cluster.grid import Grid
from tests.interop import mta
from tests.mailnet import Zone, port_free_on, serving
from tidings.v1 import mail_pb2
from tidings_cli.cluster import SCANNER

CONNECTIONS = 8
WARM_UP = 20
CHECK_EVERY = 100  # Tidings: every 100th message is searched for right after its 250
PEER_HOST = "127.0.0.22"
PEER_PACKAGES = ("postfix", "dovecot-core", "dovecot-lmtpd", "dovecot-fts-xapian")
MODES = {"off": ("--no-auth-checks", "--virus-scan", "off"), "on": ()}  # "on" also gets --dns
POLL_S = 0.5

# --- the peer's messages (../shared/peer/load.py, unchanged) ------------------------------------

RCPT = "carol@example.test"
MARKER = "peerbench"
N_SENDERS = 50
SEED = 20240101
VOCAB = list(dict.fromkeys("""
alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar papa
quebec romeo sierra tango uniform victor whiskey xray yankee zulu account action answer apple
arrive autumn balance banana basket battery beacon beauty bicycle blanket border bottle branch
bridge budget butter cabinet camera canvas carbon carpet castle cattle ceiling cellar century
chapter cherry chimney circle climate clover coffee collar comfort compass copper cotton country
cradle crystal current curtain cushion custom dancer danger debate decade desert diamond dinner
doctor dollar donkey dragon drawer driver eagle editor effort elbow element empire engine entry
evening export fabric factor falcon family farmer feather fiction figure finger forest fortune
fossil fountain frame galaxy garden garlic gentle giant ginger glacier glove golden gossip govern
granite gravel guitar hammer harbor harvest helmet hermit highway hollow honey horizon hunter
island ivory jacket jaguar jelly jewel journal jungle kettle kidney kingdom kitchen ladder lantern
laptop launch leather lemon letter library lizard lobster locket lumber magnet mammal mango marble
market meadow medal melody mirror monkey morning mosaic mountain muffin museum napkin nectar needle
network nickel noodle number object ocean office olive onion orange orbit orchard oyster paddle
palace panel parrot pastry pebble pencil pepper pillow pirate planet pocket poetry potato powder
prairie prism puzzle quarry quartz rabbit radar raisin ranch raven record ribbon river rocket
saddle salmon sandal satellite saucer scarf school season shadow shelter signal silver sketch
slogan socket spider spiral sponge square stable statue stream summer sunset supper survey
tablet tailor teapot temple tennis thunder ticket timber tomato tonic tractor travel trophy tunnel
turtle umbrella valley vapor velvet vessel village violin volcano voyage wagon walnut water wheat
whistle window winter wizard wonder yogurt zebra zenith budget invoice meeting report release
deploy server backup cluster migrate schedule review contract payment shipping customer support
ticketing quarterly forecast project roadmap feedback holiday weekend urgent reminder question
""".split()))
WEIGHTS = [1.0 / (r + 1) ** 1.1 for r in range(len(VOCAB))]  # Zipf-ish
BASE_DATE = datetime(2024, 1, 1, 8, 0, 0, tzinfo=UTC)


def make_message(i: int) -> tuple[str, bytes]:
    """Message ``i`` as the peer's load.py makes it: (envelope sender, bytes)."""
    rng = random.Random(SEED * 100003 + i)
    sender = f"sender{i % N_SENDERS:02d}@peer.test"
    subj_words = rng.choices(VOCAB, weights=WEIGHTS, k=rng.randint(3, 7))
    subj_words += rng.sample(VOCAB, 2)
    date = BASE_DATE + timedelta(minutes=105 * i)
    target = rng.randint(3000, 8000)
    hdr = (
        f"From: Sender {i % N_SENDERS:02d} <{sender}>\r\n"
        f"To: Carol <{RCPT}>\r\n"
        f"Subject: {' '.join(subj_words)}\r\n"
        f"Date: {format_datetime(date)}\r\n"
        f"Message-ID: <peer-{i:06d}@peer.test>\r\n"
        f"MIME-Version: 1.0\r\n"
        f"Content-Type: text/plain; charset=us-ascii\r\n"
        f"\r\n"
    )
    lines = [f"{MARKER} message {i}"]
    size = len(hdr) + len(lines[0]) + 2
    while size < target:
        line = " ".join(rng.choices(VOCAB, weights=WEIGHTS, k=rng.randint(8, 12)))
        lines.append(line)
        size += len(line) + 2
    return sender, (hdr + "\r\n".join(lines) + "\r\n").encode("ascii")


# --- the client (load.py's ingest) ----------------------------------------------------------------

@dataclass
class Sent:
    accepted: int
    seconds: float  # first send to the last 250
    start: float  # perf_counter of the first send
    errors: list[str]

    @property
    def rate(self) -> float:
        return self.accepted / self.seconds if self.seconds > 0 else 0.0


def send_all(host: str, port: int, messages: Sequence[tuple[int, str, bytes]], recipient: str,
             after: Callable[[int], None] | None = None, connections: int = CONNECTIONS) -> Sent:
    """load.py's client: ``connections`` SMTP sessions opened first, messages dealt round robin,
    all released by one barrier; ``after(i)`` runs on the session's thread after message i's 250."""
    shards = [messages[k::connections] for k in range(connections)]
    sessions = []
    for _ in range(connections):
        session = smtplib.SMTP(host, port, timeout=60)
        session.ehlo("loadgen.peer.test")
        sessions.append(session)
    barrier = threading.Barrier(connections + 1)
    results: list[tuple[float, float, int, list[str]]] = [(0.0, 0.0, 0, [])] * connections

    def worker(k: int) -> None:
        session, errors, accepted = sessions[k], list[str](), 0
        barrier.wait()
        first = last = time.perf_counter()
        for i, sender, data in shards[k]:
            try:
                refused = session.sendmail(sender, [recipient], data)
                if refused:
                    errors.append(str(refused))
                    continue
            except Exception as e:  # noqa: BLE001 - counted and reported, as load.py does
                errors.append(repr(e))
                continue
            last = time.perf_counter()
            accepted += 1
            if after is not None:
                after(i)
        try:
            session.quit()
        except Exception:  # noqa: BLE001
            pass
        results[k] = (first, last, accepted, errors)

    threads = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(connections)]
    for t in threads:
        t.start()
    barrier.wait()
    for t in threads:
        t.join()
    start = min(r[0] for r in results)
    return Sent(sum(r[2] for r in results), max(r[1] for r in results) - start, start,
                [e for r in results for e in r[3]])


# --- the peer: installing it ----------------------------------------------------------------------

def missing_packages(packages: Sequence[str] = PEER_PACKAGES) -> list[str]:
    missing = []
    for name in packages:
        done = subprocess.run(["dpkg-query", "-W", "-f=${Status}", name], capture_output=True, text=True)
        if "install ok installed" not in done.stdout:
            missing.append(name)
    return missing


def install_peer(packages: Sequence[str] = PEER_PACKAGES) -> str | None:
    """Install what the peer needs (or `packages`) as the Makefile installs a Debian package; why
    not, or None."""
    missing = missing_packages(packages)
    if not missing:
        return None
    if shutil.which("apt-get") is None or shutil.which("dpkg-query") is None:
        return f"{', '.join(missing)} not installed and this is not a Debian system (no apt-get)"
    if os.geteuid() != 0:
        return f"{', '.join(missing)} not installed (needs root to install)"
    print(f"peer: installing {' '.join(missing)} (apt-get, no service started)", flush=True)
    policy = Path("/usr/sbin/policy-rc.d")
    made_policy = not policy.exists()
    if made_policy:
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        steps: list[tuple[list[str], str | None]] = [(["apt-get", "update", "-q"], None)]
        if "postfix" in missing:
            steps.append((["debconf-set-selections"], "postfix postfix/main_mailer_type select No configuration\n"))
        steps.append((["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing], None))
        for command, stdin in steps:
            done = subprocess.run(command, input=stdin, capture_output=True, text=True, env=env, timeout=600)
            if done.returncode != 0:
                tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-5:])
                return f"{' '.join(command[:2])} exited {done.returncode} installing {', '.join(missing)}:\n{tail}"
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"installing {', '.join(missing)} failed: {e}"
    finally:
        if made_policy:
            policy.unlink(missing_ok=True)
    still = missing_packages(packages)
    return f"{', '.join(still)} still not installed after apt-get" if still else None


def vmail_user() -> pwd.struct_passwd:
    """setup.sh's mail owner: group and user vmail (5000 when free), created when missing."""
    try:
        return pwd.getpwnam("vmail")
    except KeyError:
        pass
    subprocess.run(["groupadd", "-f", "vmail"] + (["-g", "5000"] if not _gid_taken(5000) else []), check=True)
    uid = ["-u", "5000"] if not _uid_taken(5000) else []
    subprocess.run(["useradd", *uid, "-g", "vmail", "-d", "/nonexistent", "-s", "/usr/sbin/nologin", "-M", "vmail"],
                   check=True)
    return pwd.getpwnam("vmail")


def _uid_taken(uid: int) -> bool:
    try:
        pwd.getpwuid(uid)
        return True
    except KeyError:
        return False


def _gid_taken(gid: int) -> bool:
    try:
        grp.getgrgid(gid)
        return True
    except KeyError:
        return False


# --- the peer: running it -------------------------------------------------------------------------

DOVECOT_CONF = """\
# the peer's dovecot.conf (../shared/peer/conf/), its paths under {root}
protocols = lmtp
listen = 127.0.0.1
base_dir = {root}/dovecot/run
state_dir = {root}/dovecot/state
log_path = {root}/log/dovecot.log
info_log_path = {root}/log/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
first_valid_uid = {uid}
mail_uid = vmail
mail_gid = vmail
mail_location = maildir:~/Maildir
postmaster_address = postmaster@example.test
hostname = mx.peer.test
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/dovecot/peer-users
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {root}/dovecot/peer-users
}}
namespace inbox {{
  inbox = yes
  separator = /
}}
mail_plugins = $mail_plugins fts fts_xapian
plugin {{
  fts = xapian
  fts_xapian = partial=3 full=20 verbose=0
  fts_autoindex = yes
  fts_enforced = yes
  fts_autoindex_exclude = \\Trash
}}
service lmtp {{
  unix_listener {root}/postfix/spool/private/dovecot-lmtp {{
    user = postfix
    group = postfix
    mode = 0600
  }}
}}
service indexer-worker {{
  vsz_limit = 2G
}}
"""


@dataclass
class Peer:
    root: Path
    postfix: mta.Postfix
    dovecot: subprocess.Popen[bytes] | None = None
    log: list[str] = field(default_factory=list)

    @property
    def conf(self) -> Path:
        return self.root / "dovecot" / "dovecot.conf"

    @property
    def maildir(self) -> Path:
        return self.root / "mail" / "carol" / "Maildir"

    def doveadm(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["doveadm", "-c", str(self.conf), *args], capture_output=True, text=True, timeout=60)

    def start(self) -> None:
        vmail = vmail_user()
        for sub in ("dovecot/run", "dovecot/state", "log", "mail/carol"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o755)
        for sub in ("dovecot", "log"):
            (self.root / sub).chmod(0o755)
        for path in (self.root / "mail", self.root / "mail" / "carol"):
            os.chown(path, vmail.pw_uid, vmail.pw_gid)
        users = self.root / "dovecot" / "peer-users"
        users.write_text(f"{RCPT}:{{PLAIN}}carolpw:{vmail.pw_uid}:{vmail.pw_gid}::{self.root}/mail/carol::\n")
        shutil.chown(users, "root", "dovecot")
        users.chmod(0o640)
        self.conf.write_text(DOVECOT_CONF.format(root=self.root, uid=vmail.pw_uid))
        self.postfix.start()  # creates spool/private, where Dovecot puts its LMTP socket
        checked = subprocess.run(["doveconf", "-c", str(self.conf), "-n"], capture_output=True, text=True)
        if checked.returncode != 0:
            raise RuntimeError(f"doveconf: {checked.stderr.strip()}")
        self.dovecot = subprocess.Popen(["dovecot", "-c", str(self.conf), "-F"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        socket_path = self.root / "postfix" / "spool" / "private" / "dovecot-lmtp"
        deadline = time.monotonic() + 20
        while not socket_path.exists():
            if self.dovecot.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"dovecot did not start\n{self.dovecot_log()}")
            time.sleep(0.1)
        found = self.doveadm("user", RCPT)
        if found.returncode != 0:
            raise RuntimeError(f"doveadm user {RCPT}: {found.stdout}{found.stderr}")

    def stop(self) -> None:
        """Both stopped, whatever state they are in (teardown.sh's order)."""
        try:
            self.postfix.stop()
        finally:
            if self.dovecot is not None and self.dovecot.poll() is None:
                self.dovecot.terminate()
                try:
                    self.dovecot.wait(20)
                except subprocess.TimeoutExpired:
                    self.dovecot.kill()
                    self.dovecot.wait(10)

    def pids(self) -> list[int]:
        master = self.postfix.master_pid()
        return [pid for pid in (master, self.dovecot.pid if self.dovecot else None) if pid is not None]

    def dovecot_log(self) -> str:
        try:
            return "\n".join((self.root / "log" / "dovecot.log").read_text(errors="replace").splitlines()[-20:])
        except OSError:
            return "(no dovecot log)"

    def delivered(self) -> int:
        return sum(len(os.listdir(self.maildir / sub)) for sub in ("new", "cur") if (self.maildir / sub).is_dir())

    def indexed(self) -> int:
        """Messages the xapian index returns for the marker (load.py's fts_indexed_count)."""
        out = self.doveadm("fts", "lookup", "-u", RCPT, "mailbox", "INBOX", "body", MARKER).stdout
        m = re.search(r"INBOX:\s*(.*)", out)
        if not m or "no results" in m.group(1):
            return 0
        total = 0
        for part in m.group(1).replace(" ", "").split(","):
            if part:
                low, _, high = part.partition(":")
                total += int(high or low) - int(low) + 1
        return total

    def search(self, *query: str) -> int:
        done = self.doveadm("search", "-u", RCPT, "mailbox", "INBOX", *query)
        return len([line for line in done.stdout.splitlines() if line.strip()])

    def wait_searchable(self, want: int, timeout: float) -> float | None:
        """perf_counter when the index holds ``want`` marked messages (after all are delivered)."""
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            if self.delivered() >= want and self.indexed() >= want:
                return time.perf_counter()
            time.sleep(POLL_S)
        return None


@contextmanager
def peer_running() -> Iterator[Peer]:
    root = Path(tempfile.mkdtemp(prefix="tidings-peer-"))
    port = port_free_on(PEER_HOST)
    relay = {
        "virtual_mailbox_domains": "example.test",
        "virtual_mailbox_maps": f"inline:{{ {RCPT}=OK }}",
        "virtual_transport": "lmtp:unix:private/dovecot-lmtp",
        "smtpd_relay_restrictions": "reject_unauth_destination",
    }
    peer = Peer(root, mta.Postfix(root / "postfix", PEER_HOST, port, hostname="mx.peer.test", settings=relay))
    try:
        peer.start()
        yield peer
    finally:
        try:
            peer.stop()
        finally:
            shutil.rmtree(root, ignore_errors=True)


@dataclass
class Result:
    name: str
    sent: Sent
    searchable_s: float | None  # first send until every message is searchable
    cpu: dict[str, float]  # ms a message, by process
    note: str = ""

    @property
    def searchable_rate(self) -> float:
        return self.sent.accepted / self.searchable_s if self.searchable_s else 0.0


def run_peer(messages: list[tuple[int, str, bytes]], warm: list[tuple[int, str, bytes]], timeout: float) -> Result:
    with peer_running() as peer:
        print(f"peer: Postfix {peer.postfix.address}:{peer.postfix.port} -> LMTP -> Dovecot + fts-xapian "
              f"under {peer.root}", flush=True)
        send_all(PEER_HOST, peer.postfix.port, warm, RCPT)
        if peer.wait_searchable(len(warm), timeout) is None:
            raise RuntimeError(f"peer: warm-up not searchable in {timeout:.0f} s\n{peer.dovecot_log()}")
        want = len(warm) + len(messages)
        cpu = tree_cpu(peer.pids())
        sent = send_all(PEER_HOST, peer.postfix.port, messages, RCPT)
        print(f"peer: accepted {sent.accepted} in {sent.seconds:.1f} s ({sent.rate:.0f} msg/s), "
              f"errors {len(sent.errors)}; waiting for the index", flush=True)
        done = peer.wait_searchable(len(warm) + sent.accepted, timeout)
        used = tree_cpu(peer.pids()) - cpu
        last = messages[-1][0]
        found = peer.search("body", f"{MARKER} message {last}")
        note = f"doveadm search for the last message found {found}"
        if done is None:
            note = f"not all searchable after {timeout:.0f} s (index {peer.indexed()}/{want})"
        return Result("peer", sent, done - sent.start if done else None,
                      {"postfix + dovecot (all processes)": used / max(sent.accepted, 1) * 1000}, note)


def run_tidings(grid: Grid, zone: Zone, mode: str, messages: list[tuple[int, str, bytes]],
                warm: list[tuple[int, str, bytes]]) -> Result:
    recipient = f"carol-checks-{mode}@example.test"
    user_id = grid.add_user(recipient).user_id
    start_edge(grid, (*MODES[mode], "--dns", zone.address) if mode == "on" else MODES[mode])
    send_all(grid.host, grid.smtp_port, warm, recipient)
    missed: list[int] = []

    def searchable_now(i: int) -> None:
        if i % CHECK_EVERY == 0:
            try:
                page = grid.mail.Search(mail_pb2.SearchRequest(user_id=user_id, query=f'"{MARKER} message {i}"',
                                                               limit=5), timeout=30)
            except Exception:  # noqa: BLE001 - a failed search is a miss, reported
                missed.append(i)
                return
            if page.total != 1:
                missed.append(i)

    before = cluster_cpu(grid)
    sent = send_all(grid.host, grid.smtp_port, messages, recipient, after=searchable_now)
    after = cluster_cpu(grid)
    cpu = {name: (after[name] - before.get(name, 0.0)) / max(sent.accepted, 1) * 1000 for name in after}
    total = grid.mail.Search(mail_pb2.SearchRequest(user_id=user_id, query=MARKER, limit=1), timeout=60).total
    checked = len([i for i, _, _ in messages if i % CHECK_EVERY == 0])
    note = (f"{checked - len(missed)}/{checked} sampled messages found by search right after their 250; "
            f"'{MARKER}' finds {total} of {len(warm) + sent.accepted}")
    searchable = sent.seconds if not missed and total == len(warm) + sent.accepted else None
    return Result(f"tidings, checks {mode}", sent, searchable, cpu, note)


def _stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # so every `finally` (the peer's teardown) runs


def run_stopped_by_sigterm(run: Callable[[argparse.Namespace], None], args: argparse.Namespace) -> None:
    """``run(args)`` with SIGTERM turned into SystemExit meanwhile, so a benchmark stopped by
    SIGTERM still stops the peer it started (its ``finally`` blocks run)."""
    previous = signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        run(args)
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=2000, help="timed messages a side (issue 19's figure: 5000)")
    parser.add_argument("--modes", nargs="+", choices=list(MODES), default=list(MODES),
                        help="Tidings's inbound checks off, on, or both")
    parser.add_argument("--no-peer", action="store_true", help="Tidings only")
    parser.add_argument("--timeout", type=float, default=0, help="seconds to wait for the peer's index (0: from N)")
    args = parser.parse_args(argv)
    run_stopped_by_sigterm(_run, args)


def _run(args: argparse.Namespace) -> None:
    timeout = args.timeout or max(120.0, args.messages / 10)
    messages = [(i, *make_message(i)) for i in range(args.messages)]
    warm = [(i, *make_message(i)) for i in range(args.messages, args.messages + WARM_UP)]
    sizes = [len(m[2]) for m in messages]
    print(f"load average at the start: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")
    print(f"ingest vs peer: {len(messages)} of the peer's messages ({min(sizes)}-{max(sizes)} B, "
          f"mean {sum(sizes) / len(sizes):.0f}), {CONNECTIONS} connections, one mailbox a run", flush=True)
    results: list[Result] = []
    why_not = "--no-peer" if args.no_peer else install_peer()
    if why_not is None:
        try:
            results.append(run_peer(messages, warm, timeout))
        except (RuntimeError, OSError, subprocess.SubprocessError) as e:
            why_not = f"the peer failed: {e}"
    if why_not is not None:
        print(f"peer skipped: {why_not}", flush=True)
    zone = Zone()
    zone.spf("peer.test", "v=spf1 ip4:127.0.0.0/8 -all")
    with tempfile.TemporaryDirectory() as d, serving(zone):
        grid = Grid(Path(d), edges=("smtp",), virus_scan="on" in args.modes).start()
        try:
            for mode in args.modes:
                results.append(run_tidings(grid, zone, mode, messages, warm))
                print(f"{results[-1].name}: {results[-1].sent.rate:.0f} msg/s", flush=True)
        finally:
            grid.stop()
    report(results, why_not)
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())} (other work on the machine "
          "moves wall-clock rates; CPU ms a message moves less)")


def report(results: list[Result], why_not: str | None) -> None:
    print(f"{'system':>19} {'accepted':>9} {'errors':>7} {'accepted msg/s':>15} {'searchable s':>13} "
          f"{'searchable msg/s':>17} {'CPU ms/msg':>11} {'clamd':>6}")
    for r in results:
        cpu = sum(v for k, v in r.cpu.items() if k not in ("bench client", SCANNER))  # clamd apart
        searchable = f"{r.searchable_s:.1f}" if r.searchable_s else "never"
        clamd = f"{r.cpu[SCANNER]:.2f}" if SCANNER in r.cpu else "-"
        print(f"{r.name:>19} {r.sent.accepted:>9} {len(r.sent.errors):>7} {r.sent.rate:>15.1f} {searchable:>13} "
              f"{r.searchable_rate:>17.1f} {cpu:>11.2f} {clamd:>6}")
    for r in results:
        print(f"{r.name}: {r.note}" + (f"; first errors {r.sent.errors[:3]}" if r.sent.errors else ""))
        print(f"{r.name} CPU ms/msg by process: " + ", ".join(
            f"{name} {value:.2f}" for name, value in sorted(r.cpu.items())))
        storage = sum(v for k, v in r.cpu.items() if k.startswith("storage-"))
        if storage:
            cluster = sum(v for k, v in r.cpu.items() if k not in ("bench client", SCANNER))
            print(f"{r.name} CPU ms/msg: cluster {cluster:.2f} (storage nodes {storage:.2f}), "
                  f"clamd apart {r.cpu.get(SCANNER, 0.0):.2f}")
    peer = next((r for r in results if r.name == "peer"), None)
    if peer is None:
        print(f"no ratios: the peer did not run ({why_not})")
        return
    for r in results:
        if r is peer:
            continue
        searchable = (f"{r.searchable_rate / peer.searchable_rate:.2f}x" if peer.searchable_rate and r.searchable_rate
                      else "n/a")
        ours = sum(v for k, v in r.cpu.items() if k not in ("bench client", SCANNER))
        theirs = sum(peer.cpu.values())
        print(f"{r.name} / peer: accepted {r.sent.rate / peer.sent.rate:.2f}x, searchable {searchable}, "
              f"searchable vs the peer's accepted {r.searchable_rate / peer.sent.rate:.2f}x "
              f"(issue 19 goal: >= 1x the peer's accepted and >= 5x its searchable), "
              f"CPU a message {f'{ours / theirs:.2f}x' if theirs else 'n/a'}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
