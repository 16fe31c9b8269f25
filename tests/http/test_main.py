"""`python -m http_edge` as a process: prints where it listens, serves, stops cleanly."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_starts_prints_and_stops_cleanly(tmp_path: Path, sig: signal.Signals) -> None:
    secret = tmp_path / "var" / "token.secret"
    proc = subprocess.Popen(
        [sys.executable, "-m", "http_edge", "--router", "127.0.0.1:1", "--host", "127.0.0.1", "--port", "0",
         "--metrics-port", "0", "--token-secret-file", str(secret)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "TIDINGS_LOG_LEVEL": "warning"},
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        m = re.fullmatch(r"http_edge listening on http://127\.0\.0\.1:(\d+), metrics :(\d+)\n", line)
        assert m, line
        port, metrics_port = m.groups()
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).json() == {"status": "ok"}
        assert "tidings_http_requests_total" in httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
        assert secret.stat().st_size == 32
        proc.send_signal(sig)
        assert proc.wait(timeout=15) == 0, proc.stderr.read() if proc.stderr else ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
