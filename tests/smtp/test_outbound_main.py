"""``python -m smtp_edge.outbound`` as a process: ready line and ready file (metrics on
port 0), its metrics, bad settings, clean stop on SIGTERM while the router is down."""
from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tidings_runtime.ready import read_ready


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_bad_settings_exit_2_naming_the_setting() -> None:
    done = subprocess.run([sys.executable, "-m", "smtp_edge.outbound", "--retry-schedule", "2m,soon"],
                          capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 2
    assert "--retry-schedule (env TIDINGS_RETRY_SCHEDULE)" in done.stderr and "soon" in done.stderr


def test_process_runs_until_sigterm(tmp_path: Path) -> None:
    ready = tmp_path / "ready.json"
    router = f"127.0.0.1:{_closed_port()}"
    process = subprocess.Popen(
        [sys.executable, "-m", "smtp_edge.outbound", "--router", router, "--hostname", "out.example.test",
         "--dns", "127.0.0.1:53", "--metrics-port", "0", "--poll-interval-s", "0.1", "--rpc-timeout", "1",
         "--ready-file", str(ready)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        ports = read_ready(ready)
        assert ports is not None and set(ports) == {"metrics"} and ports["metrics"] > 0
        assert line.startswith("smtp_edge.outbound worker out.example.test:")
        assert line.endswith(f"on router {router}, metrics :{ports['metrics']}")
        failed_round = b'tidings_task_rounds_total{outcome="error",task="outbound-lease"}'  # the router is down
        for _ in range(50):
            with urllib.request.urlopen(f"http://127.0.0.1:{ports['metrics']}/metrics", timeout=5) as page:
                text = page.read()
            if failed_round in text:
                break
            time.sleep(0.1)
        assert failed_round in text and b"tidings_outbound_attempt_seconds" in text
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
