"""A storage node's backup as files plus a manifest (sizes, SHA-256s, the node and its ring),
in a directory or under an S3 prefix: written by the node (storage_node/backup.py), checked and
restored by `tidings restore` (tidings_cli/backup.py). The manifest is written last, so a backup
without one is incomplete; a restore refuses a manifest that does not verify."""
from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

MANIFEST = "tidings-backup.json"
FORMAT = 1
CHUNK = 1 << 20


class BadBackup(Exception):
    """A backup that is incomplete, tampered with, or not the one asked for."""


@dataclass(frozen=True)
class BackupFile:
    path: str       # relative, '/'-separated
    size: int
    sha256: str


@dataclass(frozen=True)
class Manifest:
    node_id: str
    created_ms: int
    sequence: int               # RocksDB's last sequence number in the checkpoint
    ring_version: int
    ring_map: bytes             # the node's serialized tidings.v1.RingMap
    files: tuple[BackupFile, ...] = field(default_factory=tuple)

    def to_json(self) -> bytes:
        return json.dumps({
            "format": FORMAT, "node_id": self.node_id, "created_ms": self.created_ms, "sequence": self.sequence,
            "ring_version": self.ring_version, "ring_map": base64.b64encode(self.ring_map).decode(),
            "files": [{"path": f.path, "size": f.size, "sha256": f.sha256} for f in self.files],
        }, indent=1).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Manifest:
        try:
            d = json.loads(data)
            if d.get("format") != FORMAT:
                raise BadBackup(f"unknown backup format {d.get('format')!r}")
            files = tuple(BackupFile(str(f["path"]), int(f["size"]), str(f["sha256"])) for f in d["files"])
            manifest = cls(str(d["node_id"]), int(d["created_ms"]), int(d["sequence"]), int(d["ring_version"]),
                           base64.b64decode(d["ring_map"]), files)
        except (ValueError, KeyError, TypeError) as exc:
            raise BadBackup(f"the manifest does not parse: {exc}") from None
        for f in manifest.files:
            if not _safe(f.path):
                raise BadBackup(f"the manifest names a path outside the backup: {f.path!r}")
        return manifest


def _safe(path: str) -> bool:
    parts = path.split("/")
    return bool(path) and not path.startswith("/") and all(p not in ("", ".", "..") for p in parts) and path != MANIFEST


