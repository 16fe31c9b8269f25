"""Fixtures for the SMTP edge's unit tests.

``fake_router`` is a TEST DOUBLE of the router's ``tidings.v1.Mail`` contract:
a real ``grpc.aio`` server on a loopback port that implements only
``CheckRecipient``, ``Deliver`` and ``Authenticate`` over an in-memory user
table, records every call, and can be told to fail or stall. It stands in for
the router in unit tests only; the cluster tests (test_smtp_cluster.py) run
against the real processes.

``edge`` runs the real :class:`smtp_edge.server.SmtpEdge` on port 0 in a
background event loop, so the tests talk to it with plain ``smtplib`` over
real sockets.
"""
from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import grpc
import pytest
from tidings.v1 import mail_pb2, mail_pb2_grpc, types_pb2

from smtp_edge.config import Settings
from smtp_edge.server import SmtpEdge

T = TypeVar("T")
HOSTED = "example.test"
USERS = {  # email -> (user id, password)
    "alice@example.test": ("00000000000000a1", "alice-secret"),
    "bob@example.test": ("00000000000000b2", "bob-secret"),
}


class LoopThread:
    """An asyncio loop in a daemon thread; ``run`` executes a coroutine there."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coroutine: Awaitable[T], timeout: float = 30) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)  # type: ignore[arg-type]

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        self.loop.close()


@dataclass
class FakeRouter(mail_pb2_grpc.MailServicer):
    """Test double of ``tidings.v1.Mail`` (see the module docstring)."""

    delivered: list[mail_pb2.DeliverRequest] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)
    fail_check: grpc.StatusCode | None = None
    fail_deliver: grpc.StatusCode | None = None
    fail_authenticate: grpc.StatusCode | None = None
    deliver_delay: float = 0.0
    deliver_started: threading.Event = field(default_factory=threading.Event)
    address: str = ""
    server: Any = None

    async def CheckRecipient(self, request: mail_pb2.CheckRecipientRequest,
                             context: grpc.aio.ServicerContext) -> mail_pb2.CheckRecipientResponse:
        self.checked.append(request.address)
        if self.fail_check is not None:
            await context.abort(self.fail_check, "injected")
        Status = mail_pb2.CheckRecipientResponse.Status
        if request.address in USERS:
            user_id, _ = USERS[request.address]
            return mail_pb2.CheckRecipientResponse(
                status=Status.LOCAL_USER,
                account=types_pb2.Account(user_id=user_id, email=request.address))
        if request.address.endswith("@" + HOSTED):
            return mail_pb2.CheckRecipientResponse(status=Status.UNKNOWN_USER)
        return mail_pb2.CheckRecipientResponse(status=Status.NOT_HOSTED)

    async def Deliver(self, request: mail_pb2.DeliverRequest,
                      context: grpc.aio.ServicerContext) -> mail_pb2.DeliverResponse:
        self.deliver_started.set()
        if self.deliver_delay:
            await asyncio.sleep(self.deliver_delay)
        if self.fail_deliver is not None:
            await context.abort(self.fail_deliver, "injected")
        self.delivered.append(request)
        return mail_pb2.DeliverResponse(deliveries=[
            mail_pb2.DeliverResponse.Delivery(recipient=r, user_id=USERS[r][0], id=request.entry_id)
            for r in request.recipients])

    async def Authenticate(self, request: mail_pb2.AuthenticateRequest,
                           context: grpc.aio.ServicerContext) -> types_pb2.Account:
        if self.fail_authenticate is not None:
            await context.abort(self.fail_authenticate, "injected")
        user = USERS.get(request.email)
        if user is None or user[1] != request.password:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "bad credentials")
        return types_pb2.Account(user_id=user[0], email=request.email)

    async def start(self) -> None:
        self.server = grpc.aio.server()
        mail_pb2_grpc.add_MailServicer_to_server(self, self.server)
        port = self.server.add_insecure_port("127.0.0.1:0")
        self.address = f"127.0.0.1:{port}"
        await self.server.start()

    async def stop(self) -> None:
        await self.server.stop(0)


@pytest.fixture
def down_router_address() -> str:
    """A loopback address where nothing listens: the router is down."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{probe.getsockname()[1]}"


@pytest.fixture(scope="module")
def loop_thread() -> Iterator[LoopThread]:
    thread = LoopThread()
    yield thread
    thread.close()


@pytest.fixture
def fake_router(loop_thread: LoopThread) -> Iterator[FakeRouter]:
    router = FakeRouter()
    loop_thread.run(router.start())
    yield router
    loop_thread.run(router.stop())


EdgeFactory = Callable[..., SmtpEdge]


@pytest.fixture
def start_edge(loop_thread: LoopThread, fake_router: FakeRouter,
               tmp_path: Path) -> Iterator[EdgeFactory]:
    """Start an edge with settings overridden by keyword, talking to ``fake_router``."""
    started: list[SmtpEdge] = []

    def start(**overrides: Any) -> SmtpEdge:
        settings = Settings(**{**dict(router=fake_router.address, port=0, submission_port=0, metrics_port=None,
                                      data_dir=tmp_path / "smtp", hostname="mx.example.test",
                                      rpc_timeout=2.0, deliver_timeout=2.0), **overrides})
        edge = SmtpEdge(settings)
        loop_thread.run(edge.start())
        started.append(edge)
        return edge

    yield start
    for edge in started:
        loop_thread.run(edge.stop(grace=2.0))


@pytest.fixture
def edge(start_edge: EdgeFactory) -> SmtpEdge:
    return start_edge()
