"""Settings (env + command line, the token secret file) and the client wrapper's
typed errors and pagers; plus readiness when no router listens."""
from __future__ import annotations

import asyncio
import socket
import stat
from pathlib import Path

import grpc
import httpx
import pytest

from http_edge.app import create_app
from http_edge.settings import Settings
from tidings.v1 import mail_pb2, types_pb2
from tidings_client import errors
from tidings_client.paging import MessagePager
from tidings_runtime.settings import SettingsError


def test_command_line_over_env_over_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "var" / "token.secret"
    for name, value in {"TIDINGS_ROUTER": "10.0.0.1:7000", "TIDINGS_HTTP_PORT": "9999",
                        "TIDINGS_TOKEN_SECRET_FILE": str(secret)}.items():
        monkeypatch.setenv(name, value)
    s = Settings.parse(["--port", "8181", "--metrics-port", "9105"])
    assert (s.router, s.port, s.host, s.metrics_host, s.metrics_port) == ("10.0.0.1:7000", 8181, "127.0.0.1",
                                                                          "127.0.0.1", 9105)
    assert len(s.token_secret) == 32 and secret.read_bytes() == s.token_secret
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert Settings.parse([]).token_secret == s.token_secret  # read back, not regenerated
    assert Settings.parse(["--no-metrics"]).metrics_port is None


def test_secret_from_env_and_too_short(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIDINGS_TOKEN_SECRET", "x" * 20)
    s = Settings.parse(["--token-secret-file", str(tmp_path / "unused")])
    assert s.token_secret == b"x" * 20 and not (tmp_path / "unused").exists()
    monkeypatch.setenv("TIDINGS_HTTP_PORT", "eighty")
    with pytest.raises(SettingsError, match="--port"):
        Settings.parse([])
    monkeypatch.setenv("TIDINGS_TOKEN_SECRET", "short")
    with pytest.raises(SettingsError, match="at least 16 bytes") as raised:
        Settings.parse(["--port", "80"])
    assert "short" not in str(raised.value)  # a secret is never echoed


class _FakeRpcError(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        (grpc.StatusCode.NOT_FOUND, errors.NotFound),
        (grpc.StatusCode.INVALID_ARGUMENT, errors.InvalidArgument),
        (grpc.StatusCode.UNAVAILABLE, errors.Unavailable),
        (grpc.StatusCode.UNAUTHENTICATED, errors.Unauthenticated),
        (grpc.StatusCode.ALREADY_EXISTS, errors.AlreadyExists),
        (grpc.StatusCode.DEADLINE_EXCEEDED, errors.DeadlineExceeded),
        (grpc.StatusCode.UNIMPLEMENTED, errors.Unimplemented),
    ],
)
def test_typed_errors(code: grpc.StatusCode, cls: type[errors.TidingsError]) -> None:
    err = errors.from_rpc_error(_FakeRpcError(code, "why"))
    assert type(err) is cls and err.code == code and err.message == "why"
    assert isinstance(err, errors.TidingsError)


def test_pager_hides_cursors() -> None:
    pages = {"": ("a", "b", "c1"), "c1": ("c", "d", "c2"), "c2": ("e", "", "")}
    asked: list[str] = []

    async def fetch(cursor: str) -> mail_pb2.MessagePage:
        asked.append(cursor)
        *ids, nxt = pages[cursor]
        return mail_pb2.MessagePage(messages=[types_pb2.MessageSummary(id=i) for i in ids if i],
                                    next_cursor=nxt, total=5)

    async def main() -> None:
        assert [s.id for s in await MessagePager(fetch).collect()] == ["a", "b", "c", "d", "e"]
        assert asked == ["", "c1", "c2"]
        asked.clear()
        assert [s.id async for s in MessagePager(fetch, max_items=3)] == ["a", "b", "c"]
        assert asked == ["", "c1"]  # stops fetching once it has enough

    asyncio.run(main())


def test_readyz_503_without_router() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there

    async def main() -> None:
        app = create_app(Settings(token_secret=b"k" * 32, router=f"127.0.0.1:{port}", rpc_timeout=2))
        async with app.router.lifespan_context(app):
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://edge") as c:
                r = await c.get("/readyz")
                assert r.status_code == 503 and r.json()["error"]["code"] == "unavailable"
                assert r.headers["retry-after"] == "1"

    asyncio.run(main())
