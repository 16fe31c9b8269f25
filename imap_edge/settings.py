"""Typed settings of the IMAP edge, on the shared settings base (flag > `TIDINGS_*`
environment > default)."""
from __future__ import annotations

import socket
from pathlib import Path

from pydantic import PositiveInt

from tidings_runtime.settings import Duration, HostPort, MetricsPort, Port, Seconds, ServerSettings, setting


class Settings(ServerSettings):
    """Tidings IMAP edge (IMAP4rev1 on the mailbox order)."""

    prog = "imap_edge"

    router: HostPort = setting("127.0.0.1:7000", "TIDINGS_ROUTER", help="router gRPC address")
    host: str = setting("127.0.0.1", "TIDINGS_IMAP_HOST", help="listening address")
    port: Port = setting(2143, "TIDINGS_IMAP_PORT", help="listening port (0: any)")
    tls_port: Port | None = setting(2993, "TIDINGS_IMAPS_PORT", off_flag="--no-tls-port",
                                    help="implicit-TLS IMAP port on the same host (0: any)")
    data_dir: Path = setting(Path("var/imap"), "TIDINGS_IMAP_DATA_DIR",
                             help="directory of the development TLS certificate (tls/cert.pem, tls/key.pem)")
    tls_cert: Path | None = setting(None, "TIDINGS_IMAP_TLS_CERT",
                                    help="TLS certificate chain (PEM); none: a self-signed one in --data-dir")
    tls_key: Path | None = setting(None, "TIDINGS_IMAP_TLS_KEY",
                                   help="TLS private key (PEM); none: in --tls-cert's file")
    hostname: str = setting(socket.gethostname(), "TIDINGS_IMAP_HOSTNAME",
                            help="name in the development certificate")
    pop3_port: Port | None = setting(2110, "TIDINGS_POP3_PORT", off_flag="--no-pop3",
                                     help="POP3 listening port on the same host (0: any)")
    metrics_port: MetricsPort = setting(9109, "TIDINGS_IMAP_METRICS_PORT", off_flag="--no-metrics",
                                        help="Prometheus /metrics port (0: any)")
    rpc_timeout: Seconds = setting(10.0, "TIDINGS_IMAP_RPC_TIMEOUT", help="seconds a router call may take")
    timeout: Duration = setting(1800.0, "TIDINGS_IMAP_TIMEOUT",
                                help="seconds a client may stay silent between commands (RFC 9051: at least 30 min)")
    idle_timeout: Duration = setting(1800.0, "TIDINGS_IMAP_IDLE_TIMEOUT",
                                     help="seconds an IDLE may last without DONE (clients renew every 29 min, RFC 2177)")
    max_user_connections: PositiveInt = setting(20, "TIDINGS_IMAP_MAX_USER_CONNECTIONS",
                                                help="IMAP sessions one user may have open on this edge at once "
                                                     "(a login past it: NO [LIMIT])")
    max_line: PositiveInt = setting(64 * 1024, "TIDINGS_IMAP_MAX_LINE", help="longest command line in bytes")
    max_literal: PositiveInt = setting(64 * 1024 * 1024, "TIDINGS_IMAP_MAX_LITERAL",
                                       help="largest literal (an APPENDed message) in bytes")
    plaintext_anywhere: bool = setting(False, "TIDINGS_IMAP_PLAINTEXT_ANYWHERE",
                                       help="allow LOGIN, AUTHENTICATE PLAIN and POP3 USER/PASS from non-loopback "
                                            "peers without TLS (off: loopback, or after TLS)")
