"""The local cluster: every part in its own process on loopback, started in order,
checked ready, stopped cleanly. `make run` and the test grid both use it.

Layout: every process bound to one loopback address (127.0.0.1 by default; a second
cluster on 127.0.0.2 uses the same port numbers), data under one base directory (`var/` by
default): node<i>/ (RocksDB), blobs/ (object store), smtp/ and imap/ (dev certificates),
logs/<process>.log, pids/<process>.pid, ready/<process>.json (the ports it bound: a process
may be started on port 0), cluster.json (the layout of a running cluster), clamd/ (the virus
scanner's config, socket and temporary files; started before the SMTP edge).
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import grpc
import psutil

from tidings.v1 import mail_pb2, mail_pb2_grpc
from tidings_cli.settings import CliSettings
from tidings_runtime.ready import read_ready

HOST = "127.0.0.1"                  # the default cluster's address
DEFAULT_DOMAIN = "example.test"     # the domain it hosts
EDGES = ("smtp", "http", "outbound", "imap")  # the processes that may start after the router, in order
DEFAULT_EDGES = EDGES  # what `tidings cluster run` starts
SCANNER = "clamd"  # Debian's clamd, started before the SMTP edge unless virus scanning is off
CLAMAV_DIR = Path(__file__).resolve().parents[1] / "deploy" / "clamav"  # clamd.conf.in, db/ (EICAR)
CLAMD_STREAM_MAX = "30M"  # clamd's StreamMaxLength: above the SMTP edge's 25 MiB messages


class ClusterError(Exception):
    """A process of the local cluster did not come up."""


@dataclass(frozen=True)
class Layout:
    base_dir: Path
    host: str = HOST
    router_port: int = 7000
    # Ports of storage nodes 1, 2, ...: the first `members` form the initial ring; the rest
    # are spares, started by `tidings node start ID` and joined by `tidings node add ID`.
    storage_ports: tuple[int, ...] = (7101, 7102, 7103, 7104, 7105)
    smtp_port: int = 2525
    submission_port: int = 2587
    http_port: int = 8080
    imap_port: int = 2143
    imaps_port: int = 2993
    pop3_port: int = 2110
    metrics_ports: dict[str, int] = field(default_factory=dict)
    zones: tuple[str, ...] = ("zone-a", "zone-b", "zone-c")
    members: int = 3

    @classmethod
    def default(cls, base_dir: Path, offset: int = 0, host: str = HOST) -> Layout:
        """The CONTRACT's ports (router 7000, storage 7101-7105, SMTP 2525/2587, HTTP 8080,
        metrics from 9100), each plus `offset`, on `host`."""
        names = ["router", *(f"storage-{i}" for i in (1, 2, 3)), "smtp", "http", "outbound", "storage-4",
                 "storage-5", "imap"]  # as deploy/prometheus.yml scrapes them
        return cls(base_dir, host=host, router_port=7000 + offset, storage_ports=tuple(p + offset for p in range(7101, 7106)),
                   smtp_port=2525 + offset, submission_port=2587 + offset, http_port=8080 + offset,
                   imap_port=2143 + offset, imaps_port=2993 + offset, pop3_port=2110 + offset,
                   metrics_ports={n: 9100 + i + offset for i, n in enumerate(names)})

    @classmethod
    def any_port(cls, base_dir: Path, storage_nodes: int = 3, spares: int = 1, host: str = HOST) -> Layout:
        """Every port 0: each process binds any free port, and the cluster records the real
        one from its ready file."""
        count = storage_nodes + spares
        names = ["router", *(f"storage-{i}" for i in range(1, count + 1)), *EDGES]
        return cls(base_dir, host=host, router_port=0, members=storage_nodes, storage_ports=(0,) * count,
                   smtp_port=0, submission_port=0, http_port=0, imap_port=0, imaps_port=0, pop3_port=0,
                   metrics_ports=dict.fromkeys(names, 0))

    def bound(self, name: str, ports: dict[str, int]) -> Layout:
        """This layout with the ports process `name` reported it bound."""
        changes: dict[str, object] = {}
        if name.startswith("storage-"):
            index = int(name.removeprefix("storage-"))
            changes["storage_ports"] = tuple(ports["grpc"] if i == index else port
                                             for i, port in enumerate(self.storage_ports, 1))
        elif name == "router":
            changes["router_port"] = ports["grpc"]
        elif name == "smtp":
            changes.update(smtp_port=ports["smtp"], submission_port=ports["submission"])
        elif name == "http":
            changes["http_port"] = ports["http"]
        elif name == "imap":
            changes.update(imap_port=ports["imap"], imaps_port=ports.get("imaps") or self.imaps_port,
                           pop3_port=ports.get("pop3") or self.pop3_port)
        if "metrics" in ports:
            changes["metrics_ports"] = {**self.metrics_ports, name: ports["metrics"]}
        return replace(self, **changes)  # type: ignore[arg-type]

    def to_json(self) -> str:
        """The layout of a running cluster, for the commands that act on it (cluster.json)."""
        return json.dumps({k: v for k, v in asdict(self).items() if k != "base_dir"})

    @classmethod
    def from_json(cls, base_dir: Path, text: str) -> Layout:
        data = json.loads(text)
        return cls(base_dir=base_dir, host=data.get("host", HOST), router_port=data["router_port"],
                   storage_ports=tuple(data["storage_ports"]), smtp_port=data["smtp_port"],
                   submission_port=data["submission_port"], http_port=data["http_port"],
                   imap_port=data.get("imap_port", 2143), imaps_port=data.get("imaps_port", 2993),
                   pop3_port=data.get("pop3_port", 2110),
                   metrics_ports=data["metrics_ports"], zones=tuple(data["zones"]), members=data.get("members", 3))

    @property
    def ports(self) -> set[int]:
        """Every port of the cluster, spares' included."""
        return {self.router_port, *self.storage_ports, self.smtp_port, self.submission_port, self.http_port,
                self.imap_port, self.imaps_port, self.pop3_port, *self.metrics_ports.values()}

    @property
    def router_address(self) -> str:
        return f"{self.host}:{self.router_port}"

    def storage_address(self, index: int) -> str:
        return f"{self.host}:{self.storage_ports[index - 1]}"

    def zone(self, index: int) -> str:
        return self.zones[(index - 1) % len(self.zones)] if index <= self.members else f"zone-{index}"

    @property
    def nodes_spec(self) -> str:
        """The initial ring's members, as the router's --nodes."""
        return ",".join(f"{i}={self.storage_address(i)}@{self.zone(i)}" for i in range(1, self.members + 1))

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.http_port}"


