"""A cluster for tests: real processes in a temporary directory, each binding port 0 and
reporting the port it got, as restartable node objects (after Tahoe-LAFS integration/grid.py)."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc

from tidings.v1 import mail_pb2, mail_pb2_grpc, types_pb2
from tidings_cli.cluster import Layout, LocalCluster

PASSWORD = "correct horse battery"  # what add_user gives a user unless told otherwise

class Grid:
    def __init__(self, base_dir: Path, edges: tuple[str, ...] = ("smtp", "http"),
                 router_args: tuple[str, ...] = ()) -> None:
        self.cluster = LocalCluster(Layout.any_port(base_dir), router_args=router_args)
        self.edges = edges
        self._channel: grpc.Channel | None = None

    def start(self) -> Grid:
        try:
            self.cluster.start(edges=self.edges)
        except Exception:
            self.stop()
            raise
        self._channel = grpc.insecure_channel(self.router_address)
        return self

    def stop(self) -> None:
        if self._channel is not None:
            self._channel.close()
        self.cluster.stop()

    @property
    def layout(self) -> Layout:
        """The real ports, as the processes reported them."""
        return self.cluster.layout

    @property
    def router_address(self) -> str:
        return self.layout.router_address

    @property
    def smtp_port(self) -> int:
        return self.layout.smtp_port

    @property
    def submission_port(self) -> int:
        return self.layout.submission_port

    @property
    def http_url(self) -> str:
        return self.layout.http_url

    @property
    def mail(self) -> mail_pb2_grpc.MailStub:
        assert self._channel is not None
        return mail_pb2_grpc.MailStub(self._channel)

    @property
    def admin(self) -> mail_pb2_grpc.AdminStub:
        assert self._channel is not None
        return mail_pb2_grpc.AdminStub(self._channel)

    def add_user(self, email: str, password: str = PASSWORD) -> types_pb2.Account:
        return self.admin.AddUser(mail_pb2.AddUserRequest(email=email, password=password), timeout=30)

    def kill_storage(self, index: int) -> None:
        self.cluster.kill_storage(index)

    def start_storage(self, index: int) -> None:
        self.cluster.start_storage(index)

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.tail()}" for p in self.cluster.processes.values())


@contextmanager
def running(base_dir: Path, edges: tuple[str, ...] = ("smtp", "http"),
            router_args: tuple[str, ...] = ()) -> Iterator[Grid]:
    """A started grid, stopped (its processes gone) when the block ends."""
    grid = Grid(base_dir, edges, router_args).start()
    try:
        yield grid
    finally:
        grid.stop()
