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