class Process:
    """One child process with its log file, pid file and ready file."""

    def __init__(self, name: str, argv: list[str], layout: Layout, tied_to_parent: bool = True,
                 ready_flag: bool = True) -> None:
        self.name = name
        self.log_path = layout.base_dir / "logs" / f"{name}.log"
        self.pid_path = layout.base_dir / "pids" / f"{name}.pid"
        self.ready_path = layout.base_dir / "ready" / f"{name}.json"
        self.argv = [*argv, "--ready-file", str(self.ready_path)] if ready_flag else argv
        self.tied_to_parent = tied_to_parent
        self.popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.pid_path.parent.mkdir(parents=True, exist_ok=True)
        self.ready_path.unlink(missing_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child holds it; ours is closed below
        argv = self.argv
        if self.tied_to_parent:
            argv = [sys.executable, "-m", "tidings_cli.tether", str(os.getpid()), *argv]
        self.popen = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                      start_new_session=True)
        log.close()
        self.pid_path.write_text(str(self.popen.pid))

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def signal(self, sig: int) -> None:
        if self.running:
            assert self.popen is not None
            os.kill(self.popen.pid, sig)

    def kill(self) -> None:
        """SIGKILL, as a crash would: no clean shutdown, no flush."""
        self.signal(signal.SIGKILL)
        self.wait(10)

    def stop(self, timeout: float = 10) -> None:
        self.signal(signal.SIGTERM)
        if not self.wait(timeout):
            self.kill()

    def wait(self, timeout: float) -> bool:
        if self.popen is None:
            return True
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        forget_pid(self.pid_path, self.popen.pid)
        return True

    def wait_ready(self, timeout: float = 60) -> dict[str, int]:
        """The ports the process bound, once it serves; ClusterError (with its log's tail)
        if it exits first or takes longer than `timeout`."""
        deadline = time.monotonic() + timeout
        while (ports := self._ready()) is None:
            if not self.running:
                code = self.popen.returncode if self.popen is not None else None
                raise ClusterError(f"{self.name} exited ({code}) before it was ready; {self.log_path}:\n{self.tail()}")
            if time.monotonic() > deadline:
                raise ClusterError(f"{self.name} not ready after {timeout}s; {self.log_path}:\n{self.tail()}")
            time.sleep(0.05)
        return ports

    def _ready(self) -> dict[str, int] | None:
        """The bound ports once the process serves (its ready file), else None."""
        return read_ready(self.ready_path)

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""


