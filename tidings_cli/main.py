"""`tidings`: admin commands against a running cluster and the local cluster launcher."""
from __future__ import annotations

import argparse
import ipaddress
import signal
import sys
import threading
from pathlib import Path

import grpc

from tidings.v1 import mail_pb2, mail_pb2_grpc
from tidings_cli import backup, blobs, dkim_keys, queue, transfer, verify
from tidings_cli.cluster import DEFAULT_DOMAIN, HOST, ClusterError, Layout, LocalCluster
from tidings_cli.dkim import cmd_domain_dkim
from tidings_cli.ports import PortsTaken, check_free
from tidings_cli.settings import CliSettings


def _admin(router: str) -> tuple[grpc.Channel, mail_pb2_grpc.AdminStub]:
    channel = grpc.insecure_channel(router)
    return channel, mail_pb2_grpc.AdminStub(channel)


def cmd_user_add(args: argparse.Namespace) -> int:
    channel, admin = _admin(args.router)
    with channel:
        account = admin.AddUser(mail_pb2.AddUserRequest(email=args.email, password=args.password), timeout=30)
    print(f"user {account.email} added (id {account.user_id})")
    return 0


def cmd_domain_add(args: argparse.Namespace) -> int:
    channel, admin = _admin(args.router)
    with channel:
        answer = admin.AddDomain(mail_pb2.AddDomainRequest(domain=args.domain), timeout=30)
    print(f"domain {answer.domain} {'added' if answer.created else 'already hosted'}")
    return 0


def cmd_index(args: argparse.Namespace) -> int:
    if bool(args.user) == args.all:
        print("name one user, or --all", file=sys.stderr)
        return 2
    channel, admin = _admin(args.router)
    command = mail_pb2.IndexCommand(email=args.user or "", all=args.all)
    with channel:
        method = admin.RebuildIndex if args.action == "rebuild" else admin.CheckIndex
        answer = method(command, timeout=3600)
    problems = missing = 0
    for report in answer.reports:
        verb = "rebuilt" if args.action == "rebuild" else "checked"
        print(f"node {report.node_id}: {verb} {report.documents} messages of {report.users} users")
        for problem in report.problems:
            print(f"  {problem}")
        problems += len(report.problems)
        missing += report.blobs_missing
    if missing:
        print(f"{missing} messages indexed without their body (blob missing): bring the blobs back "
              "(restore the blob store), then rebuild again", file=sys.stderr)
    return 1 if problems else 0


def _layout_file(base: Path) -> Path:
    return base / "cluster.json"


def _save_layout(layout: Layout) -> None:
    _layout_file(layout.base_dir).write_text(layout.to_json())


def _load_layout(base: Path) -> Layout:
    path = _layout_file(base)
    return Layout.from_json(base, path.read_text()) if path.exists() else Layout.default(base)


def cmd_cluster_run(args: argparse.Namespace) -> int:
    base_dir = (args.data or args.base_dir).resolve()
    layout = Layout.default(base_dir, args.port_offset, host=args.ip)
    check_free(layout.host, layout.ports)
    # Sender authentication needs DNS that answers: the local cluster checks SPF, DKIM and
    # DMARC only when TIDINGS_DNS names resolvers (an offline machine would defer all mail).
    dns = args.settings.dns
    smtp_flags = () if dns else ("--no-auth-checks",)
    cluster = LocalCluster(layout, domains=tuple(args.domain or (DEFAULT_DOMAIN,)), args={"smtp": smtp_flags},
                           virus_scan=args.settings.virus_scan)
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        cluster.start()
        _save_layout(cluster.layout)
        print("Tidings local cluster is up (N=3, W=2, R=2); data in", layout.base_dir, flush=True)
        for line in cluster.describe():
            print("  " + line, flush=True)
        if not dns:
            print("  WARNING: sender authentication (SPF, DKIM, DMARC) is OFF: set TIDINGS_DNS=IP:PORT to check it",
                  flush=True)
        print(f"  logs: {layout.base_dir / 'logs'}/ ; Ctrl-C stops everything", flush=True)
        while not stop.wait(1):
            for name, process in cluster.processes.items():
                if not process.running and not name.startswith("storage-"):
                    print(f"{name} exited; see {process.log_path}:\n{process.tail()}", flush=True)
                    stop.set()
    finally:
        print("stopping...", flush=True)
        cluster.stop()
        _layout_file(layout.base_dir).unlink(missing_ok=True)
    return 0


