"""A node's backup: a consistent RocksDB checkpoint of its database (every column family at one
point, through rocksdict.Checkpoint), copied to a directory on its host or uploaded under a
prefix of its S3 bucket, with the manifest (tidings_runtime/backups.py) written last."""
from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from rocksdict import Checkpoint

from storage_node import keys
from storage_node.engine import Engine
from tidings.v1 import storage_pb2
from tidings_runtime.backups import DirectoryLocation, Location, Manifest, write_backup


class BackupRefused(Exception):
    """A backup asked for where it cannot be written."""


def directory_location(directory: str) -> DirectoryLocation:
    root = Path(directory)
    if not root.is_absolute():
        raise BackupRefused(f"{directory!r}: name an absolute directory on the node's host")
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise BackupRefused(f"{directory}: exists and is not an empty directory")
    return DirectoryLocation(root)


def take_backup(engine: Engine, data_dir: Path, node_id: str, location: Location) -> Manifest:
    """Checkpoint the database beside `data_dir` (same file system: hard links, no copy), put it
    at `location`, manifest last; the checkpoint is removed afterwards. Blocking: run it in a thread."""
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{data_dir.name}.checkpoint-", dir=data_dir.parent))
    try:
        checkpoint = scratch / "db"
        ring_map = engine.get(keys.CF_META, keys.RING_KEY) or b""
        ring = storage_pb2.RingMap()
        ring.ParseFromString(ring_map)
        db = engine._db   # rocksdict's Rdict: the checkpoint is of the whole database
        sequence = db.latest_sequence_number()   # the checkpoint holds at least this
        Checkpoint(db).create_checkpoint(str(checkpoint))
        manifest = Manifest(node_id=node_id, created_ms=int(time.time() * 1000), sequence=sequence,
                            ring_version=ring.version, ring_map=ring_map)
        return write_backup(checkpoint, location, manifest)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