class ClamdProcess(Process):
    """Debian's clamd in the foreground on a unix socket under DATA/clamd/, with the test
    signatures of deploy/clamav/db/ (no freshclam). Ready once it answers PING; the launcher
    writes its ready file (clamd has no --ready-file)."""

    def __init__(self, layout: Layout, tied_to_parent: bool = True) -> None:
        self.directory = (layout.base_dir / SCANNER).resolve()
        self.socket_path = self.directory / "clamd.sock"
        self.config_path = self.directory / "clamd.conf"
        binary = shutil.which("clamd") or shutil.which("clamd", path="/usr/sbin:/usr/local/sbin") or "clamd"
        super().__init__(SCANNER, [binary, "--foreground", f"--config-file={self.config_path}"], layout,
                         tied_to_parent, ready_flag=False)

    @property
    def address(self) -> str:
        """The SMTP edge's --clamd."""
        return f"unix:{self.socket_path}"

    def start(self) -> None:
        if not Path(self.argv[0]).is_absolute():
            raise ClusterError("clamd not found: `make setup` installs Debian's clamav-daemon; "
                               "or run without virus scanning: TIDINGS_VIRUS_SCAN=off")
        if len(str(self.socket_path).encode()) > 100:  # sun_path holds 108 bytes
            raise ClusterError(f"clamd's socket path is too long for a unix socket: {self.socket_path}")
        (self.directory / "tmp").mkdir(parents=True, exist_ok=True)
        template = (CLAMAV_DIR / "clamd.conf.in").read_text()
        self.config_path.write_text(template.format(
            socket=self.socket_path, database=CLAMAV_DIR / "db", tmp=self.directory / "tmp",
            pid_file=self.directory / "clamd.pid", stream_max=CLAMD_STREAM_MAX))
        super().start()

    def ping(self) -> bool:
        with socket.socket(socket.AF_UNIX) as probe:
            probe.settimeout(2)
            probe.connect(str(self.socket_path))
            probe.sendall(b"zPING\0")
            return probe.recv(16) == b"PONG\0"

    def _ready(self) -> dict[str, int] | None:
        """clamd writes no ready file: it serves once it answers PING (it binds no ports of ours)."""
        try:
            return {} if self.ping() else None
        except OSError:
            return None


