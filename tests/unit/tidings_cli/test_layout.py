"""The launcher's layout carries its host (a second cluster on 127.0.0.2, same port numbers),
survives cluster.json, and the port check looks at that host only."""
from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tidings_cli.cluster import HOST, Layout, LocalCluster
from tidings_cli.main import build_parser
from tidings_cli.ports import PortsTaken, check_free

OTHER = "127.0.0.2"


def test_every_address_of_a_layout_is_on_its_host() -> None:
    layout = Layout.default(Path("var-other"), host=OTHER)
    assert layout.router_address == f"{OTHER}:7000" and layout.storage_address(2) == f"{OTHER}:7102"
    assert layout.http_url == f"http://{OTHER}:8080"
    assert layout.nodes_spec.startswith(f"1={OTHER}:7101@zone-a,")
    assert layout.ports == Layout.default(Path("var")).ports  # the same port numbers
    assert Layout.default(Path("var")).host == HOST


def test_the_layout_survives_its_file() -> None:
    layout = Layout.default(Path("var-other"), 5, host=OTHER).bound("router", {"grpc": 7777, "metrics": 9999})
    assert Layout.from_json(Path("var-other"), layout.to_json()) == layout


def test_the_router_and_edges_bind_the_host_and_host_the_domain(tmp_path: Path) -> None:
    cluster = LocalCluster(Layout.default(tmp_path, host=OTHER), domains=("other.test",),
                           args={"outbound": ("--dns", "127.0.0.1:5353")})
    smtp = cluster.edge_process("smtp").argv
    assert smtp[smtp.index("--host") + 1] == OTHER and smtp[smtp.index("--router") + 1] == f"{OTHER}:7000"
    outbound = cluster.edge_process("outbound").argv
    assert outbound[-4:-2] == ["--dns", "127.0.0.1:5353"] and "--hostname" in outbound
    imap = cluster.edge_process("imap").argv
    assert imap[imap.index("--host") + 1] == OTHER and imap[imap.index("--port") + 1] == "2143"
    with pytest.raises(ValueError, match="no edge pop3"):
        cluster.start_edges(("pop3",))


def test_cluster_run_takes_a_loopback_ip_a_domain_and_a_data_dir(capsys: pytest.CaptureFixture[str]) -> None:
    args = build_parser().parse_args(["cluster", "run", "--ip", OTHER, "--domain", "other.test", "--data", "var-o"])
    assert (args.ip, args.domain, args.data) == (OTHER, ["other.test"], Path("var-o"))
    for bad in ("10.0.0.1", "::1", "localhost"):
        with pytest.raises(SystemExit):
            build_parser().parse_args(["cluster", "run", "--ip", bad])
    assert "127.x.x.x" in capsys.readouterr().err


@pytest.fixture
def listening_on_default_host() -> Iterator[int]:
    with socket.socket() as server:
        server.bind((HOST, 0))
        server.listen()
        yield server.getsockname()[1]


def test_a_port_taken_on_one_loopback_address_is_free_on_another(listening_on_default_host: int) -> None:
    port = listening_on_default_host
    check_free(OTHER, [port])
    with pytest.raises(PortsTaken, match=f"port {port} taken by pid"):
        check_free(HOST, [port])


def test_the_default_metrics_ports_are_those_prometheus_scrapes() -> None:
    ports = Layout.default(Path("var")).metrics_ports
    assert [ports[n] for n in ("router", "storage-1", "storage-3", "smtp", "http", "outbound")] == \
        [9100, 9101, 9103, 9104, 9105, 9106]
    assert len(set(ports.values())) == len(ports)
