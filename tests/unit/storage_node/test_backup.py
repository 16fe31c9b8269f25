"""A node's backup and restore on a real in-process node: a checkpoint taken while messages
are being stored opens as a database holding every message acknowledged before it began; the
manifest names the node and its ring; a restore checks every file and refuses a tampered file
or manifest, another node's backup, and a non-empty data directory, changing nothing; a backup
to S3 (moto's server over HTTP) restores the same way."""
from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from search_node.index import COLUMN_FAMILIES as SEARCH_COLUMN_FAMILIES
from storage_node.backup import BackupRefused, directory_location, take_backup
from storage_node.blobs import LocalBlobStore
from storage_node.engine import Engine
from storage_node.settings import Settings
from tests.s3_server import ACCESS_KEY, REGION, SECRET_KEY, moto_s3
from tests.unit.storage_node.fixtures import USER, mid
from tests.unit.storage_node.test_replication_rpcs import Running, store
from tidings.v1 import node_ops_pb2, storage_pb2
from tidings_runtime.backups import MANIFEST, BadBackup, DirectoryLocation, S3Location, restore, s3_client


def message_ids(data_dir: Path, blobs: Path) -> set[str]:
    engine = Engine(data_dir, LocalBlobStore(blobs), extra_column_families=SEARCH_COLUMN_FAMILIES)
    try:
        return {r.id for r in engine.user_records(USER)}
    finally:
        engine.close()


async def backup_under_load(root: Path, target: Path) -> tuple[set[str], set[str]]:
    """(ids acknowledged before the backup began, ids acknowledged by the time it ended)."""
    acked: set[str] = set()
    async with Running(root, "n1") as node:
        await node.stub.PutRing(storage_pb2.RingMap(version=7, json='{"nodes": []}'))
        for n in range(20):
            await store(node, USER, n)
            acked.add(mid(n))
        stop = asyncio.Event()

        async def load() -> None:
            n = 1000
            while not stop.is_set():
                await store(node, USER, n)
                acked.add(mid(n))
                n += 1

        writer = asyncio.create_task(load())
        await asyncio.sleep(0.05)
        before = set(acked)
        await asyncio.to_thread(take_backup, node.node.engine, root / "n1", "n1", DirectoryLocation(target))
        after = set(acked)
        stop.set()
        await writer
    return before, after


def test_a_backup_under_load_restores_every_message_acknowledged_before_it(tmp_path: Path) -> None:
    target = tmp_path / "backup"
    before, after = asyncio.run(backup_under_load(tmp_path, target))
    manifest = json.loads((target / MANIFEST).read_text())
    assert manifest["node_id"] == "n1" and manifest["ring_version"] == 7
    assert {f["path"] for f in manifest["files"]} >= {"CURRENT"}
    restored = tmp_path / "restored"
    restore(DirectoryLocation(target), restored, node_id="n1")
    held = message_ids(restored, tmp_path / "blobs")
    assert before <= held <= after
    assert len(after) > len(before), "no delivery ran during the backup"


def test_restore_refuses_a_backup_that_does_not_verify_and_changes_nothing(tmp_path: Path) -> None:
    target = tmp_path / "backup"
    asyncio.run(backup_under_load(tmp_path, target))
    data_dir = tmp_path / "data"
    manifest = json.loads((target / MANIFEST).read_text())
    biggest = max(manifest["files"], key=lambda f: f["size"])

    with pytest.raises(BadBackup, match="node n1's backup, not node n2's"):
        restore(DirectoryLocation(target), data_dir, node_id="n2")
    tampered = bytearray((target / biggest["path"]).read_bytes())
    tampered[len(tampered) // 2] ^= 0xFF
    original = (target / biggest["path"]).read_bytes()
    (target / biggest["path"]).write_bytes(bytes(tampered))
    with pytest.raises(BadBackup, match="does not verify"):
        restore(DirectoryLocation(target), data_dir, node_id="n1")
    (target / biggest["path"]).write_bytes(original)
    edited = dict(manifest, files=[dict(f, size=f["size"] + 1) if f is biggest else f for f in manifest["files"]])
    (target / MANIFEST).write_text(json.dumps(edited))
    with pytest.raises(BadBackup, match="does not verify"):
        restore(DirectoryLocation(target), data_dir, node_id="n1")
    (target / MANIFEST).write_text(json.dumps(dict(manifest, files=[{"path": "../x", "size": 0, "sha256": ""}])))
    with pytest.raises(BadBackup, match="outside the backup"):
        restore(DirectoryLocation(target), data_dir, node_id="n1")
    (target / MANIFEST).unlink()
    with pytest.raises(BadBackup, match="did not finish"):
        restore(DirectoryLocation(target), data_dir, node_id="n1")
    assert not data_dir.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".data")] == []   # no staging left behind

    (target / MANIFEST).write_text(json.dumps(manifest))
    data_dir.mkdir()
    (data_dir / "keep").write_text("x")
    with pytest.raises(BadBackup, match="not empty"):
        restore(DirectoryLocation(target), data_dir, node_id="n1")
    assert [p.name for p in data_dir.iterdir()] == ["keep"]
    restore(DirectoryLocation(target), data_dir, node_id="n1", force=True)
    assert not (data_dir / "keep").exists() and (data_dir / "CURRENT").exists()


def test_a_backup_goes_only_to_an_empty_absolute_directory(tmp_path: Path) -> None:
    with pytest.raises(BackupRefused, match="absolute"):
        directory_location("relative/dir")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "f").write_text("x")
    with pytest.raises(BackupRefused, match="not an empty directory"):
        directory_location(str(tmp_path / "full"))


def test_a_backup_to_s3_restores(tmp_path: Path) -> None:
    with moto_s3() as s3:
        bucket = s3.bucket("tidings-backups")
        settings = Settings(hint_interval_s=3600, gc_interval_s=3600, s3_bucket=bucket, s3_endpoint=s3.url,
                            s3_region=REGION, s3_access_key=ACCESS_KEY, s3_secret_key=SECRET_KEY)

        async def scenario() -> node_ops_pb2.BackupReport:
            async with Running(tmp_path, "n1", settings=settings) as node:
                for n in range(10):
                    await store(node, USER, n)
                ops = node.node.node_ops
                return await ops.Backup(node_ops_pb2.BackupRequest(s3_prefix="backups/one"), None)

        report = asyncio.run(scenario())
        assert report.location == f"s3://{bucket}/backups/one/" and report.files > 0
        keys = s3.keys(bucket, "backups/one/")
        assert f"backups/one/{MANIFEST}" in keys and len(keys) == report.files + 1
        location = S3Location(s3_client(s3.url, REGION, ACCESS_KEY, SECRET_KEY), bucket, "backups/one")
        restore(location, tmp_path / "restored", node_id="n1")
        assert message_ids(tmp_path / "restored", tmp_path / "blobs") == {mid(n) for n in range(10)}
