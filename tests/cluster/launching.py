"""Running `tidings cluster run` as a process in tests: its command line, the line that says
it is up, a port offset free for it, the ports and processes it leaves."""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil

from tidings_cli.cluster import Layout

UP_LINE = "Tidings local cluster is up"


def listeners() -> list[tuple[str, int]]:
    """(address, port) of every listening TCP socket (IPv4-mapped addresses unmapped)."""
    return [(c.laddr.ip.removeprefix("::ffff:"), c.laddr.port) for c in psutil.net_connections(kind="tcp")
            if c.status == psutil.CONN_LISTEN]


def listening_ports() -> set[int]:
    return {port for _, port in listeners()}


def free_offset() -> int:
    """An offset under which every default port is free on every address, below the ephemeral range."""
    taken = listening_ports()
    for _ in range(100):
        offset = random.randrange(10_000, 23_000)
        if not Layout.default(Path("."), offset).ports & taken:
            return offset
    raise RuntimeError("no free port offset")


def tidings(base_dir: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "tidings_cli", "--base-dir", str(base_dir), *args]


def processes_of(base_dir: Path) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cmdline"]):
        if process.pid != os.getpid() and str(base_dir) in " ".join(process.info["cmdline"] or ()):
            found.append(process)
    return found


def wait_for_line(launcher: subprocess.Popen[str], text: str, timeout: float = 120) -> None:
    assert launcher.stdout is not None
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        line = launcher.stdout.readline()
        if not line:
            raise AssertionError(f"launcher exited ({launcher.wait()}):\n{''.join(seen)}")
        seen.append(line)
        if text in line:
            return
    raise AssertionError(f"no {text!r} within {timeout}s:\n{''.join(seen)}")


def ctrl_c(launcher: subprocess.Popen[str], timeout: float = 60) -> int:
    """Stop a launcher as Ctrl-C does; its exit code."""
    launcher.send_signal(signal.SIGINT)
    return launcher.wait(timeout)


@contextmanager
def launched(base_dir: Path, *args: str, data: Path | None = None) -> Iterator[subprocess.Popen[str]]:
    """`tidings --base-dir BASE_DIR cluster run ARGS... [--data DATA]`, once it says it is up;
    stopped at the end if the test did not, and whatever a failing test left of it killed."""
    data_args = ("--data", str(data)) if data is not None else ()
    launcher = subprocess.Popen(tidings(base_dir, "cluster", "run", *args, *data_args),
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for_line(launcher, UP_LINE)
        yield launcher
    finally:
        if launcher.poll() is None:
            ctrl_c(launcher)
        for stray in processes_of(data or base_dir):
            stray.kill()
