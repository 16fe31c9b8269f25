"""Settings of the SMTP edge (`TIDINGS_ROUTER`, `TIDINGS_SMTP_*`), on the shared
settings base: a flag wins over the environment, which wins over the default."""
from __future__ import annotations

import socket
from pathlib import Path

from pydantic import PositiveInt

from tidings_runtime.settings import HostPort, MetricsPort, Port, Seconds, ServerSettings, setting

DEFAULT_MAX_SIZE = 25 * 1024 * 1024


class Settings(ServerSettings):
    """Tidings SMTP edge: MX (inbound) and submission listeners."""

    prog = "smtp_edge"

    router: HostPort = setting("127.0.0.1:7000", "TIDINGS_ROUTER", help="router gRPC address")
    host: str = setting("127.0.0.1", "TIDINGS_SMTP_HOST", help="address of both listeners and metrics")
    port: Port = setting(2525, "TIDINGS_SMTP_PORT", help="MX port (0: any)")
    submission_port: Port = setting(2587, "TIDINGS_SMTP_SUBMISSION_PORT", help="submission port (0: any)")
    metrics_port: MetricsPort = setting(9104, "TIDINGS_SMTP_METRICS_PORT", off_flag="--no-metrics",
                                        help="Prometheus /metrics port (0: any)")
    data_dir: Path = setting(Path("var/smtp"), "TIDINGS_SMTP_DATA_DIR", help="the dev TLS certificate's directory")
    max_size: PositiveInt = setting(DEFAULT_MAX_SIZE, "TIDINGS_SMTP_MAX_SIZE", help="largest message, bytes")
    hostname: str = setting(socket.gethostname(), "TIDINGS_SMTP_HOSTNAME", help="name in the greeting and EHLO")
    max_recipients: PositiveInt = setting(100, "TIDINGS_SMTP_MAX_RECIPIENTS", help="RCPTs a message may have")
    rpc_timeout: Seconds = setting(5.0, "TIDINGS_SMTP_RPC_TIMEOUT",
                                   help="seconds for CheckRecipient and Authenticate")
    deliver_timeout: Seconds = setting(30.0, "TIDINGS_SMTP_DELIVER_TIMEOUT",
                                       help="seconds for Deliver (durable on W replicas)")
    session_timeout: Seconds = setting(300.0, "TIDINGS_SMTP_SESSION_TIMEOUT",
                                       help="seconds of client silence (RFC 5321 4.5.3.2)")
