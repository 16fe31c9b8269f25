"""tidings_runtime/logs.py: the JSON line's fields, the context fields, and the request id
carried over real gRPC (a grpc.aio server on loopback with its interceptor, `request_metadata` on the calls)."""
from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from datetime import datetime

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from tidings_runtime import logs


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter("test_role"))
    logger = logging.getLogger("tests.logs")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield stream
    logger.removeHandler(handler)


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_line_has_the_fields_and_the_context(captured: io.StringIO) -> None:
    log = logging.getLogger("tests.logs")
    with logs.bound(request_id="r-1", user="u42"):
        log.info("hello %s", "there", extra={"status": 200})
    log.warning("after")
    first, second = lines(captured)
    assert first["msg"] == "hello there" and first["level"] == "info" and first["logger"] == "tests.logs"
    assert first["process"] == "test_role" and first["status"] == 200
    assert first["request_id"] == "r-1" and first["user"] == "u42"
    ts = str(first["ts"])
    assert ts.endswith("Z") and datetime.fromisoformat(ts).utcoffset() is not None
    assert "request_id" not in second and "user" not in second   # bound() restored the context


def test_an_exception_is_one_line(captured: io.StringIO) -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("tests.logs").exception("failed")
    (line,) = lines(captured)
    assert "ValueError: boom" in str(line["exc"])


def test_well_formed_request_ids() -> None:
    assert logs.well_formed("abc-123_x.y:z") == "abc-123_x.y:z"
    assert logs.well_formed("a" * 129) is None
    assert logs.well_formed("has space") is None
    assert logs.well_formed("new\nline") is None
    assert logs.well_formed(None) is None
    assert logs.well_formed(logs.new_request_id()) is not None


def test_text_format_keeps_the_fields() -> None:
    record = logging.makeLogRecord({"msg": "hi", "levelname": "INFO", "name": "x", "status": 201})
    with logs.bound(request_id="r-9"):
        text = logs.TextFormatter("role").format(record)
    assert "role INFO x: hi" in text and "request_id=r-9" in text and "status=201" in text


class _SeenHealth(health.aio.HealthServicer):
    """Answers Check with the request id its handler sees (as the service name's status)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str | None] = []

    async def Check(self, request: health_pb2.HealthCheckRequest, context: object) -> health_pb2.HealthCheckResponse:
        self.seen.append(logs.request_id.get())
        return health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING)


async def _round_trip() -> list[str | None]:
    server = grpc.aio.server(interceptors=[logs.RequestIdServerInterceptor()])
    servicer = _SeenHealth()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            with logs.bound(request_id="req-abc"):
                await stub.Check(health_pb2.HealthCheckRequest(), metadata=logs.request_metadata())
            await stub.Check(health_pb2.HealthCheckRequest(), metadata=logs.request_metadata())   # none set: none sent
            await stub.Check(health_pb2.HealthCheckRequest(), metadata=[("x-request-id", "bad id!")])
    finally:
        await server.stop(None)
    return servicer.seen


def test_the_request_id_crosses_grpc() -> None:
    assert asyncio.run(_round_trip()) == ["req-abc", None, None]


def test_setup_replaces_only_its_own_handler() -> None:
    root = logging.getLogger()
    other = logging.NullHandler()
    root.addHandler(other)
    before = list(root.handlers)
    level = root.level
    try:
        logs.setup("a", "warning", "json")
        logs.setup("b", "debug", "text")
        ours = [h for h in root.handlers if h not in before]
        assert len(ours) == 1 and isinstance(ours[0].formatter, logs.TextFormatter)
        assert other in root.handlers and root.level == logging.DEBUG
    finally:
        for handler in root.handlers:
            if handler not in before:
                root.removeHandler(handler)
        root.removeHandler(other)
        root.setLevel(level)
