"""The `tidings` command's defaults from the environment: which router, which base dir, and
what the local cluster's SMTP edge checks (the children read the same variables)."""
from __future__ import annotations

from pathlib import Path

from tidings_runtime.settings import HostPort, TidingsSettings, setting


class CliSettings(TidingsSettings):
    """Defaults of `tidings --router` and `--base-dir`."""

    router: HostPort = setting("127.0.0.1:7000", "TIDINGS_ROUTER", help="router gRPC address")
    base_dir: Path = setting(Path("var"), "TIDINGS_VAR", help="local cluster data directory")
    virus_scan: bool = setting(True, "TIDINGS_VIRUS_SCAN", cli=False, help="the SMTP edge scans with clamd")
    dns: str = setting("", "TIDINGS_DNS", cli=False,
                       help="resolvers IP:PORT,...; the local cluster checks SPF/DKIM/DMARC only when set")
    # `tidings restore` from S3 reads the bucket itself (the node is stopped): the node's variables
    s3_endpoint: str | None = setting(None, "TIDINGS_S3_ENDPOINT", cli=False, help="the S3 API's URL")
    s3_region: str | None = setting(None, "TIDINGS_S3_REGION", cli=False, help="the bucket's region")
    s3_access_key: str | None = setting(None, "TIDINGS_S3_ACCESS_KEY", cli=False, secret=True, repr=False,
                                        help="S3 access key id")
    s3_secret_key: str | None = setting(None, "TIDINGS_S3_SECRET_KEY", cli=False, secret=True, repr=False,
                                        help="S3 secret access key")