def cmd_repair(args: argparse.Namespace) -> int:
    channel, admin = _admin(args.router)
    with channel:
        report = admin.Repair(mail_pb2.RepairRequest(check_only=args.check), timeout=3600)
    print(f"{report.ranges} ranges compared, {report.ranges_differing} differed, "
          f"{report.items_repaired} items repaired")
    if report.unreachable_nodes:
        print(f"unreachable: nodes {', '.join(report.unreachable_nodes)}")
    print("replicas converged" if report.converged else "replicas were not converged")
    return 0 if report.converged or not args.check else 1


def _print_ring(report: mail_pb2.RingReport) -> None:
    print(f"ring version {report.version}")
    for node in report.nodes:
        print(f"  node {node.node_id} {node.address} {node.zone}: owns {node.ownership:.1%}")
    if report.items_streamed or report.items_dropped:
        print(f"streamed {report.items_streamed} items ({report.bytes_streamed} bytes), "
              f"dropped {report.items_dropped}")


def cmd_node_change(args: argparse.Namespace) -> int:
    channel, admin = _admin(args.router)
    node_id = str(getattr(args, "id", ""))
    with channel:
        if args.action == "add":
            layout = _load_layout(args.base_dir)
            address = args.address or layout.storage_address(args.id)
            zone = args.zone or layout.zone(args.id)
            report = admin.AddNode(mail_pb2.NodeChange(node_id=node_id, address=address, zone=zone), timeout=3600)
        elif args.action == "remove":
            report = admin.RemoveNode(mail_pb2.NodeChange(node_id=node_id), timeout=3600)
        else:
            report = admin.DescribeRing(mail_pb2.DescribeRingRequest(), timeout=30)
    _print_ring(report)
    return 0


def cmd_node_start(args: argparse.Namespace) -> int:
    layout = _load_layout(args.base_dir.resolve())
    if not 1 <= args.id <= len(layout.storage_ports):
        print(f"no storage node {args.id} in this cluster", file=sys.stderr)
        return 2
    cluster = LocalCluster(layout)
    cluster.start_storage(args.id, tied_to_parent=False)  # outlives this command
    if cluster.layout != layout:  # it was started on port 0: record the one it got
        _save_layout(cluster.layout)
    print(f"storage node {args.id} started on {cluster.layout.storage_address(args.id)}")
    return 0


def _port_offset(text: str) -> int:
    offset = int(text)
    if offset < 0 or max(Layout.default(Path("."), offset).ports) > 65535:
        raise argparse.ArgumentTypeError(f"{text}: every default port plus it must be a port (0-65535)")
    return offset


def _loopback(text: str) -> str:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text}: not an IP address") from None
    if address.version != 4 or not address.is_loopback:
        raise argparse.ArgumentTypeError(f"{text}: the local cluster binds an IPv4 loopback address (127.x.x.x)")
    return text


