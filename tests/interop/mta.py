"""Debian's Postfix as a private instance: its own config directory, queue, data directory,
log file and maildirs under one scratch directory, bound only to its own loopback address.

`make test` installs the package (the Makefile's `postfix` target) and never touches
/etc/postfix: the instance is run with `postfix -c DIR` as root. Used by tests/interop and
bench/outbound.
"""
from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tidings_runtime.tls import ensure_dev_certificate

POSTFIX = "/usr/sbin/postfix"

# Debian's master.cf without the pipe transports; nothing chrooted (no init script copies files
# into a chroot here), smtpd only on ADDRESS:PORT.
MASTER_CF = """\
{listen} inet n       -       n       -       -       smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


def unavailable() -> str | None:
    """Why a private Postfix cannot run here, or None."""
    if not os.path.exists(POSTFIX):
        return "Debian's postfix is not installed (make test installs it as root: the Makefile's postfix target)"
    if os.geteuid() != 0:
        return "postfix -c DIR start must run as root"
    try:
        pwd.getpwnam("postfix")
    except KeyError:
        return "the postfix user is missing (a broken postfix package)"
    return None


@dataclass
class Postfix:
    """One instance. `settings` are main.cf lines added to (or overriding) the base ones."""

    root: Path
    address: str
    port: int
    hostname: str = "mx.postfix.test"
    settings: dict[str, str] = field(default_factory=dict)
    mailboxes: dict[str, str] = field(default_factory=dict)  # address -> maildir under mail/
    tls: bool = False  # smtpd offers STARTTLS with a self-signed certificate for `hostname`

    @property
    def config_dir(self) -> Path:
        return self.root / "etc"

    @property
    def mail_dir(self) -> Path:
        return self.root / "mail"

    @property
    def log_file(self) -> Path:
        return self.root / "log" / "postfix.log"

    def main_cf(self) -> dict[str, str]:
        nobody = pwd.getpwnam("nobody")
        base = {
            "compatibility_level": "3.6",
            "queue_directory": str(self.root / "spool"),
            "data_directory": str(self.root / "data"),
            "mail_owner": "postfix",
            "setgid_group": "postdrop",
            "myhostname": self.hostname,
            "mydomain": self.hostname.partition(".")[2] or self.hostname,
            "myorigin": "$myhostname",
            "inet_interfaces": "loopback-only",  # an address of an interface (lo is 127.0.0.1/8); smtpd binds ours
            "proxy_interfaces": self.address,
            "inet_protocols": "ipv4",
            "smtp_bind_address": self.address,
            "mynetworks": "127.0.0.0/8",
            "mydestination": "",
            "local_recipient_maps": "",
            "local_transport": "error:local delivery disabled",
            "alias_maps": "",
            "alias_database": "",
            "relay_domains": "",
            "smtpd_relay_restrictions": "permit_mynetworks, reject_unauth_destination",
            "virtual_mailbox_base": str(self.mail_dir),
            "virtual_uid_maps": f"static:{nobody.pw_uid}",
            "virtual_gid_maps": f"static:{nobody.pw_gid}",
            "virtual_transport": "virtual",
            "biff": "no",
            "append_dot_mydomain": "no",
            "smtpd_banner": "$myhostname ESMTP",
            "smtpd_tls_security_level": "none",
            "smtp_tls_security_level": "none",
            # /etc/hosts and the test's own addresses only; no resolver is asked for [ip] next hops
            "smtp_host_lookup": "native",
            "maillog_file": str(self.log_file),
            "maillog_file_prefixes": f"/var, /dev/stdout, {self.root}",
            # no waiting between a defer and the next try, so a test sees its retries quickly
            "queue_run_delay": "1s",
            "minimal_backoff_time": "1s",
            "maximal_backoff_time": "2s",
        }
        if self.tls:
            cert, key = ensure_dev_certificate(self.root, self.hostname)
            base.update(smtpd_tls_security_level="may", smtpd_tls_cert_file=str(cert), smtpd_tls_key_file=str(key),
                        smtpd_tls_received_header="yes")
        if self.mailboxes:
            domains = sorted({a.rpartition("@")[2] for a in self.mailboxes})
            entries = ", ".join(f"{a}={box}" for a, box in sorted(self.mailboxes.items()))
            base["virtual_mailbox_domains"] = ", ".join(domains)
            base["virtual_mailbox_maps"] = f"inline:{{ {entries} }}"
        base.update(self.settings)
        return base

    def write_config(self) -> None:
        for sub in ("etc", "spool", "data", "log", "mail"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        # the daemons run as postfix and nobody: they must reach every directory on the way
        self.root.chmod(0o755)
        shutil.chown(self.root / "data", "postfix", "postfix")
        nobody = pwd.getpwnam("nobody")
        os.chown(self.mail_dir, nobody.pw_uid, nobody.pw_gid)
        lines = [f"{k} = {v}" for k, v in self.main_cf().items()]
        (self.config_dir / "main.cf").write_text("# written by tests/interop/mta.py\n" + "\n".join(lines) + "\n")
        (self.config_dir / "master.cf").write_text(MASTER_CF.format(listen=f"{self.address}:{self.port}"))

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([POSTFIX, "-c", str(self.config_dir), *args], capture_output=True, text=True,
                              timeout=60, check=False)
        if check and done.returncode != 0:
            raise RuntimeError(f"postfix {' '.join(args)} exited {done.returncode}: {done.stdout}{done.stderr}"
                               f"\n--- log\n{self.log_tail()}")
        return done

    def start(self, timeout: float = 20) -> None:
        self.write_config()
        self.run("check")
        self.run("start")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with socket.create_connection((self.address, self.port), timeout=1) as s:
                    if s.recv(100).startswith(b"220"):
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"postfix on {self.address}:{self.port} did not greet\n--- log\n{self.log_tail()}")

    def stop(self) -> None:
        if self.master_pid() is None:
            return
        self.run("stop", check=False)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and self.master_pid() is not None:
            time.sleep(0.1)

    def master_pid(self) -> int | None:
        try:
            pid = int((self.root / "spool" / "pid" / "master.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        return pid

    def pids(self) -> list[int]:
        """The master and its children (the daemons)."""
        master = self.master_pid()
        if master is None:
            return []
        return [master, *children(master)]

    def flush(self) -> None:
        self.run("flush", check=False)

    def queued(self) -> int:
        """Messages in Postfix's queue (incoming, active, deferred, hold)."""
        spool = self.root / "spool"
        return sum(1 for sub in ("incoming", "active", "deferred", "hold") if (spool / sub).is_dir()
                   for p in (spool / sub).rglob("*") if p.is_file())

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def maildir_messages(self, box: str) -> list[bytes]:
        new = self.mail_dir / box / "new"
        return [p.read_bytes() for p in sorted(new.iterdir())] if new.is_dir() else []


def children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(entry))
    return found


@contextmanager
def running(address: str, port: int, **options: object) -> Iterator[Postfix]:
    """A started instance in a fresh directory under /tmp (pytest's tmp dirs are 0700, closed to
    the postfix user), stopped and removed when the block ends."""
    root = Path(tempfile.mkdtemp(prefix="tidings-postfix-"))
    instance = Postfix(root, address, port, **options)  # type: ignore[arg-type]
    try:
        instance.start()
        yield instance
    finally:
        try:
            instance.stop()
        finally:
            shutil.rmtree(root, ignore_errors=True)
