"""The client as a package of its own: a fresh clone, a fresh venv, `pip install ./clients/python`
(the stubs generated in the package's build, from proto/), then the README's example against
the shared grid, run by that venv's Python, away from this checkout.

Takes ~15 s (clone ~1 s, venv ~3 s, pip ~10 s with a warm pip cache; the first run downloads
setuptools, grpcio-tools, grpcio and protobuf)."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.cluster.grid import PASSWORD, Grid

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.timeout(300)

CHECKS = """
import sys
from pathlib import Path

import tidings
import tidings_client
from tidings.v1 import mail_pb2, mail_pb2_grpc

# the stubs came with the package, not from a checkout
assert Path(tidings.__file__).is_relative_to(sys.prefix), tidings.__file__
assert Path(tidings_client.__file__).is_relative_to(sys.prefix), tidings_client.__file__
assert tidings_client.__version__ == tidings.__version__
assert mail_pb2.DESCRIPTOR.package == "tidings.v1" and mail_pb2_grpc.MailStub

# the sync client, and the plain stubs over its channel
with tidings_client.SyncMailClient(ROUTER) as sync_mail:
    user = sync_mail.authenticate(EMAIL, PASSWORD).user_id
    assert [f for f in sync_mail.list_folders(user) if f.id == "inbox"]
    folders = mail_pb2_grpc.MailStub(sync_mail.channel).ListFolders(mail_pb2.UserRef(user_id=user), timeout=10)
    assert [f for f in folders.folders if f.id == "sent"], folders
    print("checks passed")
"""


def readme_example() -> str:
    readme = (ROOT / "clients" / "python" / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, re.S)
    assert blocks, "no python example in clients/python/README.md"
    return blocks[0]


def run(args: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 240) -> str:
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
    return result.stdout


def test_fresh_clone_installs_the_client_and_runs_the_readme(grid: Grid, tmp_path: Path) -> None:
    email = "package-reader@example.test"
    grid.add_user(email)
    clone, venv, elsewhere = tmp_path / "clone", tmp_path / "venv", tmp_path / "elsewhere"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}

    run(["git", "clone", "--quiet", str(ROOT), str(clone)], tmp_path)
    assert not (clone / "clients" / "python" / "tidings").exists()  # generated, not committed
    run([sys.executable, "-m", "venv", str(venv)], tmp_path, env)
    python = str(venv / "bin" / "python")
    run([python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "./clients/python"], clone, env)

    elsewhere.mkdir()
    script = elsewhere / "example.py"
    settings = f"ROUTER, EMAIL, PASSWORD = {grid.router_address!r}, {email!r}, {PASSWORD!r}\n"
    script.write_text(readme_example() + settings + textwrap.dedent(CHECKS))
    env |= {"TIDINGS_ROUTER": grid.router_address, "TIDINGS_EMAIL": email, "TIDINGS_PASSWORD": PASSWORD}
    out = run([python, "-I", str(script)], elsewhere, env, timeout=60)

    assert "* Hello from tidings-client (Sent over gRPC.)" in out, out  # paged, unread, in the inbox
    assert "Hello from tidings-client | Sent over gRPC." in out, out  # opened
    assert re.search(r"^new mail: [0-9a-f]+ \(change \d+\)$", out, re.M), out  # pushed by watch()
    assert re.search(r"^Inbox\s+\d+ unread of \d+$", out, re.M), out
    assert "checks passed" in out, out
