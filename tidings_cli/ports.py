"""Which process holds a TCP port: the launcher refuses to start on a taken port
instead of adopting whatever listens there."""
from __future__ import annotations

from collections.abc import Iterable

import psutil


class PortsTaken(Exception):
    """Ports the local cluster needs are held by other processes."""

    def __init__(self, holders: dict[int, str]) -> None:
        self.holders = holders
        by_holder: dict[str, list[int]] = {}
        for port, who in sorted(holders.items()):
            by_holder.setdefault(who, []).append(port)
        super().__init__("; ".join(f"{'port' if len(ports) == 1 else 'ports'} {', '.join(map(str, ports))} "
                                   f"taken by {who}" for who, ports in by_holder.items()))


def _describe(pid: int | None) -> str:
    if pid is None:
        return "a process this user cannot see"
    try:
        command = " ".join(psutil.Process(pid).cmdline())
    except psutil.Error:
        command = "?"
    return f"pid {pid} ({command})"


def check_free(host: str, ports: Iterable[int]) -> None:
    """Raise PortsTaken naming every port of `ports` that something listens on at `host`
    (or at every address)."""
    wanted = set(ports) - {0}
    addresses = {host, "0.0.0.0", "::"}
    listening = [(c.laddr, c.pid) for c in psutil.net_connections(kind="tcp") if c.status == psutil.CONN_LISTEN]
    holders = {laddr[1]: _describe(pid) for laddr, pid in listening
               if len(laddr) == 2 and laddr[1] in wanted
               and laddr[0].removeprefix("::ffff:") in addresses}  # gRPC listens on IPv4-mapped IPv6
    if holders:
        raise PortsTaken(holders)
