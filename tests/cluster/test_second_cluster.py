"""A second local cluster: `tidings cluster run --ip 127.0.0.2 --domain other.test --data DIR`
comes up beside the default one on the same port numbers, binds only its own address, hosts
only its own domain, and Ctrl-C stops it leaving nothing (the other cluster untouched)."""
from __future__ import annotations

from pathlib import Path

import grpc
import psutil

from tests.cluster.launching import ctrl_c, free_offset, launched, listeners, processes_of
from tidings.v1 import mail_pb2, mail_pb2_grpc
from tidings_cli.cluster import HOST, Layout

OTHER = "127.0.0.2"
Status = mail_pb2.CheckRecipientResponse.Status


def hosting(router: str, domain: str) -> bool:
    with grpc.insecure_channel(router) as channel:
        answer = mail_pb2_grpc.MailStub(channel).CheckRecipient(
            mail_pb2.CheckRecipientRequest(address=f"postmaster@{domain}"), timeout=10)
    return bool(answer.status != Status.NOT_HOSTED)


def bound_by(base_dir: Path) -> set[tuple[str, int]]:
    """The (address, port) pairs the processes of a cluster listen on."""
    pids = {p.pid for p in processes_of(base_dir)}
    return {(c.laddr.ip.removeprefix("::ffff:"), c.laddr.port) for c in psutil.net_connections(kind="tcp")
            if c.status == psutil.CONN_LISTEN and c.pid in pids}


def test_two_clusters_on_one_machine_with_the_same_port_numbers(tmp_path: Path) -> None:
    offset = free_offset()
    first_dir, second_dir = tmp_path / "var", tmp_path / "var-other"
    first, second = Layout.default(first_dir, offset), Layout.default(second_dir, offset, host=OTHER)
    with launched(first_dir, "--port-offset", str(offset)) as first_launcher:
        with launched(tmp_path / "unused", "--ip", OTHER, "--domain", "other.test", "--port-offset", str(offset),
                      data=second_dir) as second_launcher:
            assert hosting(second.router_address, "other.test")
            assert not hosting(second.router_address, "example.test")
            assert hosting(first.router_address, "example.test") and not hosting(first.router_address, "other.test")
            ours = bound_by(second_dir)
            assert {address for address, _ in ours} == {OTHER}, ours
            assert {second.router_port, second.smtp_port, second.http_port} <= {port for _, port in ours}

            assert ctrl_c(second_launcher) == 0
            assert processes_of(second_dir) == []
            assert not {(OTHER, port) for port in second.ports} & set(listeners())
        assert hosting(first.router_address, "example.test")  # the first cluster never noticed
        assert ctrl_c(first_launcher) == 0
    assert not {(HOST, port) for port in first.ports} & set(listeners())
