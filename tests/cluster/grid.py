"""A cluster for tests: real processes in a temporary directory, each binding port 0 and
reporting the port it got, as restartable node objects (after Tahoe-LAFS integration/grid.py).

A grid may bind another loopback address and host another domain; cross-cluster tests give
both grids one fixed SMTP port, the one the delivery worker connects to."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import grpc

from tidings.v1 import mail_pb2, mail_pb2_grpc, queue_pb2_grpc, types_pb2
from tidings_cli.cluster import DEFAULT_DOMAIN, HOST, Layout, LocalCluster

PASSWORD = "correct horse battery"  # what add_user gives a user unless told otherwise
EDGES = ("smtp", "http")


class Grid:
    """`args` adds flags to a process by name ("router", "outbound", ...); with an SMTP edge the
    grid starts clamd too (its test signatures: EICAR) unless `virus_scan` is false."""

    def __init__(self, base_dir: Path, edges: tuple[str, ...] = EDGES, router_args: tuple[str, ...] = (), *,
                 host: str = HOST, domain: str = DEFAULT_DOMAIN, smtp_port: int = 0,
                 args: dict[str, tuple[str, ...]] | None = None, virus_scan: bool = True) -> None:
        layout = replace(Layout.any_port(base_dir, host=host), smtp_port=smtp_port)
        # no DNS is served to the SMTP edge unless a test passes its own "smtp" flags (--dns)
        defaults = {"router": router_args, "smtp": ("--no-auth-checks",)}
        self.cluster = LocalCluster(layout, domains=(domain,), args={**defaults, **(args or {})},
                                    virus_scan=virus_scan)  # clamd before the SMTP edge (~0.1 s)
        self.domain = domain
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
    def host(self) -> str:
        return self.layout.host

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
    def imap_port(self) -> int:
        return self.layout.imap_port

    @property
    def imaps_port(self) -> int:
        return self.layout.imaps_port

    @property
    def pop3_port(self) -> int:
        return self.layout.pop3_port

    @property
    def mail(self) -> mail_pb2_grpc.MailStub:
        assert self._channel is not None
        return mail_pb2_grpc.MailStub(self._channel)

    @property
    def admin(self) -> mail_pb2_grpc.AdminStub:
        assert self._channel is not None
        return mail_pb2_grpc.AdminStub(self._channel)

    @property
    def queue(self) -> queue_pb2_grpc.QueueStub:
        assert self._channel is not None
        return queue_pb2_grpc.QueueStub(self._channel)

    def add_user(self, email: str, password: str = PASSWORD) -> types_pb2.Account:
        return self.admin.AddUser(mail_pb2.AddUserRequest(email=email, password=password), timeout=30)

    def start_router(self, name: str = "router-2") -> str:
        """A second router (another coordinator of the same replicas); its address."""
        return self.cluster.start_router(name)

    def restart_router(self) -> None:
        """SIGKILL the router, then start it again on the address the edges were given."""
        cluster = self.cluster
        cluster.processes["router"].kill()
        domains = [flag for domain in cluster.domains for flag in ("--domain", domain)]
        router = cluster._process("router", ["router", "--listen", self.router_address,
                                             "--nodes", self.layout.nodes_spec, *domains])
        cluster._start(router)
        cluster._wait_ready([router])

    def start_imap(self, router: str, name: str = "imap-2") -> int:
        """A second IMAP edge calling `router`; its port."""
        return self.cluster.start_imap(name, router)

    def kill_storage(self, index: int) -> None:
        self.cluster.kill_storage(index)

    def start_storage(self, index: int) -> None:
        self.cluster.start_storage(index)

    def kill(self, name: str) -> None:
        """SIGKILL process `name` ("outbound", "smtp", ...), as a crash would."""
        self.cluster.processes[name].kill()

    def restart_edge(self, name: str) -> None:
        """Start edge `name` again (after `kill`), once it serves."""
        self.cluster.start_edges((name,))

    def pid(self, name: str) -> int:
        popen = self.cluster.processes[name].popen
        assert popen is not None
        return popen.pid

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.tail()}" for p in self.cluster.processes.values())


@contextmanager
def running(base_dir: Path, edges: tuple[str, ...] = EDGES, router_args: tuple[str, ...] = (),
            **options: Any) -> Iterator[Grid]:
    """A started grid (`options` as Grid's), stopped (its processes gone) when the block ends."""
    grid = Grid(base_dir, edges, router_args, **options).start()
    try:
        yield grid
    finally:
        grid.stop()
