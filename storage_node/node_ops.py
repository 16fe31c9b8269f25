"""The NodeOps service (proto/tidings/v1/node_ops.proto): a node's backup (storage_node/backup.py)
and its own checks (storage_node/node_check.py), each off the event loop; one backup at a time."""
from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from typing import Any

import grpc

from storage_node import node_check
from storage_node.backup import BackupRefused, directory_location, take_backup
from storage_node.blobs import S3BlobStore
from storage_node.commit import GroupCommitter
from storage_node.engine import Engine
from tidings.v1 import node_ops_pb2, node_ops_pb2_grpc
from tidings_runtime.backups import Location, S3Location


class NodeOpsService(node_ops_pb2_grpc.NodeOpsServicer):
    def __init__(self, engine: Engine, committer: GroupCommitter, node_id: str, data_dir: Path) -> None:
        self.engine = engine
        self.committer = committer
        self.node_id = node_id
        self.data_dir = data_dir
        self._backing_up = asyncio.Lock()

    def _location(self, request: node_ops_pb2.BackupRequest) -> Location:
        if bool(request.directory) == bool(request.s3_prefix):
            raise BackupRefused("name a directory or an S3 prefix, one of them")
        if request.directory:
            return directory_location(request.directory)
        store = self.engine.blobs
        if not isinstance(store, S3BlobStore):
            raise BackupRefused("this node keeps no S3 bucket (--s3-bucket): back up to a directory")
        if request.s3_bucket and request.s3_bucket != store.bucket:
            raise BackupRefused(f"s3://{request.s3_bucket}: not this node's bucket ({store.bucket}); "
                                "a node backs up into its own bucket")
        location = S3Location(store.client, store.bucket, request.s3_prefix)
        if location.prefix.startswith(store.prefix):
            raise BackupRefused(f"{request.s3_prefix!r}: not under the blobs' prefix {store.prefix!r}")
        return location

    async def Backup(self, request: node_ops_pb2.BackupRequest, context: Any) -> node_ops_pb2.BackupReport:
        try:
            location = self._location(request)
            if self._backing_up.locked():
                raise BackupRefused("a backup of this node is running")
            async with self._backing_up:
                if request.s3_prefix and any(True for _ in await asyncio.to_thread(lambda: list(location.names()))):
                    raise BackupRefused(f"{location.describe()} holds objects already: name a new prefix")
                manifest = await asyncio.to_thread(take_backup, self.engine, self.data_dir, self.node_id, location)
        except BackupRefused as exc:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
        return node_ops_pb2.BackupReport(
            node_id=self.node_id, location=location.describe(), files=len(manifest.files),
            bytes=sum(f.size for f in manifest.files), sequence=manifest.sequence, ring_version=manifest.ring_version,
            manifest_sha256=hashlib.sha256(manifest.to_json()).hexdigest())

    async def CheckNode(self, request: node_ops_pb2.CheckNodeRequest, context: Any) -> node_ops_pb2.CheckNodeReport:
        check = await asyncio.to_thread(node_check.check_counters, self.engine)
        for partition in check.suspects:
            problems, repaired = await self.committer.submit(
                node_check.settle(self.engine, partition, request.repair), alone=True)
            check.problems.extend(problems)
            check.counters_repaired += repaired
        if not request.skip_blobs:
            check.blob_refs, missing = await asyncio.to_thread(node_check.blob_problems, self.engine)
            check.problems.extend(missing)
            check.unrepaired.extend(missing)
        return node_ops_pb2.CheckNodeReport(
            node_id=self.node_id, users=check.users, messages=check.messages, blob_refs=check.blob_refs,
            problems=check.problems, counters_repaired=check.counters_repaired, unrepaired=check.unrepaired)
