"""Fixtures for the SMTP edge's unit tests.

``fake_router`` is the router's test double, :class:`tests.fake_mail.FakeMail`, with two
users of ``example.test`` (alice, bob), served on the module's background loop; the
cluster tests (test_smtp_cluster.py) run against the real processes.

``edge`` runs the real :class:`smtp_edge.server.SmtpEdge` on port 0 in that background
event loop, so the tests talk to it with plain ``smtplib`` over real sockets.
"""
from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from smtp_edge.config import Settings
from smtp_edge.server import SmtpEdge
from tests.fake_mail import FakeMail, LoopThread

USERS = {  # email -> (user id, password)
    "alice@example.test": ("00000000000000a1", "alice-secret"),
    "bob@example.test": ("00000000000000b2", "bob-secret"),
}


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
def fake_router(loop_thread: LoopThread) -> Iterator[FakeMail]:
    fake = FakeMail()
    for email, (user_id, password) in USERS.items():
        fake.add_user(email, password, user_id=user_id)
    with fake.served_on(loop_thread):
        yield fake


EdgeFactory = Callable[..., SmtpEdge]


@pytest.fixture
def start_edge(loop_thread: LoopThread, fake_router: FakeMail,
               tmp_path: Path) -> Iterator[EdgeFactory]:
    """Start an edge with settings overridden by keyword, talking to ``fake_router``."""
    started: list[SmtpEdge] = []

    def start(**overrides: Any) -> SmtpEdge:
        settings = Settings(**{**dict(router=fake_router.address, port=0, submission_port=0, metrics_port=None,
                                      data_dir=tmp_path / "smtp", hostname="mx.example.test",
                                      rpc_timeout=2.0, deliver_timeout=2.0,
                                      virus_scan=False,  # test_virus*.py scan with a real clamd
                                      auth_checks=False),  # no DNS here: test_auth_*.py serve one
                                 **overrides})
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
