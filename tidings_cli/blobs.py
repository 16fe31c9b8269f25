"""`tidings blobs gc`: collect the object store's blobs that no live message refers to
(storage_node/blob_gc.py). The ring's nodes come from the router; one node, the first that
answers, collects: it lists the store it shares with the others, asks every node of the ring
for its marks, and sweeps. Exit 0: swept; 1: a node did not answer and nothing was deleted
(run it again once the node is back)."""
from __future__ import annotations

import argparse
import sys
from typing import Any

import grpc

from tidings.v1 import blobs_pb2, blobs_pb2_grpc, mail_pb2, mail_pb2_grpc

COLLECT_TIMEOUT_S = 3600.0


def ring_nodes(router: str) -> list[blobs_pb2.BlobGcNode]:
    with grpc.insecure_channel(router) as channel:
        ring = mail_pb2_grpc.AdminStub(channel).DescribeRing(mail_pb2.DescribeRingRequest(), timeout=30)
    return [blobs_pb2.BlobGcNode(node_id=n.node_id, address=n.address) for n in ring.nodes]


def collect(nodes: list[blobs_pb2.BlobGcNode], request: blobs_pb2.CollectBlobsRequest) -> blobs_pb2.BlobGcReport:
    """CollectBlobs on the first node that answers (a node down can't collect; the one that
    does then reports it unreachable and sweeps nothing)."""
    failure: grpc.RpcError | None = None
    for node in nodes:
        with grpc.insecure_channel(node.address) as channel:
            try:
                report: blobs_pb2.BlobGcReport = blobs_pb2_grpc.BlobGcStub(channel).CollectBlobs(
                    request, timeout=COLLECT_TIMEOUT_S)
                return report
            except grpc.RpcError as exc:
                if exc.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                    raise
                failure = exc
    if failure is not None:
        raise failure
    raise SystemExit("tidings: the ring has no nodes")


def cmd_gc(args: argparse.Namespace) -> int:
    nodes = ring_nodes(args.router)
    report = collect(nodes, blobs_pb2.CollectBlobsRequest(nodes=nodes, grace_s=args.grace_s or 0, dry_run=args.dry_run,
                                                          node_timeout_s=args.timeout))
    print(f"node {report.collector} collected {report.store}: {report.objects} blobs, {report.candidates} older than "
          f"{report.grace_s:g} s; {report.marked} referenced on {len(nodes)} nodes")
    if not report.swept:
        print(f"not swept: nodes {', '.join(report.unreachable)} did not answer; nothing deleted", file=sys.stderr)
        return 1
    verb = "would delete" if report.dry_run else "deleted"
    print(f"{verb} {report.deleted} unreferenced blobs; kept {report.refreshed} stored again meanwhile")
    for ref in report.deleted_refs if args.verbose else ():
        print(f"  {ref}")
    return 0


def _seconds(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text}: a number of seconds above 0")
    return value


def add_parser(sub: Any) -> None:
    """`tidings blobs ...` under the command's subparsers."""
    blobs = sub.add_parser("blobs", help="the object store of large bodies").add_subparsers(dest="action", required=True)
    gc = blobs.add_parser("gc", help="delete blobs no live message refers to, older than the grace period")
    gc.add_argument("--grace-s", type=_seconds, metavar="SECONDS",
                    help="keep blobs modified this recently (default: the node's --blob-grace-s, 1 day)")
    gc.add_argument("--dry-run", action="store_true", help="report what would be deleted; delete nothing")
    gc.add_argument("--timeout", type=_seconds, default=60.0, help="seconds for each node's answer (default 60)")
    gc.add_argument("-v", "--verbose", action="store_true", help="list the deleted refs (the first 1,000)")
    gc.set_defaults(func=cmd_gc)
