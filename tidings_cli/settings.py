"""The `tidings` command's defaults from the environment: which router, which base dir."""
from __future__ import annotations

from pathlib import Path

from tidings_runtime.settings import HostPort, TidingsSettings, setting


class CliSettings(TidingsSettings):
    """Defaults of `tidings --router` and `--base-dir`."""

    router: HostPort = setting("127.0.0.1:7000", "TIDINGS_ROUTER", help="router gRPC address")
    base_dir: Path = setting(Path("var"), "TIDINGS_VAR", help="local cluster data directory")
