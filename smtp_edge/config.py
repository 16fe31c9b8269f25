"""Settings of the SMTP edge, read once from the command line and the environment.

Every flag has an environment variable (``TIDINGS_ROUTER``, ``TIDINGS_SMTP_*``);
a flag given on the command line wins over the environment, which wins over
the default.
"""
from __future__ import annotations

import argparse
import os
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

DEFAULT_MAX_SIZE = 25 * 1024 * 1024


@dataclass(frozen=True)
class Settings:
    router: str = "127.0.0.1:7000"
    host: str = "127.0.0.1"
    port: int = 2525
    submission_port: int = 2587
    metrics_port: int = 9104          # 0: no metrics listener
    data_dir: Path = Path("var/smtp")
    max_size: int = DEFAULT_MAX_SIZE
    hostname: str = socket.gethostname()
    max_recipients: int = 100
    rpc_timeout: float = 5.0          # seconds, CheckRecipient and Authenticate
    deliver_timeout: float = 30.0     # seconds, Deliver (durable on W replicas)
    session_timeout: float = 300.0    # seconds of client silence (RFC 5321 4.5.3.2)


# flag -> (environment variable, type)
_OPTIONS: dict[str, tuple[str, type]] = {
    "router": ("TIDINGS_ROUTER", str),
    "host": ("TIDINGS_SMTP_HOST", str),
    "port": ("TIDINGS_SMTP_PORT", int),
    "submission_port": ("TIDINGS_SMTP_SUBMISSION_PORT", int),
    "metrics_port": ("TIDINGS_SMTP_METRICS_PORT", int),
    "data_dir": ("TIDINGS_SMTP_DATA_DIR", Path),
    "max_size": ("TIDINGS_SMTP_MAX_SIZE", int),
    "hostname": ("TIDINGS_SMTP_HOSTNAME", str),
    "max_recipients": ("TIDINGS_SMTP_MAX_RECIPIENTS", int),
    "rpc_timeout": ("TIDINGS_SMTP_RPC_TIMEOUT", float),
    "deliver_timeout": ("TIDINGS_SMTP_DELIVER_TIMEOUT", float),
    "session_timeout": ("TIDINGS_SMTP_SESSION_TIMEOUT", float),
}


def parse_settings(argv: Sequence[str] | None = None,
                   environ: Mapping[str, str] | None = None) -> Settings:
    """Build :class:`Settings` from ``argv`` (default ``sys.argv[1:]``) and ``environ``."""
    env = os.environ if environ is None else environ
    defaults = Settings()
    parser = argparse.ArgumentParser(
        prog="python -m smtp_edge",
        description="Tidings SMTP edge: MX (inbound) and submission listeners.")
    for name, (var, kind) in _OPTIONS.items():
        default = kind(env[var]) if var in env else getattr(defaults, name)
        parser.add_argument("--" + name.replace("_", "-"), dest=name, type=kind,
                            default=default, help=f"(env {var}; default {default})")
    args = parser.parse_args(argv)
    settings = Settings(**vars(args))
    if settings.max_size <= 0:
        parser.error("--max-size must be positive")
    return settings
