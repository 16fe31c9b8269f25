"""`tidings cluster run` as a process: Ctrl-C stops every process of the cluster (a node
restarted by `tidings node start` included), and a launcher whose ports are taken refuses
to start, naming the port and its holder."""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tidings_cli.cluster import ClusterError, Layout, Process

UP_LINE = "Tidings local cluster is up"


def cluster_ports(layout: Layout) -> set[int]:
    return {layout.router_port, *layout.storage_ports, layout.smtp_port, layout.submission_port,
            layout.http_port, *layout.metrics_ports.values()}


def listening_ports() -> set[int]:
    return {c.laddr.port for c in psutil.net_connections(kind="tcp") if c.status == psutil.CONN_LISTEN}


def free_offset() -> int:
    """An offset under which every default port is free, below the ephemeral range."""
    taken = listening_ports()
    for _ in range(100):
        offset = random.randrange(10_000, 23_000)
        if not cluster_ports(Layout.default(Path("."), offset)) & taken:
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


@pytest.fixture
def launched(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Layout]]:
    base = tmp_path / "var"
    offset = free_offset()
    launcher = subprocess.Popen(tidings(base, "cluster", "run", "--port-offset", str(offset)),
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for_line(launcher, UP_LINE)
        yield launcher, Layout.default(base, offset)
    finally:
        if launcher.poll() is None:
            launcher.send_signal(signal.SIGINT)
            launcher.wait(60)
        for stray in processes_of(base):  # what a failing test leaves behind
            stray.kill()


def test_ctrl_c_stops_a_restarted_node_too(launched: tuple[subprocess.Popen[str], Layout]) -> None:
    launcher, layout = launched
    node_2 = psutil.Process(int((layout.base_dir / "pids" / "storage-2.pid").read_text()))
    node_2.kill()  # kill -9, as in the README
    node_2.wait(10)
    started = subprocess.run(tidings(layout.base_dir, "node", "start", "2"), check=False, capture_output=True, text=True,
                             timeout=60)
    assert started.returncode == 0, started.stdout + started.stderr

    launcher.send_signal(signal.SIGINT)
    assert launcher.wait(60) == 0
    assert not cluster_ports(layout) & listening_ports()
    assert processes_of(layout.base_dir) == []


def test_a_second_launcher_on_taken_ports_refuses(launched: tuple[subprocess.Popen[str], Layout],
                                                  tmp_path: Path) -> None:
    _, layout = launched
    offset = layout.router_port - 7000
    other = tmp_path / "other"
    second = subprocess.run(tidings(other, "cluster", "run", "--port-offset", str(offset)),
                            check=False, capture_output=True, text=True, timeout=60)
    assert second.returncode != 0
    holder = int((layout.base_dir / "pids" / "router.pid").read_text())
    assert str(layout.router_port) in second.stderr and f"pid {holder}" in second.stderr, second.stderr
    assert processes_of(other) == []


def test_a_process_that_dies_before_ready_is_reported_with_its_log(tmp_path: Path) -> None:
    layout = Layout.any_port(tmp_path)
    process = Process("storage-1", [sys.executable, "-m", "storage_node", "--listen", "127.0.0.1:99999"], layout)
    process.start()
    with pytest.raises(ClusterError, match=r"storage-1 exited \(2\) before it was ready(.|\n)*--listen"):
        process.wait_ready(timeout=30)
