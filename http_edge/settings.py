"""Typed settings of the HTTP edge, read once at start.

Precedence: command line, then environment (`TIDINGS_*`), then defaults.

| flag | env | default |
|---|---|---|
| `--router` | `TIDINGS_ROUTER` | `127.0.0.1:7000` |
| `--host` | `TIDINGS_HTTP_HOST` | `127.0.0.1` |
| `--port` | `TIDINGS_HTTP_PORT` | `8080` (0: any free port) |
| `--metrics-host` | `TIDINGS_METRICS_HOST` | the `--host` value |
| `--metrics-port` | `TIDINGS_HTTP_METRICS_PORT` | `9105` (0: any free port, -1: off) |
| `--token-secret-file` | `TIDINGS_TOKEN_SECRET_FILE` | `var/token.secret` (32 random bytes written when missing) |
| (none) | `TIDINGS_TOKEN_SECRET` | unset; when set it is the secret and the file is not used |
| `--token-ttl` | `TIDINGS_TOKEN_TTL` | `86400` seconds |
| `--max-message-bytes` | `TIDINGS_MAX_MESSAGE_BYTES` | `26214400` (25 MiB) |
| `--rpc-timeout` | `TIDINGS_RPC_TIMEOUT` | `10` seconds |
| `--log-level` | `TIDINGS_LOG_LEVEL` | `info` |
"""
from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

MIN_SECRET_BYTES = 16


class SettingsError(ValueError):
    """A setting that cannot be used; the process exits with its message."""


@dataclass(frozen=True)
class Settings:
    token_secret: bytes
    router: str = "127.0.0.1:7000"
    host: str = "127.0.0.1"
    port: int = 8080
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 9105
    token_ttl: int = 86400
    max_message_bytes: int = 25 * 1024 * 1024
    rpc_timeout: float = 10.0
    log_level: str = "info"

    def __post_init__(self) -> None:
        if len(self.token_secret) < MIN_SECRET_BYTES:
            raise SettingsError(f"the token secret must be at least {MIN_SECRET_BYTES} bytes")
        if self.token_ttl <= 0:
            raise SettingsError("--token-ttl must be positive")
        if self.max_message_bytes <= 0:
            raise SettingsError("--max-message-bytes must be positive")
        if self.rpc_timeout <= 0:
            raise SettingsError("--rpc-timeout must be positive")

    @property
    def max_request_bytes(self) -> int:
        """Largest accepted request body: a message's parts base64-encoded in JSON."""
        return self.max_message_bytes * 4 // 3 + 1024 * 1024


def load_secret_file(path: Path) -> bytes:
    """Read the token secret, creating it with 32 random bytes (mode 0600) if missing."""
    try:
        secret = path.read_bytes()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        secret = os.urandom(32)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process created it first: use theirs
            return load_secret_file(path)
        with os.fdopen(fd, "wb") as f:
            f.write(secret)
            f.flush()
            os.fsync(f.fileno())
    if len(secret) < MIN_SECRET_BYTES:
        raise SettingsError(f"token secret file {path} holds fewer than {MIN_SECRET_BYTES} bytes")
    return secret


def _parser(env: Mapping[str, str]) -> argparse.ArgumentParser:
    def e(name: str, default: str) -> str:
        return env.get(name, default)

    p = argparse.ArgumentParser(prog="python -m http_edge", description="Tidings HTTP edge (REST API)")
    p.add_argument("--router", default=e("TIDINGS_ROUTER", "127.0.0.1:7000"), help="router gRPC address")
    p.add_argument("--host", default=e("TIDINGS_HTTP_HOST", "127.0.0.1"))
    p.add_argument("--port", type=int, default=int(e("TIDINGS_HTTP_PORT", "8080")))
    p.add_argument("--metrics-host", default=env.get("TIDINGS_METRICS_HOST"))
    p.add_argument("--metrics-port", type=int, default=int(e("TIDINGS_HTTP_METRICS_PORT", "9105")))
    p.add_argument("--token-secret-file", default=e("TIDINGS_TOKEN_SECRET_FILE", "var/token.secret"))
    p.add_argument("--token-ttl", type=int, default=int(e("TIDINGS_TOKEN_TTL", "86400")))
    p.add_argument(
        "--max-message-bytes", type=int, default=int(e("TIDINGS_MAX_MESSAGE_BYTES", str(25 * 1024 * 1024)))
    )
    p.add_argument("--rpc-timeout", type=float, default=float(e("TIDINGS_RPC_TIMEOUT", "10")))
    p.add_argument("--log-level", default=e("TIDINGS_LOG_LEVEL", "info"))
    return p


def from_command_line(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env
    try:
        args = _parser(env).parse_args(argv)
    except ValueError as exc:  # a malformed TIDINGS_* number
        raise SettingsError(str(exc)) from None
    if env.get("TIDINGS_TOKEN_SECRET"):
        secret = env["TIDINGS_TOKEN_SECRET"].encode()
    else:
        secret = load_secret_file(Path(args.token_secret_file))
    return Settings(
        token_secret=secret,
        router=args.router,
        host=args.host,
        port=args.port,
        metrics_host=args.metrics_host or args.host,
        metrics_port=args.metrics_port,
        token_ttl=args.token_ttl,
        max_message_bytes=args.max_message_bytes,
        rpc_timeout=args.rpc_timeout,
        log_level=args.log_level,
    )
