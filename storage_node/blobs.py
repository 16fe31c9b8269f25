"""The object store for large bodies: content-addressed (SHA-256), so a blob shared by
many mailboxes is stored once. A local directory by default; S3 through boto3.

A blob is durable (fsynced, or acknowledged by S3) before the batch that refers to it
is written, so a stored reference never points at nothing.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Protocol

from storage_node.errors import BlobMissing
from storage_node.settings import Settings


class BlobStore(Protocol):
    def put(self, data: bytes) -> str: ...
    def get(self, ref: str) -> bytes: ...


def blob_ref(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class LocalBlobStore:
    """Blobs as files `aa/bb/<sha256>` under one directory shared by the local nodes."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def _path(self, ref: str) -> Path:
        return self.root / ref[:2] / ref[2:4] / ref

    def put(self, data: bytes) -> str:
        ref = blob_ref(data)
        path = self._path(ref)
        if path.exists():
            return ref
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        return ref

    def get(self, ref: str) -> bytes:
        try:
            return self._path(ref).read_bytes()
        except FileNotFoundError as exc:
            raise BlobMissing(ref) from exc


class S3BlobStore:
    """Blobs as objects `blobs/<sha256>` in one bucket (any S3 API: AWS, MinIO, moto)."""

    def __init__(self, bucket: str, endpoint_url: str | None = None, prefix: str = "blobs/") -> None:
        import boto3

        self.bucket = bucket
        self.prefix = prefix
        self.client = boto3.client("s3", endpoint_url=endpoint_url)

    def put(self, data: bytes) -> str:
        ref = blob_ref(data)
        self.client.put_object(Bucket=self.bucket, Key=self.prefix + ref, Body=data)
        return ref

    def get(self, ref: str) -> bytes:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self.prefix + ref)["Body"].read()
        except self.client.exceptions.NoSuchKey as exc:
            raise BlobMissing(ref) from exc


def blob_store(root: Path, settings: Settings) -> BlobStore:
    """The S3 bucket when the settings name one, else the directory `root`."""
    if settings.s3_bucket:
        return S3BlobStore(settings.s3_bucket, settings.s3_endpoint)
    return LocalBlobStore(root)
