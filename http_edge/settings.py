"""Typed settings of the HTTP edge, on the shared settings base (flag > `TIDINGS_*`
environment > default). The token secret is `TIDINGS_TOKEN_SECRET` when set, else the
contents of `--token-secret-file` (32 random bytes written there when missing)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import NonNegativeInt, PositiveInt, ValidationInfo, field_validator

from tidings_runtime.settings import HostPort, MetricsPort, Port, Seconds, ServerSettings, setting

MIN_SECRET_BYTES = 16


class Settings(ServerSettings):
    """Tidings HTTP edge (REST API)."""

    prog = "http_edge"

    router: HostPort = setting("127.0.0.1:7000", "TIDINGS_ROUTER", help="router gRPC address")
    host: str = setting("127.0.0.1", "TIDINGS_HTTP_HOST", help="listening address")
    port: Port = setting(8080, "TIDINGS_HTTP_PORT", help="listening port (0: any)")
    metrics_host: str | None = setting(None, "TIDINGS_METRICS_HOST", validate_default=True,
                                       help="address of /metrics (default: the --host value)")
    metrics_port: MetricsPort = setting(9105, "TIDINGS_HTTP_METRICS_PORT", off_flag="--no-metrics",
                                        help="Prometheus /metrics port (0: any)")
    token_secret_file: Path = setting(Path("var/token.secret"), "TIDINGS_TOKEN_SECRET_FILE",
                                      help="the token signing secret (created when missing)")
    token_secret: bytes = setting(None, "TIDINGS_TOKEN_SECRET", cli=False, secret=True, validate_default=True,
                                  help="the token signing secret itself; the file is then not used")
    token_ttl: PositiveInt = setting(86400, "TIDINGS_TOKEN_TTL", help="seconds a token is valid")
    max_message_bytes: PositiveInt = setting(25 * 1024 * 1024, "TIDINGS_MAX_MESSAGE_BYTES",
                                             help="largest message sent through the API")
    rpc_timeout: Seconds = setting(10.0, "TIDINGS_RPC_TIMEOUT", help="seconds a router call may take")
    send_rate: NonNegativeInt = setting(60, "TIDINGS_HTTP_SEND_RATE",
                                        help="POST /v1/messages a user may make a minute, per edge process (0: no limit)")
    send_burst: PositiveInt = setting(20, "TIDINGS_HTTP_SEND_BURST", help="sends a user may make at once")
    event_streams: PositiveInt = setting(8, "TIDINGS_HTTP_EVENT_STREAMS",
                                         help="GET /v1/events streams a user may hold open at once, per edge process")

    @field_validator("metrics_host")
    @classmethod
    def _metrics_host(cls, value: str | None, info: ValidationInfo) -> str | None:
        return value or info.data.get("host")

    @field_validator("token_secret", mode="before")
    @classmethod
    def _secret(cls, value: Any, info: ValidationInfo) -> Any:
        if value:
            secret = value.encode() if isinstance(value, str) else value
        elif "token_secret_file" in info.data:
            try:
                secret = load_secret_file(info.data["token_secret_file"])
            except OSError as exc:
                raise ValueError(f"cannot read or create the secret file: {exc}") from None
        else:
            return value  # the file setting itself was not valid
        if len(secret) < MIN_SECRET_BYTES:
            raise ValueError(f"the token secret must be at least {MIN_SECRET_BYTES} bytes")
        return secret

    @property
    def max_request_bytes(self) -> int:
        """Largest accepted request body: a message's parts base64-encoded in JSON."""
        return self.max_message_bytes * 4 // 3 + 1024 * 1024


def load_secret_file(path: Path) -> bytes:
    """Read the token secret, creating it with 32 random bytes (mode 0600) if missing."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        secret = os.urandom(32)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process created it first: use theirs
            return path.read_bytes()
        with os.fdopen(fd, "wb") as f:
            f.write(secret)
            f.flush()
            os.fsync(f.fileno())
        return secret
