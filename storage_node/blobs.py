"""The object store for large bodies: content-addressed (SHA-256), so a blob shared by
many mailboxes is stored once. A local directory by default; S3 through boto3.

A blob is durable (fsynced, or acknowledged by S3) before the batch that refers to it
is written, so a stored reference never points at nothing. Every put, of a new blob or of
one already held, sets the object's modification time to now: blob GC (storage_node/blob_gc.py)
never deletes an object modified within its grace period, so a blob being stored again
while a collection runs stays. Every call blocks: callers run them in a worker thread.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from storage_node.errors import BlobMissing
from storage_node.settings import Settings


class BlobStore(Protocol):
    def put(self, data: bytes) -> str: ...
    def get(self, ref: str) -> bytes: ...
    def objects(self) -> Iterator[tuple[str, float]]: ...       # every (ref, modified: Unix seconds)
    def modified(self, ref: str) -> float | None: ...           # None: no such blob
    def delete(self, ref: str) -> None: ...


def is_ref(name: str) -> bool:
    return len(name) == 64 and all(c in "0123456789abcdef" for c in name)


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
            try:
                os.utime(path)  # held already: now it is recent, out of reach of a collection running
                return ref
            except FileNotFoundError:
                pass  # collected between the two calls: write it again
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

    def objects(self) -> Iterator[tuple[str, float]]:
        for path in self.root.glob("??/??/*"):
            if is_ref(path.name):
                try:
                    yield path.name, path.stat().st_mtime
                except FileNotFoundError:
                    continue

    def modified(self, ref: str) -> float | None:
        try:
            return self._path(ref).stat().st_mtime
        except FileNotFoundError:
            return None

    def delete(self, ref: str) -> None:
        self._path(ref).unlink(missing_ok=True)


class S3BlobStore:
    """Blobs as objects `blobs/<sha256>` in one bucket (any S3 API: AWS, MinIO, moto).

    A put returns once S3 has acknowledged the object (S3 stores it durably before it
    answers), with the body's checksum sent along for S3 to verify; PutObject of a key that
    exists replaces it, so its LastModified is the latest put's."""

    def __init__(self, bucket: str, endpoint_url: str | None = None, prefix: str = "blobs/", *,
                 region: str | None = None, access_key: str | None = None, secret_key: str | None = None) -> None:
        import boto3
        from botocore.config import Config

        self.bucket = bucket
        self.prefix = prefix
        credentials: dict[str, Any] = {}
        if access_key or secret_key:  # else boto3's own chain
            credentials = {"aws_access_key_id": access_key, "aws_secret_access_key": secret_key}
        self.client = boto3.client(
            "s3", endpoint_url=endpoint_url, region_name=region, **credentials,
            config=Config(retries={"max_attempts": 5, "mode": "standard"}, connect_timeout=10, read_timeout=60,
                          max_pool_connections=32),
        )

    def put(self, data: bytes) -> str:
        ref = blob_ref(data)
        self.client.put_object(Bucket=self.bucket, Key=self.prefix + ref, Body=data, ChecksumAlgorithm="SHA256")
        return ref

    def get(self, ref: str) -> bytes:
        try:
            body: bytes = self.client.get_object(Bucket=self.bucket, Key=self.prefix + ref)["Body"].read()
            return body
        except self.client.exceptions.NoSuchKey as exc:
            raise BlobMissing(ref) from exc

    def objects(self) -> Iterator[tuple[str, float]]:
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix):
            for obj in page.get("Contents", ()):
                name = obj["Key"][len(self.prefix):]
                if is_ref(name):
                    yield name, obj["LastModified"].timestamp()

    def modified(self, ref: str) -> float | None:
        from botocore.exceptions import ClientError

        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self.prefix + ref)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NotFound"}:
                return None
            raise
        return float(head["LastModified"].timestamp())

    def delete(self, ref: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self.prefix + ref)


def blob_store(root: Path, settings: Settings) -> BlobStore:
    """The S3 bucket when the settings name one, else the directory `root`."""
    if settings.s3_bucket:
        return S3BlobStore(settings.s3_bucket, settings.s3_endpoint, region=settings.s3_region,
                           access_key=settings.s3_access_key, secret_key=settings.s3_secret_key)
    return LocalBlobStore(root)
