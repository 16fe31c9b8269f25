"""A storage node's settings: where it listens and keeps its data, and its tunables."""
from __future__ import annotations

from pathlib import Path

from tidings_runtime.settings import HostPort, MetricsPort, Seconds, ServerSettings, setting


class Settings(ServerSettings):
    """Run one Tidings storage node."""

    prog = "storage_node"

    node_id: str = setting("1", "TIDINGS_NODE_ID", help="this node's id in the ring", min_length=1)
    listen: HostPort = setting("127.0.0.1:7101", "TIDINGS_STORAGE_LISTEN", help="gRPC address (port 0: any)")
    data_dir: Path = setting(Path("var/node1"), "TIDINGS_DATA_DIR", help="RocksDB directory")
    blob_dir: Path = setting(Path("var/blobs"), "TIDINGS_BLOB_DIR", help="object store directory")
    s3_bucket: str | None = setting(None, "TIDINGS_S3_BUCKET", help="keep blobs in this S3 bucket instead")
    s3_endpoint: str | None = setting(None, "TIDINGS_S3_ENDPOINT", help="the S3 API's URL (MinIO, ...)")
    s3_region: str | None = setting(None, "TIDINGS_S3_REGION", help="the bucket's region (default: boto3's)")
    # credentials from the environment only (no flag: a flag shows in `ps`), never echoed;
    # unset: boto3's own chain (AWS_* variables, ~/.aws, an instance role)
    s3_access_key: str | None = setting(None, "TIDINGS_S3_ACCESS_KEY", cli=False, secret=True, repr=False,
                                        help="S3 access key id")
    s3_secret_key: str | None = setting(None, "TIDINGS_S3_SECRET_KEY", cli=False, secret=True, repr=False,
                                        help="S3 secret access key")
    blob_grace_s: Seconds = setting(86400.0, "TIDINGS_BLOB_GRACE_S",
                                    help="seconds an unreferenced blob is kept before blob GC deletes it (1 day)")
    metrics_port: MetricsPort = setting(None, "TIDINGS_METRICS_PORT", off_flag="--no-metrics",
                                        help="Prometheus /metrics port (0: any)")
    hint_interval_s: Seconds = setting(1.0, "TIDINGS_HINT_INTERVAL_S", help="seconds between hint replay rounds")
    gc_interval_s: Seconds = setting(3600.0, "TIDINGS_GC_INTERVAL_S", help="seconds between garbage collections")
    tombstone_grace_s: Seconds = setting(864000.0, "TIDINGS_TOMBSTONE_GRACE_S",
                                         help="seconds tombstones and hints live (10 days)")
    index_interval_s: Seconds = setting(0.2, "TIDINGS_INDEX_INTERVAL_S",
                                        help="seconds between rounds sealing search postings")
    order_keep_slots: int = setting(100_000, "TIDINGS_ORDER_KEEP_SLOTS", ge=1,
                                    help="chosen mailbox-order slots kept per user, for replicas that missed some")
    order_keep_changes: int = setting(100_000, "TIDINGS_ORDER_KEEP_CHANGES", ge=1,
                                      help="change-feed rows kept per user (older states must resync)")

    @property
    def grace_ms(self) -> int:
        return int(self.tombstone_grace_s * 1000)