def build_parser() -> argparse.ArgumentParser:
    defaults = CliSettings.load([])
    parser = argparse.ArgumentParser(prog="tidings", description=__doc__)
    parser.add_argument("--router", default=defaults.router, help="router gRPC address (env TIDINGS_ROUTER)")
    parser.add_argument("--base-dir", type=Path, default=defaults.base_dir,
                        help="local cluster data directory (env TIDINGS_VAR)")
    parser.set_defaults(settings=defaults)       # read once: the commands take what they need from it
    sub = parser.add_subparsers(dest="area", required=True)

    user = sub.add_parser("user").add_subparsers(dest="action", required=True)
    add_user = user.add_parser("add", help="create a user (its domain must be hosted)")
    add_user.add_argument("email")
    add_user.add_argument("--password", required=True)
    add_user.set_defaults(func=cmd_user_add)

    domain = sub.add_parser("domain").add_subparsers(dest="action", required=True)
    add_domain = domain.add_parser("add", help="host a domain")
    add_domain.add_argument("domain")
    add_domain.set_defaults(func=cmd_domain_add)
    dkim = domain.add_parser("dkim", help="the DKIM TXT records to publish for a hosted domain")
    dkim.add_argument("domain")
    dkim.set_defaults(func=cmd_domain_dkim)

    cluster = sub.add_parser("cluster").add_subparsers(dest="action", required=True)
    run = cluster.add_parser("run", help="run the local cluster in the foreground")
    run.add_argument("--port-offset", type=_port_offset, default=0, metavar="N",
                     help="add N to every default port (a second cluster on this host, tests)")
    run.add_argument("--ip", type=_loopback, default=HOST,
                     help=f"the loopback address every process binds (default {HOST}; another one, e.g. "
                          "127.0.0.2, runs a second cluster on the same port numbers)")
    run.add_argument("--domain", action="append", metavar="DOMAIN",
                     help=f"a domain the cluster hosts (repeatable; default {DEFAULT_DOMAIN})")
    run.add_argument("--data", type=Path, metavar="DIR", help="its data directory (default: --base-dir)")
    run.set_defaults(func=cmd_cluster_run)

    dkim_keys.add_parsers(sub)
    queue.add_parser(sub)
    blobs.add_parser(sub)
    transfer.add_parsers(sub)
    backup.add_parsers(sub)
    verify.add_parsers(sub)

    index = sub.add_parser("index").add_subparsers(dest="action", required=True)
    for action, text in (("rebuild", "rebuild the search index from the stored messages"),
                         ("check", "check that the search index matches the stored messages")):
        command = index.add_parser(action, help=text)
        command.add_argument("user", nargs="?", help="the user's address")
        command.add_argument("--all", action="store_true", help="every user on every node")
        command.set_defaults(func=cmd_index)

    node = sub.add_parser("node").add_subparsers(dest="action", required=True)
    start = node.add_parser("start", help="(re)start a storage node of the running local cluster")
    start.add_argument("id", type=int)
    start.set_defaults(func=cmd_node_start)
    add = node.add_parser("add", help="join a running storage node to the ring: stream its ranges, then switch")
    add.add_argument("id", type=int)
    add.add_argument("--address", help="its gRPC address (default: from the local cluster layout)")
    add.add_argument("--zone", help="its zone (default: from the local cluster layout)")
    add.set_defaults(func=cmd_node_change)
    remove = node.add_parser("remove", help="hand a node's ranges to the others, then take it out of the ring")
    remove.add_argument("id", type=int)
    remove.set_defaults(func=cmd_node_change)
    node.add_parser("list", help="the ring: nodes, zones, ownership").set_defaults(func=cmd_node_change)

    repair = sub.add_parser("repair", help="anti-entropy now: compare replica digests, stream differences")
    repair.add_argument("--check", action="store_true", help="only compare; exit 1 when replicas differ")
    repair.set_defaults(func=cmd_repair)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        sys.exit(args.func(args))
    except grpc.RpcError as exc:
        print(f"error: {exc.code().name}: {exc.details()}", file=sys.stderr)
        sys.exit(1)
    except PortsTaken as exc:
        print(f"tidings: cannot start, {exc}; nothing was started", file=sys.stderr)
        sys.exit(1)
    except ClusterError as exc:
        print(f"tidings: {exc}", file=sys.stderr)
        sys.exit(1)
