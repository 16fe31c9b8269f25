"""Backup and restore through S3 with the `tidings` command as a process: storage nodes keep
their blobs in a bucket of moto's S3 server (HTTP on a loopback port 0), `tidings backup --to
s3://BUCKET/PREFIX` has node 2 write its checkpoint there, node 2 is killed and its data
directory destroyed, `tidings restore s3://...` (credentials from TIDINGS_S3_*, as on the node's
host) brings it back and the restarted node holds what it held at the backup. A file of the
backup changed in the bucket is refused, nothing written; a bucket that is not the node's is
refused before anything is written."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from tests.cluster.grid import Grid, running
from tests.s3_server import REGION, S3Endpoint, moto_s3
from tidings.v1 import mail_pb2, storage_pb2, storage_pb2_grpc
from tidings_cli.cluster import poll_until
from tidings_runtime.backups import MANIFEST
from tidings_runtime.ids import new_entry_id

BUCKET = "tidings-backups-s3"
USER = "kept@example.test"


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Endpoint]:
    with moto_s3() as endpoint:
        endpoint.bucket(BUCKET)
        endpoint.bucket("someone-elses")
        yield endpoint


@pytest.fixture(scope="module")
def grid(s3: S3Endpoint, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Grid]:
    flags = ("--s3-bucket", BUCKET, "--s3-endpoint", s3.url, "--s3-region", REGION)
    with pytest.MonkeyPatch.context() as env:   # the nodes inherit the credentials, never as flags
        for name, value in s3.env(BUCKET).items():
            env.setenv(name, value)
        with running(tmp_path_factory.mktemp("backup-s3"), edges=(),
                     args={f"storage-{i}": flags for i in (1, 2, 3)}) as grid:
            yield grid


def tidings(grid: Grid, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tidings_cli", "--router", grid.router_address,
                           "--base-dir", str(grid.layout.base_dir), *args],
                          capture_output=True, text=True, timeout=300, env={**os.environ, **(env or {})})


def subjects_on(address: str, user_id: str) -> set[str]:
    request = storage_pb2.NodeListFolderRequest(user_id=user_id, folder_id="inbox", limit=500)
    with grpc.insecure_channel(address) as channel:
        return {m.subject for m in storage_pb2_grpc.StorageNodeStub(channel).ListFolder(request, timeout=30).messages}


def test_backup_to_s3_and_restore_from_it_through_the_cli(grid: Grid, s3: S3Endpoint, tmp_path: Path) -> None:
    user_id = grid.add_user(USER).user_id
    subjects = {f"kept {i}" for i in range(12)}
    for subject in sorted(subjects):
        raw = f"From: a@elsewhere.test\r\nTo: {USER}\r\nSubject: {subject}\r\n\r\nbody\r\n".encode()
        grid.mail.Deliver(mail_pb2.DeliverRequest(entry_id=new_entry_id(), raw=raw, recipients=[USER]), timeout=30)
    # a delivery is acknowledged on two of three replicas: node 2 may take the last one a moment later
    poll_until(lambda: subjects_on(grid.layout.storage_address(2), user_id) == subjects,
               "node 2 holding every delivered message", timeout=30)

    made = tidings(grid, "backup", "--node", "2", "--to", f"s3://{BUCKET}/backups/one")
    assert made.returncode == 0, made.stdout + made.stderr
    assert f"s3://{BUCKET}/backups/one/" in made.stdout
    keys = s3.keys(BUCKET, "backups/one/")
    assert f"backups/one/{MANIFEST}" in keys and len(keys) > 3

    elsewhere = tidings(grid, "backup", "--node", "2", "--to", "s3://someone-elses/backups/two")
    assert elsewhere.returncode == 1 and "not this node's bucket" in elsewhere.stderr
    assert not s3.keys("someone-elses", "") and not s3.keys(BUCKET, "backups/two")
    assert tidings(grid, "backup", "--node", "2", "--to", f"s3://{BUCKET}").returncode == 2     # no prefix

    grid.kill_storage(2)
    shutil.rmtree(grid.layout.base_dir / "node2")
    credentials = s3.env(BUCKET)
    restored = tidings(grid, "restore", "--node", "2", f"s3://{BUCKET}/backups/one", env=credentials)
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert "node 2 restored" in restored.stdout and credentials["TIDINGS_S3_SECRET_KEY"] not in restored.stdout
    grid.start_storage(2)
    assert subjects_on(grid.layout.storage_address(2), user_id) == subjects


def test_a_tampered_object_in_the_bucket_is_refused(grid: Grid, s3: S3Endpoint, tmp_path: Path) -> None:
    made = tidings(grid, "backup", "--node", "3", "--to", f"s3://{BUCKET}/backups/three")
    assert made.returncode == 0, made.stdout + made.stderr
    [victim] = sorted(k for k in s3.keys(BUCKET, "backups/three/") if k.endswith(".sst"))[:1]
    body = bytearray(s3.client.get_object(Bucket=BUCKET, Key=victim)["Body"].read())
    body[len(body) // 2] ^= 0xFF
    s3.client.put_object(Bucket=BUCKET, Key=victim, Body=bytes(body))
    target = tmp_path / "restored-node3"
    tampered = tidings(grid, "restore", "--node", "3", "--data-dir", str(target), f"s3://{BUCKET}/backups/three",
                       env=s3.env(BUCKET))
    assert tampered.returncode == 1 and "does not verify" in tampered.stderr, tampered.stderr
    assert "nothing was changed" in tampered.stderr and not target.exists()
    assert not any(p.name.startswith(target.name) for p in tmp_path.iterdir())   # no half-fetched copy left
