"""`tidings verify` and `tidings fsck --repair`: the whole cluster checked, for a cron job
(docs/architecture.md, "Backup, restore and verification").

Checked: every replica set's range digests (as `tidings repair --check`), the search index
(as `tidings index check --all`), and on every node its folder counters against the rows they
count and its blob refs against the object store (NodeOps.CheckNode). `fsck --repair` repairs
the ranges from the replicas, rebuilds the index when it is wrong, recomputes counters, then
checks again and reports what is left (a blob gone from the store cannot come back from a
replica: they share the store; the rebuild indexes its message without the body). Exit 0:
clean (or everything found was fixed); 1: problems (left); 2: could not check (the router or a
node did not answer, bad arguments)."""
from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import grpc

from tidings.v1 import mail_pb2, mail_pb2_grpc, node_ops_pb2, node_ops_pb2_grpc, storage_pb2

TIMEOUT_S = 3600.0
REPAIR_PASSES = 3
# what the storage nodes say of a message whose blob is missing (storage_node/service.py)
BODY_NOT_CHECKED = "blob missing, body not checked"
INDEXED_WITHOUT_BODY = "blob missing, indexed without its body"


@dataclass
class Findings:
    problems: list[str] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)   # what could not be checked, and why
    fixed: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return 2 if self.unchecked else 1 if self.problems else 0


def _rpc_failure(exc: grpc.RpcError) -> str:
    return f"{exc.code().name}: {exc.details()}"


def check_replicas(admin: mail_pb2_grpc.AdminStub, findings: Findings, repair: bool) -> None:
    """Compare every replica set's digests; with `repair`, repair and compare again, up to
    REPAIR_PASSES times (a write landing meanwhile, or a hint replayed, can leave a range to
    the next pass)."""
    report = admin.Repair(mail_pb2.RepairRequest(check_only=True), timeout=TIMEOUT_S)
    passes = 0
    while repair and not report.converged and not report.unreachable_nodes and passes < REPAIR_PASSES:
        repaired = admin.Repair(mail_pb2.RepairRequest(check_only=False), timeout=TIMEOUT_S)
        passes += 1
        if repaired.items_repaired:
            findings.fixed.append(f"replicas: {repaired.items_repaired} items repaired in "
                                  f"{repaired.ranges_differing} ranges")
        report = admin.Repair(mail_pb2.RepairRequest(check_only=True), timeout=TIMEOUT_S)
    if report.unreachable_nodes:
        findings.unchecked.append(f"replicas: nodes {', '.join(report.unreachable_nodes)} did not answer")
    elif not report.converged:
        findings.problems.append(f"replicas: {report.ranges_differing} of {report.ranges} ranges differ")
    print(f"replicas: {report.ranges} ranges compared, {report.ranges_differing} differ")


def _index_problems(reports: Iterable[storage_pb2.IndexReport]) -> list[str]:
    return [f"index: node {r.node_id}: {p}" for r in reports for p in r.problems]


def _blob_key(problem: str) -> str:
    """An index problem without what is said of a missing blob: a check's and a rebuild's line
    on one message's missing blob have the same key."""
    return problem.removesuffix(BODY_NOT_CHECKED).removesuffix(INDEXED_WITHOUT_BODY)


def check_index(admin: mail_pb2_grpc.AdminStub, findings: Findings, repair: bool) -> None:
    """The index of every user on every node; with `repair`, rebuilt when it differs from the
    messages. A message whose blob is missing is rebuilt from its record alone (headers, folder,
    flags; no body) and stays a problem, "indexed without its body"; once the blob is back the
    index differs for that message and the next `fsck --repair` indexes its body. Not rebuilt when
    missing blobs are all that is wrong: the index already holds what a rebuild could give it."""
    def problems() -> list[str]:
        answer = admin.CheckIndex(mail_pb2.IndexCommand(all=True), timeout=TIMEOUT_S)
        for report in answer.reports:
            print(f"index: node {report.node_id}: {report.documents} messages of {report.users} users checked")
        return _index_problems(answer.reports)

    found = problems()
    if repair and any(not p.endswith(BODY_NOT_CHECKED) for p in found):
        rebuilt = admin.RebuildIndex(mail_pb2.IndexCommand(all=True), timeout=TIMEOUT_S).reports
        left = problems()
        findings.fixed.extend(p for p in found if p not in left)
        said = {_blob_key(p): p for p in _index_problems(rebuilt)}   # blobs missing, nodes that failed
        found = [said.pop(_blob_key(p), p) for p in left] + list(said.values())
        if without_body := sum(r.blobs_missing for r in rebuilt):
            print(f"index: {without_body} messages indexed without their body (blob missing): put the blobs "
                  "back, then fsck --repair again")
    findings.problems.extend(found)


def check_nodes(nodes: list[mail_pb2.RingReport.Node], findings: Findings, repair: bool) -> None:
    for node in nodes:
        try:
            with grpc.insecure_channel(node.address) as channel:
                report = node_ops_pb2_grpc.NodeOpsStub(channel).CheckNode(
                    node_ops_pb2.CheckNodeRequest(repair=repair), timeout=TIMEOUT_S)
        except grpc.RpcError as exc:
            findings.unchecked.append(f"node {node.node_id} ({node.address}): {_rpc_failure(exc)}")
            continue
        print(f"node {report.node_id}: {report.messages} messages of {report.users} users, "
              f"{report.blob_refs} blob refs checked")
        left = list(report.unrepaired) if repair else list(report.problems)
        if repair and report.counters_repaired:
            findings.fixed.extend(f"node {report.node_id}: {p} (recomputed)" for p in report.problems
                                  if p not in report.unrepaired)
        findings.problems.extend(f"node {report.node_id}: {p}" for p in left)


def run_checks(router: str, repair: bool) -> Findings:
    findings = Findings()
    try:
        with grpc.insecure_channel(router) as channel:
            admin = mail_pb2_grpc.AdminStub(channel)
            nodes = list(admin.DescribeRing(mail_pb2.DescribeRingRequest(), timeout=30).nodes)
            check_replicas(admin, findings, repair)   # first: the other checks then see converged replicas
            check_nodes(nodes, findings, repair)
            check_index(admin, findings, repair)
    except grpc.RpcError as exc:
        findings.unchecked.append(f"router {router}: {_rpc_failure(exc)}")
    return findings


def report(findings: Findings) -> int:
    for line in findings.fixed:
        print(f"FIXED {line}")
    for line in findings.problems:
        print(f"PROBLEM {line}")
    for line in findings.unchecked:
        print(f"NOT CHECKED {line}", file=sys.stderr)
    verdict = {0: "clean", 1: f"{len(findings.problems)} problems", 2: "could not check everything"}
    print(verdict[findings.exit_code])
    return findings.exit_code


def cmd_verify(args: argparse.Namespace) -> int:
    return report(run_checks(args.router, repair=False))


def cmd_fsck(args: argparse.Namespace) -> int:
    return report(run_checks(args.router, repair=args.repair))


def add_parsers(sub: Any) -> None:
    verify = sub.add_parser("verify", help="check replicas, blob refs, the index and counters; exit 0 clean, "
                            "1 problems, 2 could not check")
    verify.set_defaults(func=cmd_verify)
    fsck = sub.add_parser("fsck", help="verify, and with --repair fix what the replicas can fix")
    fsck.add_argument("--repair", action="store_true", help="repair ranges, rebuild the index, recompute counters")
    fsck.set_defaults(func=cmd_fsck)