def file_digest(path: Path) -> tuple[int, str]:
    """(size, SHA-256 hex) of a file, read in chunks."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def describe(root: Path) -> tuple[BackupFile, ...]:
    """Every file under `root`, sized and hashed, in path order."""
    out = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        size, sha = file_digest(path)
        out.append(BackupFile(path.relative_to(root).as_posix(), size, sha))
    return tuple(out)


class Location(Protocol):
    """Where a backup lives: files put and got by relative path."""

    def put(self, local: Path, name: str) -> None: ...
    def get(self, name: str, local: Path) -> None: ...
    def read(self, name: str) -> bytes | None: ...      # None: absent
    def write(self, name: str, data: bytes) -> None: ...
    def names(self) -> Iterator[str]: ...
    def describe(self) -> str: ...


class DirectoryLocation:
    def __init__(self, root: Path) -> None:
        self.root = root

    def put(self, local: Path, name: str) -> None:
        target = self.root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(local, target)

    def get(self, name: str, local: Path) -> None:
        shutil.copyfile(self.root / name, local)

    def read(self, name: str) -> bytes | None:
        try:
            return (self.root / name).read_bytes()
        except FileNotFoundError:
            return None

    def write(self, name: str, data: bytes) -> None:
        _write_synced(self.root / name, data)

    def names(self) -> Iterator[str]:
        if self.root.is_dir():
            for path in self.root.rglob("*"):
                if path.is_file():
                    yield path.relative_to(self.root).as_posix()

    def describe(self) -> str:
        return str(self.root)


class S3Location:
    """Objects `prefix/name` in a bucket, through a boto3 S3 client."""

    def __init__(self, client: Any, bucket: str, prefix: str) -> None:
        self.client, self.bucket, self.prefix = client, bucket, prefix.strip("/") + "/"

    def put(self, local: Path, name: str) -> None:
        self.client.upload_file(str(local), self.bucket, self.prefix + name,
                                ExtraArgs={"ChecksumAlgorithm": "SHA256"})

    def get(self, name: str, local: Path) -> None:
        self.client.download_file(self.bucket, self.prefix + name, str(local))

    def read(self, name: str) -> bytes | None:
        try:
            body: bytes = self.client.get_object(Bucket=self.bucket, Key=self.prefix + name)["Body"].read()
        except self.client.exceptions.NoSuchKey:
            return None
        return body

    def write(self, name: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self.prefix + name, Body=data, ChecksumAlgorithm="SHA256")

    def names(self) -> Iterator[str]:
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix):
            for obj in page.get("Contents", ()):
                yield obj["Key"][len(self.prefix):]

    def describe(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


def s3_client(endpoint: str | None, region: str | None, access_key: str | None, secret_key: str | None) -> Any:
    import boto3
    from botocore.config import Config

    credentials: dict[str, Any] = {}
    if access_key or secret_key:   # else boto3's own chain
        credentials = {"aws_access_key_id": access_key, "aws_secret_access_key": secret_key}
    return boto3.client("s3", endpoint_url=endpoint, region_name=region, **credentials,
                        config=Config(retries={"max_attempts": 5, "mode": "standard"}))


def write_backup(checkpoint: Path, location: Location, manifest: Manifest) -> Manifest:
    """Put every file of `checkpoint`, then the manifest listing them (last: its presence
    says the backup is whole). Returns the manifest written."""
    files = describe(checkpoint)
    for f in files:
        location.put(checkpoint / f.path, f.path)
    whole = Manifest(manifest.node_id, manifest.created_ms, manifest.sequence, manifest.ring_version,
                     manifest.ring_map, files)
    location.write(MANIFEST, whole.to_json())
    return whole


def read_manifest(location: Location) -> Manifest:
    data = location.read(MANIFEST)
    if data is None:
        raise BadBackup(f"no {MANIFEST} in {location.describe()}: not a backup, or one that did not finish")
    return Manifest.from_json(data)


def restore(location: Location, data_dir: Path, *, node_id: str | None = None, force: bool = False) -> Manifest:
    """Bring `data_dir` back from the backup at `location`: the manifest read and, when
    `node_id` is given, checked to be that node's; every file fetched into a directory beside
    `data_dir` and checked against the manifest's size and SHA-256; only then `data_dir`
    replaced (renamed into place). A non-empty `data_dir` is refused unless `force`.
    Nothing is changed when anything fails."""
    manifest = read_manifest(location)
    if node_id is not None and manifest.node_id != node_id:
        raise BadBackup(f"{location.describe()} is node {manifest.node_id}'s backup, not node {node_id}'s")
    if data_dir.exists() and any(data_dir.iterdir()) and not force:
        raise BadBackup(f"{data_dir} is not empty: stop the node and pass --force to replace its data")
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{data_dir.name}.restore-", dir=data_dir.parent))
    try:
        for f in manifest.files:
            local = staging / f.path
            local.parent.mkdir(parents=True, exist_ok=True)
            try:
                location.get(f.path, local)
            except (OSError, FileNotFoundError) as exc:
                raise BadBackup(f"{f.path}: cannot be read from the backup ({exc})") from None
            except Exception as exc:  # boto3's ClientError: a missing object
                if type(exc).__name__ != "ClientError":
                    raise
                raise BadBackup(f"{f.path}: cannot be read from the backup ({exc})") from None
            size, sha = file_digest(local)
            if (size, sha) != (f.size, f.sha256):
                raise BadBackup(f"{f.path}: {size} bytes, SHA-256 {sha[:16]}..., but the manifest says "
                                f"{f.size} bytes, {f.sha256[:16]}...: the backup does not verify")
            _fsync(local)
        _fsync(staging)
        if data_dir.exists():
            old = data_dir.with_name(f".{data_dir.name}.replaced")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(data_dir, old)
            os.replace(staging, data_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(staging, data_dir)
        _fsync(data_dir.parent)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return manifest


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_synced(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync(path.parent)
