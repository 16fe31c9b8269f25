"""`tidings cluster run` as a process: Ctrl-C stops every process of the cluster (a node
restarted by `tidings node start` included), and a launcher whose ports are taken refuses
to start, naming the port and its holder."""
from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.cluster.launching import ctrl_c, free_offset, launched, listening_ports, processes_of, tidings
from tidings_cli.cluster import ClusterError, Layout, Process


@pytest.fixture
def default_cluster(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Layout]]:
    base = tmp_path / "var"
    offset = free_offset()
    with launched(base, "--port-offset", str(offset)) as launcher:
        yield launcher, Layout.default(base, offset)


def test_ctrl_c_stops_a_restarted_node_too(default_cluster: tuple[subprocess.Popen[str], Layout]) -> None:
    launcher, layout = default_cluster
    node_2 = psutil.Process(int((layout.base_dir / "pids" / "storage-2.pid").read_text()))
    node_2.kill()  # kill -9, as in the README
    node_2.wait(10)
    started = subprocess.run(tidings(layout.base_dir, "node", "start", "2"), check=False, capture_output=True, text=True,
                             timeout=60)
    assert started.returncode == 0, started.stdout + started.stderr

    assert ctrl_c(launcher) == 0
    assert not layout.ports & listening_ports()
    assert processes_of(layout.base_dir) == []


def test_a_second_launcher_on_taken_ports_refuses(default_cluster: tuple[subprocess.Popen[str], Layout],
                                                  tmp_path: Path) -> None:
    _, layout = default_cluster
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
