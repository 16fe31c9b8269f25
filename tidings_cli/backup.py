"""`tidings backup` and `tidings restore`: a storage node's database as a consistent checkpoint
and back (docs/architecture.md, "Backup, restore and verification").

`backup` asks each node named (or every node of the ring, one after another) to checkpoint its
RocksDB and write it, manifest last, to a directory on its host or under a prefix of its own S3
bucket. `restore` runs on a stopped node's host: it reads the manifest, fetches and checks every
file, and only then puts the data directory in place; start the node, then `tidings repair`.
Exit codes: 0 done, 1 a node failed or the backup does not verify, 2 bad arguments."""
from __future__ import annotations

import argparse
import fcntl
import os
import sys
from pathlib import Path
from typing import Any

import grpc

from tidings.v1 import mail_pb2, mail_pb2_grpc, node_ops_pb2, node_ops_pb2_grpc, storage_pb2
from tidings_runtime.backups import BadBackup, DirectoryLocation, Location, S3Location, restore, s3_client

BACKUP_TIMEOUT_S = 3600.0


def ring(router: str) -> list[mail_pb2.RingReport.Node]:
    with grpc.insecure_channel(router) as channel:
        return list(mail_pb2_grpc.AdminStub(channel).DescribeRing(mail_pb2.DescribeRingRequest(), timeout=30).nodes)


def cmd_backup(args: argparse.Namespace) -> int:
    if (args.node is None) == (not args.all) or bool(args.to) == bool(args.s3_prefix):
        print("name --node ID or --all, and --to DIR or --s3-prefix PREFIX", file=sys.stderr)
        return 2
    nodes = [n for n in ring(args.router) if args.all or n.node_id == args.node]
    if not nodes:
        print(f"no node {args.node} in the ring", file=sys.stderr)
        return 2
    bucket, prefix = "", args.s3_prefix
    if args.to and args.to.startswith("s3://"):
        try:
            bucket, prefix = s3_address(args.to)
        except BadBackup as exc:
            print(exc, file=sys.stderr)
            return 2
    failed = 0
    for node in nodes:
        where = node_ops_pb2.BackupRequest()
        if prefix:
            where.s3_bucket = bucket
            where.s3_prefix = f"{prefix.rstrip('/')}/node-{node.node_id}" if args.all else prefix
        else:
            where.directory = str(Path(args.to, f"node-{node.node_id}") if args.all else Path(args.to))
        try:
            with grpc.insecure_channel(node.address) as channel:
                report = node_ops_pb2_grpc.NodeOpsStub(channel).Backup(where, timeout=BACKUP_TIMEOUT_S)
        except grpc.RpcError as exc:
            print(f"node {node.node_id}: backup failed: {exc.code().name}: {exc.details()}", file=sys.stderr)
            failed += 1
            continue
        print(f"node {report.node_id}: {report.files} files, {report.bytes} bytes to {report.location} "
              f"(sequence {report.sequence}, ring version {report.ring_version}, manifest {report.manifest_sha256})")
    return 1 if failed else 0


def s3_address(text: str) -> tuple[str, str]:
    """(bucket, prefix) of `s3://BUCKET/PREFIX`; BadBackup without a bucket or a prefix."""
    bucket, _, prefix = text[len("s3://"):].partition("/")
    if not bucket or not prefix.strip("/"):
        raise BadBackup(f"{text}: name s3://BUCKET/PREFIX")
    return bucket, prefix


def location_of(source: str, args: argparse.Namespace) -> Location:
    if source.startswith("s3://"):
        bucket, prefix = s3_address(source)
        s = args.settings
        client = s3_client(args.s3_endpoint or s.s3_endpoint, args.s3_region or s.s3_region, s.s3_access_key,
                           s.s3_secret_key)
        return S3Location(client, bucket, prefix)
    return DirectoryLocation(Path(source))


def held_open(data_dir: Path) -> bool:
    """Whether a process holds the database's LOCK (RocksDB locks it with fcntl while open)."""
    lock = data_dir / "LOCK"
    if not lock.exists():
        return False
    fd = os.open(lock, os.O_RDWR)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    else:
        fcntl.lockf(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def cmd_restore(args: argparse.Namespace) -> int:
    data_dir: Path = args.data_dir or args.base_dir / f"node{args.node}"
    try:
        if held_open(data_dir):
            raise BadBackup(f"{data_dir} is open: stop node {args.node} first")
        manifest = restore(location_of(args.source, args), data_dir, node_id=str(args.node), force=args.force)
    except BadBackup as exc:
        print(f"tidings restore: {exc}; nothing was changed", file=sys.stderr)
        return 1
    ring_map = storage_pb2.RingMap()
    ring_map.ParseFromString(manifest.ring_map)
    print(f"node {manifest.node_id} restored into {data_dir}: {len(manifest.files)} files, "
          f"{sum(f.size for f in manifest.files)} bytes, sequence {manifest.sequence}; "
          f"it held ring map version {ring_map.version}")
    print("start the node, then run `tidings repair` to bring it up to date from its replicas")
    return 0


def add_parsers(sub: Any) -> None:
    backup = sub.add_parser("backup", help="checkpoint storage nodes' databases to a directory or S3")
    backup.add_argument("--node", metavar="ID", help="the node to back up")
    backup.add_argument("--all", action="store_true", help="every node of the ring, one after another")
    backup.add_argument("--to", metavar="DIR|s3://BUCKET/PREFIX",
                        help="an absolute directory on each node's host, which must not exist or be empty, "
                             "or a new prefix in the node's own S3 bucket (with --all: .../node-ID)")
    backup.add_argument("--s3-prefix", metavar="PREFIX", help="a new key prefix in the node's own S3 bucket, "
                        "whichever it is (with --all: PREFIX/node-ID)")
    backup.set_defaults(func=cmd_backup)

    rest = sub.add_parser("restore", help="bring a stopped node's data directory back from its backup")
    rest.add_argument("source", help="the backup: a directory, or s3://BUCKET/PREFIX (credentials from "
                      "TIDINGS_S3_ACCESS_KEY/_SECRET_KEY or boto3's chain)")
    rest.add_argument("--node", required=True, metavar="ID", help="the node restored: the backup must be its")
    rest.add_argument("--data-dir", type=Path, help="its data directory (default: BASE_DIR/nodeID)")
    rest.add_argument("--force", action="store_true", help="replace a data directory that is not empty")
    rest.add_argument("--s3-endpoint", help="the S3 API's URL (default TIDINGS_S3_ENDPOINT)")
    rest.add_argument("--s3-region", help="the bucket's region (default TIDINGS_S3_REGION)")
    rest.set_defaults(func=cmd_restore)
