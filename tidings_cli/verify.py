"""`tidings verify` and `tidings fsck --repair`: the whole cluster checked, for a cron job
(docs/architecture.md, "Backup, restore and verification").

Checked: every replica set's range digests (as `tidings repair --check`), the search index
(as `tidings index check --all`), and on every node its folder counters against the rows they
count and its blob refs against the object store (NodeOps.CheckNode). `fsck --repair` repairs
the ranges from the replicas, rebuilds the index when it is wrong, recomputes counters, then
checks again and reports what is left (a blob gone from the store cannot come back from a
replica: they share the store; the rebuild indexes its message without the body). Exit 0:
clean (or everything found was fixed); 1: problems (left); 2: could not check (the router or a
node did not answer, bad arguments). A node the router could not reach is asked directly: one
that answers (restarted a moment ago, before the router's channel reconnected) is checked again
through the router, not reported down."""
from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tidings.v1 import mail_pb2, mail_pb2_grpc, node_ops_pb2, node_ops_pb2_grpc, storage_pb2
from tidings_runtime.channels import PEER_CHANNEL_OPTIONS

TIMEOUT_S = 3600.0
REPAIR_PASSES = 3
PROBE_S = 2.0        # a node's own health check, when the router could not reach it
# the router's channels to a node retry at most this far apart (gRPC adds up to 20% jitter)
RECONNECT_S = dict(PEER_CHANNEL_OPTIONS)["grpc.max_reconnect_backoff_ms"] * 1.2 / 1000
SETTLE_TRIES = 3
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


def _serving(addresses: Iterable[str]) -> bool:
    """Every node at `addresses` answers its health check SERVING within PROBE_S, asked on a
    channel of this process's own (a new one connects at once: it has no backoff to wait out)."""
    channels = [grpc.insecure_channel(address) for address in addresses]
    try:
        calls = [health_pb2_grpc.HealthStub(c).Check.future(health_pb2.HealthCheckRequest(), timeout=PROBE_S,
                                                              wait_for_ready=True) for c in channels]
        return all(call.exception() is None and call.result().status == health_pb2.HealthCheckResponse.SERVING
                   for call in calls)
    finally:
        for channel in channels:
            channel.close()


def _compare(admin: mail_pb2_grpc.AdminStub, nodes: list[mail_pb2.RingReport.Node]) -> mail_pb2.RepairReport:
    """The replica sets' digests, compared by the router. A node it could not reach may be one
    restarted a moment ago, serving before the router's channel to it reconnects (it retries
    within RECONNECT_S): while every such node answers its own health check, compare again once
    the router's channels have had the time to reconnect, up to SETTLE_TRIES times; a node that
    does not answer is down, and reported so at once."""
    report = admin.Repair(mail_pb2.RepairRequest(check_only=True), timeout=TIMEOUT_S)
    address = {n.node_id: n.address for n in nodes}
    for _ in range(SETTLE_TRIES):
        if not report.unreachable_nodes or not _serving(address[n] for n in report.unreachable_nodes):
            break
        time.sleep(RECONNECT_S)
        report = admin.Repair(mail_pb2.RepairRequest(check_only=True), timeout=TIMEOUT_S)
    return report


def check_replicas(admin: mail_pb2_grpc.AdminStub, nodes: list[mail_pb2.RingReport.Node], findings: Findings,
                   repair: bool) -> None:
    """Compare every replica set's digests; with `repair`, repair and compare again, up to
    REPAIR_PASSES times (a write landing meanwhile, or a hint replayed, can leave a range to
    the next pass)."""
    report = _compare(admin, nodes)
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


def _answered(reports: Iterable[storage_pb2.IndexReport], findings: Findings) -> list[storage_pb2.IndexReport]:
    """The reports of the nodes that answered; a node the router could not reach (its report a
    status line alone, router/service.py) is not checked."""
    kept = []
    for r in reports:
        if not r.users and len(r.problems) == 1 and r.problems[0].split(":")[0] in grpc.StatusCode.__members__:
            if (line := f"index: node {r.node_id}: {r.problems[0]}") not in findings.unchecked:
                findings.unchecked.append(line)
        else:
            kept.append(r)
    return kept


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
        answer = _answered(admin.CheckIndex(mail_pb2.IndexCommand(all=True), timeout=TIMEOUT_S).reports, findings)
        for report in answer:
            print(f"index: node {report.node_id}: {report.documents} messages of {report.users} users checked")
        return _index_problems(answer)

    found = problems()
    if repair and any(not p.endswith(BODY_NOT_CHECKED) for p in found):
        rebuilt = _answered(admin.RebuildIndex(mail_pb2.IndexCommand(all=True), timeout=TIMEOUT_S).reports, findings)
        left = problems()
        findings.fixed.extend(p for p in found if p not in left)
        said = {_blob_key(p): p for p in _index_problems(rebuilt)}   # the messages indexed without their body
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
            check_replicas(admin, nodes, findings, repair)   # first: the other checks then see converged replicas
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
