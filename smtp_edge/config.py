"""Settings of the SMTP edge (`TIDINGS_ROUTER`, `TIDINGS_SMTP_*`), on the shared
settings base: a flag wins over the environment, which wins over the default."""
from __future__ import annotations

import socket
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, NonNegativeInt, PositiveInt
from pydantic_settings import NoDecode

from smtp_edge.pipeline.virus import parse_clamd_address
from tidings_runtime.dns import Resolvers
from tidings_runtime.settings import HostPort, MetricsPort, Port, Seconds, ServerSettings, setting

DEFAULT_MAX_SIZE = 25 * 1024 * 1024
DEFAULT_CLAMD = "unix:var/clamd/clamd.sock"   # the local cluster's clamd (tidings_cli/cluster.py)

ClamdAddress = Annotated[str, AfterValidator(parse_clamd_address)]


def _zones(value: object) -> object:
    """`zen.example,bl.example` (the environment) or a list (flags) as zone names."""
    if isinstance(value, str):
        return tuple(z.strip().rstrip(".").lower() for z in value.split(",") if z.strip())
    return value


OptionalUrl = Annotated[str | None, BeforeValidator(lambda value: None if value == "" else value)]


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
    lookup_ttl: float = setting(60.0, "TIDINGS_SMTP_LOOKUP_TTL", ge=0,
                                help="seconds a recipient found to be a user here is believed without asking "
                                     "the router again (0: ask every time)")
    deliver_timeout: Seconds = setting(30.0, "TIDINGS_SMTP_DELIVER_TIMEOUT",
                                       help="seconds for Deliver (durable on W replicas)")
    submission_rate: NonNegativeInt = setting(60, "TIDINGS_SMTP_SUBMISSION_RATE",
                                              help="messages a user may submit a minute, per edge process (0: no limit)")
    submission_burst: PositiveInt = setting(20, "TIDINGS_SMTP_SUBMISSION_BURST", help="messages a user may submit at once")
    dedupe: bool = setting(True, "TIDINGS_SMTP_DEDUPE", help="deliver a retried transaction (same envelope and bytes "
                           "within 3 days) once")
    session_timeout: Seconds = setting(300.0, "TIDINGS_SMTP_SESSION_TIMEOUT",
                                       help="seconds of client silence (RFC 5321 4.5.3.2)")
    # content scanning (smtp_edge/pipeline/virus.py, rspamd.py)
    virus_scan: bool = setting(True, "TIDINGS_VIRUS_SCAN", help="scan every message with clamd (off: no scanning, "
                               "a WARNING at start)")
    clamd: ClamdAddress = setting(DEFAULT_CLAMD, "TIDINGS_CLAMD", help="clamd's socket: unix:/path or tcp:HOST:PORT")
    clamd_timeout: Seconds = setting(30.0, "TIDINGS_CLAMD_TIMEOUT", help="seconds for one clamd scan")
    rspamd: OptionalUrl = setting(None, "TIDINGS_RSPAMD", help="rspamd's URL, e.g. http://127.0.0.1:11333 (none: off)")
    rspamd_timeout: Seconds = setting(10.0, "TIDINGS_RSPAMD_TIMEOUT", help="seconds for one rspamd check")
    # sender authentication on port 2525 (smtp_edge/pipeline/auth.py)
    auth_checks: bool = setting(True, "TIDINGS_SMTP_AUTH_CHECKS", off_flag="--no-auth-checks",
                                help="check SPF, DKIM and DMARC on port 2525")
    authserv_id: str | None = setting(None, "TIDINGS_SMTP_AUTHSERV_ID",
                                      help="the authserv-id of our Authentication-Results (none: the hostname)")
    dns: Resolvers = setting(None, "TIDINGS_DNS", help="resolvers IP:PORT[,IP:PORT] (none: the system's)")
    dns_timeout: Seconds = setting(5.0, "TIDINGS_DNS_TIMEOUT", help="seconds for one DNS query to one server")
    dnsbl: Annotated[tuple[str, ...], NoDecode, BeforeValidator(_zones)] = setting(
        (), "TIDINGS_DNSBL", help="DNS blocklist zones to look the client up in, comma-separated (none: off)")