def poll_until(ready: Callable[[], bool], what: str, timeout: float = 30, interval: float = 0.1) -> None:
    """Call `ready` until it is true; a check that raises counts as not ready yet."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if ready():
                return
        except (grpc.RpcError, OSError):
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} after {timeout}s")
        time.sleep(interval)


def wait_domain_hosted(router_address: str, domain: str = DEFAULT_DOMAIN, timeout: float = 30) -> None:
    not_hosted = mail_pb2.CheckRecipientResponse.Status.NOT_HOSTED
    request = mail_pb2.CheckRecipientRequest(address=f"postmaster@{domain}")
    with grpc.insecure_channel(router_address) as channel:
        stub = mail_pb2_grpc.MailStub(channel)
        poll_until(lambda: stub.CheckRecipient(request, timeout=2).status != not_hosted,
                   f"{domain} not hosted", timeout, interval=0.2)


class LocalCluster:
    """The processes of one cluster on `layout`: storage nodes, the router hosting `domains`,
    then the edges; `args` adds flags to a process by name ("router", "smtp", "outbound").
    clamd starts before the SMTP edge unless `virus_scan` is false (default: TIDINGS_VIRUS_SCAN)."""

    def __init__(self, layout: Layout, python: str = sys.executable, domains: tuple[str, ...] = (DEFAULT_DOMAIN,),
                 args: Mapping[str, tuple[str, ...]] | None = None, virus_scan: bool | None = None) -> None:
        self.layout = layout
        self.python = python
        self.domains = domains
        self.args = dict(args or {})
        self.virus_scan = CliSettings.load([]).virus_scan if virus_scan is None else virus_scan
        self.storage: dict[int, Process] = {}
        self.processes: dict[str, Process] = {}

    def _metrics(self, name: str) -> list[str]:
        port = self.layout.metrics_ports.get(name)
        return ["--metrics-port", str(port)] if port is not None else ["--no-metrics"]

    def _process(self, name: str, argv: list[str], tied_to_parent: bool = True) -> Process:
        """Process `name` running `python -m argv...`, with its metrics port and extra flags."""
        return Process(name, [self.python, "-m", *argv, *self._metrics(name), *self.args.get(name, ())],
                       self.layout, tied_to_parent)

    def storage_process(self, index: int, tied_to_parent: bool = True) -> Process:
        base = self.layout.base_dir
        return self._process(f"storage-{index}", [
            "storage_node", "--node-id", str(index), "--listen", self.layout.storage_address(index),
            "--data-dir", str(base / f"node{index}"), "--blob-dir", str(base / "blobs")], tied_to_parent)

    def start(self, edges: tuple[str, ...] = DEFAULT_EDGES) -> None:
        """Storage nodes, then the router (given their real ports), then the edges (given
        the router's); each step once the previous one serves."""
        lay = self.layout
        lay.base_dir.mkdir(parents=True, exist_ok=True)
        nodes = [self.start_storage(index, wait=False) for index in range(1, lay.members + 1)]
        self._wait_ready(nodes)
        lay = self.layout  # with the nodes' real ports
        domains = [flag for domain in self.domains for flag in ("--domain", domain)]
        self._start(self._process("router", ["router", "--listen", lay.router_address,
                                             "--nodes", lay.nodes_spec, *domains]))
        self._wait_ready([self.processes["router"]])
        for domain in self.domains:
            wait_domain_hosted(self.layout.router_address, domain)
        self.start_edges(edges)

    def start_router(self, name: str) -> str:
        """Another router over the same storage nodes, on any port; its address."""
        lay = self.layout
        process = self._process(name, ["router", "--listen", f"{lay.host}:0", "--nodes", lay.nodes_spec])
        self._start(process)
        return f"{lay.host}:{process.wait_ready()['grpc']}"

    def start_imap(self, name: str, router: str) -> int:
        """Another IMAP edge (no POP3), calling `router`, on any port; its port."""
        process = self._process(name, ["imap_edge", "--router", router, "--host", self.layout.host, "--port", "0",
                                       "--tls-port", "0", "--no-pop3", "--data-dir", str(self.layout.base_dir / name)])
        self._start(process)
        return process.wait_ready()["imap"]

    def start_edges(self, edges: tuple[str, ...]) -> None:
        unknown = set(edges) - set(EDGES)
        if unknown:
            raise ValueError(f"no edge {', '.join(sorted(unknown))}; edges are {', '.join(EDGES)}")
        if "smtp" in edges and self.virus_scan and not self.clamd_running:
            self.start_clamd()
        for name in edges:
            self._start(self.edge_process(name))
        self._wait_ready([self.processes[name] for name in edges])

    @property
    def clamd_running(self) -> bool:
        process = self.processes.get(SCANNER)
        return process is not None and process.running

    def start_clamd(self) -> ClamdProcess:
        """clamd (about 0.1 s with the test signatures), once it answers PING."""
        process = ClamdProcess(self.layout)
        self._start(process)
        self._wait_ready([process])
        return process

    def stop_clamd(self) -> None:
        """SIGTERM to clamd (the SMTP edge then answers 451 4.7.0); start_clamd starts it again."""
        process = self.processes.get(SCANNER)
        if process is not None:
            process.stop()

    def edge_process(self, name: str) -> Process:
        """Edge `name` (one of EDGES), calling the router."""
        return self._process(name, self._edge_argv(name))

    def _edge_argv(self, name: str) -> list[str]:
        lay = self.layout
        router = ["--router", lay.router_address]
        if name == "smtp":
            scan = ["--clamd", ClamdProcess(lay).address] if self.virus_scan else ["--virus-scan", "off"]
            return ["smtp_edge", *router, "--host", lay.host, "--port", str(lay.smtp_port),
                    "--submission-port", str(lay.submission_port), "--data-dir", str(lay.base_dir / "smtp"), *scan]
        if name == "http":
            return ["http_edge", *router, "--host", lay.host, "--port", str(lay.http_port),
                    "--token-secret-file", str(lay.base_dir / "token.secret")]
        if name == "imap":
            return ["imap_edge", *router, "--host", lay.host, "--port", str(lay.imap_port),
                    "--tls-port", str(lay.imaps_port), "--pop3-port", str(lay.pop3_port),
                    "--data-dir", str(lay.base_dir / "imap")]
        return ["smtp_edge.outbound", *router, "--hostname", f"mail.{self.domains[0]}", "--metrics-host", lay.host]

    def _wait_ready(self, processes: list[Process]) -> None:
        for process in processes:
            self.layout = self.layout.bound(process.name, process.wait_ready())

    def _start(self, process: Process) -> None:
        process.start()
        self.processes[process.name] = process

    def start_storage(self, index: int, wait: bool = True, tied_to_parent: bool = True) -> Process:
        """Start storage node `index` on its recorded port (the ring knows that address)."""
        process = self.storage_process(index, tied_to_parent)
        self.storage[index] = process
        self._start(process)
        if wait:
            self._wait_ready([process])
        return process

    def kill_storage(self, index: int) -> None:
        self.storage[index].kill()

    def stop(self) -> None:
        for process in reversed(list(self.processes.values())):
            process.stop()
        stop_strays(self.layout.base_dir)

    def describe(self) -> list[str]:
        lay = self.layout
        lines = [f"storage-{i}: gRPC {lay.storage_address(i)}" for i in self.storage]
        lines.append(f"router: gRPC {lay.router_address} (tidings.v1.Mail, Admin, Queue), hosting "
                     + ", ".join(self.domains))
        if SCANNER in self.processes:
            lines.append(f"clamd: virus scanner on {ClamdProcess(lay).address} (test signatures: EICAR)")
        elif "smtp" in self.processes and not self.virus_scan:
            lines.append("WARNING: virus scanning is OFF (TIDINGS_VIRUS_SCAN=off): mail is not scanned")
        edges = {"smtp": f"smtp: SMTP {lay.host}:{lay.smtp_port}, submission {lay.host}:{lay.submission_port}",
                 "http": f"http: {lay.http_url} (/v1, /openapi.json)",
                 "outbound": "outbound: delivery worker for the outgoing queue",
                 "imap": f"imap: IMAP {lay.host}:{lay.imap_port} (STARTTLS), IMAPS {lay.host}:{lay.imaps_port}, "
                         f"POP3 {lay.host}:{lay.pop3_port} (STLS); dev certificate {lay.base_dir / 'imap/tls/cert.pem'}"}
        lines += [line for name, line in edges.items() if name in self.processes]
        lines += [f"metrics {name}: http://{lay.host}:{port}/metrics" for name, port in lay.metrics_ports.items()
                  if name in self.processes]
        return lines


def forget_pid(pid_path: Path, pid: int) -> None:
    """Remove a pid file if it still names `pid`: `tidings node start` may have written
    its own process's there since."""
    try:
        if int(pid_path.read_text()) == pid:
            pid_path.unlink()
    except (FileNotFoundError, ValueError):
        pass


def _cluster_process(pid_file: Path, base_dir: Path) -> psutil.Process | None:
    """The live process a pid file names, if it is one of this base dir's (pids get reused)."""
    try:
        process = psutil.Process(int(pid_file.read_text()))
        return process if str(base_dir) in " ".join(process.cmdline()) else None
    except (ValueError, FileNotFoundError, psutil.Error):
        return None


def stop_strays(base_dir: Path, timeout: float = 10) -> None:
    """Stop the processes started outside this launcher (`tidings node start`) for this
    base dir, and wait until they are gone (SIGKILL after `timeout`)."""
    pid_files = list((base_dir / "pids").glob("*.pid"))
    strays = [p for p in (_cluster_process(f, base_dir) for f in pid_files) if p is not None]
    for process in strays:
        with contextlib.suppress(psutil.Error):
            process.terminate()
    _, alive = psutil.wait_procs(strays, timeout=timeout)
    for process in alive:
        with contextlib.suppress(psutil.Error):
            process.kill()
    psutil.wait_procs(alive, timeout=timeout)
    for pid_file in pid_files:
        pid_file.unlink(missing_ok=True)
