"""``python -m smtp_edge`` as a process: flags and environment, ready line and ready file
(port 0 everywhere), clean stop.

The router is the ``fake_router`` test double of the ``tidings.v1.Mail``
contract (see conftest.py).
"""
from __future__ import annotations

import os
import signal
import smtplib
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from smtp_edge.config import DEFAULT_MAX_SIZE, Settings
from tidings_runtime.ready import read_ready


def test_flags_win_over_environment_which_wins_over_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings.parse([]).max_size == DEFAULT_MAX_SIZE
    for name, value in {"TIDINGS_ROUTER": "10.0.0.1:7000", "TIDINGS_SMTP_PORT": "25",
                        "TIDINGS_SMTP_DATA_DIR": "/srv/smtp"}.items():
        monkeypatch.setenv(name, value)
    settings = Settings.parse(["--port", "2526", "--max-size", "1000"])
    assert (settings.router, settings.port, settings.max_size) == ("10.0.0.1:7000", 2526, 1000)
    assert settings.data_dir == Path("/srv/smtp")
    assert settings.submission_port == 2587


def test_bad_settings_exit_2_naming_the_setting(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "smtp_edge", "--max-size", "0", "--data-dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 2
    assert "--max-size (env TIDINGS_SMTP_MAX_SIZE): Input should be greater than 0" in done.stderr


def test_process_serves_until_sigterm(fake_router, tmp_path: Path) -> None:
    env = {**os.environ, "TIDINGS_SMTP_HOSTNAME": "mx.example.test", "TIDINGS_VIRUS_SCAN": "off"}
    ready = tmp_path / "ready.json"
    process = subprocess.Popen(
        [sys.executable, "-m", "smtp_edge", "--router", fake_router.address,
         "--host", "127.0.0.1", "--port", "0", "--submission-port", "0",
         "--metrics-port", "0", "--data-dir", str(tmp_path / "smtp"), "--ready-file", str(ready)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        ports = read_ready(ready)
        assert ports is not None and set(ports) == {"smtp", "submission", "metrics"} and 0 not in ports.values()
        port, submission, metrics = ports["smtp"], ports["submission"], ports["metrics"]
        assert line == (f"smtp_edge listening on 127.0.0.1:{port} "
                        f"(submission {submission}), metrics :{metrics}")
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
            assert client.ehlo()[1].startswith(b"mx.example.test")
            client.sendmail("carol@example.org", ["alice@example.test"],
                            b"Subject: hi\r\n\r\nbody\r\n")
        assert len(fake_router.delivered) == 1
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics}/metrics", timeout=5) as page:
            assert b'tidings_smtp_messages_accepted_total{listener="mx"} 1.0' in page.read()
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
