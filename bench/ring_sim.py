"""Ring simulation: load balance and data movement of the token allocation.

    .venv/bin/python -m bench.ring_sim [--nodes 1000] [--vnodes 256] [--zones 3] [--keys 1000000]

Exact figures come from token-space ownership (``Ring.ownership``, ``Ring.diff``); the
simulated user ids show the same thing with sampling noise on top (1,000 keys a node at
1M keys is already +-3 % a node, so the maximum of 1,000 nodes sits near 1.10x on noise
alone: the targets are judged on the exact figures).
"""
from __future__ import annotations

import argparse
import time
from collections import Counter

from router.ring import TOKEN_SPACE, NodeInfo, Ring
from tidings_runtime.partitions import partition_token

BALANCE_TARGET = 1.10
MOVE_TARGET = 1.10


def make_nodes(count: int, zones: int, first: int = 1) -> list[NodeInfo]:
    return [NodeInfo(str(i), f"10.0.{i // 250}.{i % 250}:7100", f"zone-{i % zones}")
            for i in range(first, first + count)]


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def spread(shares: dict[str, float]) -> tuple[float, float]:
    mean = sum(shares.values()) / len(shares)
    return max(shares.values()) / mean, min(shares.values()) / mean


def moved(before: Ring, after: Ring, n: int) -> tuple[float, float, bool]:
    """(fraction of the token space whose n-replica set changes, fraction of the n
    replica placements that change, whether only the newcomer/leaver is involved)."""
    changes = before.diff(after, n)
    space = sum(c.size for c in changes) / TOKEN_SPACE
    placements = sum(c.size * len(set(c.after) - set(c.before)) for c in changes) / TOKEN_SPACE / n
    joined = {x.node_id for x in after.nodes} - {x.node_id for x in before.nodes}
    left = {x.node_id for x in before.nodes} - {x.node_id for x in after.nodes}
    # A join may only add the newcomer to replica sets; a leave may only drop the leaver.
    only = all(set(c.after) - set(c.before) <= joined if joined else set(c.before) - set(c.after) <= left
               for c in changes)
    return space, placements, only


def simulate_keys(before: Ring, after: Ring, tokens: list[int]) -> dict[str, float]:
    """Per-key figures over simulated user ids."""
    primary = Counter()
    replicas = Counter()
    moved_primary = moved_replica = 0
    for token in tokens:
        old = before.preference_list_for_token(token, 3)
        new = after.preference_list_for_token(token, 3)
        primary[old[0].node_id] += 1
        for node in old:
            replicas[node.node_id] += 1
        if old[0] != new[0]:
            moved_primary += 1
        moved_replica += len(set(new) - set(old))
    mean = len(tokens) / len(before.nodes)
    return {
        "primary_max": max(primary[n.node_id] for n in before.nodes) / mean,
        "primary_min": min(primary[n.node_id] for n in before.nodes) / mean,
        "replica_max": max(replicas[n.node_id] for n in before.nodes) / (3 * mean),
        "replica_min": min(replicas[n.node_id] for n in before.nodes) / (3 * mean),
        "moved_primary": moved_primary / len(tokens),
        "moved_replica": moved_replica / (3 * len(tokens)),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ring_sim", description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--vnodes", type=int, default=256)
    parser.add_argument("--zones", type=int, default=3)
    parser.add_argument("--keys", type=int, default=1_000_000)
    args = parser.parse_args(argv)
    n_nodes, vnodes, zones = args.nodes, args.vnodes, args.zones
    results: list[bool] = []
    print(f"ring: {n_nodes} nodes x {vnodes} vnodes over {zones} zones, replication N=3")

    listed = make_nodes(n_nodes, zones)
    started = time.perf_counter()
    ring = Ring(listed, vnodes=vnodes)
    build = time.perf_counter() - started
    text = ring.to_json()
    started = time.perf_counter()
    Ring.from_json(text)
    load = time.perf_counter() - started
    print(f"  allocate tokens and build: {build:.2f} s; from the JSON ring map "
          f"({len(text) / 1e6:.1f} MB): {load:.2f} s")

    print("\nbalance, exact token-space ownership (share / mean share):")
    for n, label in ((1, "primary (first replica)"), (3, "any of the 3 replicas")):
        hi, lo = spread(ring.ownership(n))
        ok = hi <= BALANCE_TARGET
        results.append(ok)
        print(f"  {label:<35} max {hi:.3f}x  min {lo:.3f}x   target max <= {BALANCE_TARGET:.2f}x  {verdict(ok)}")

    random_ring = Ring(listed, vnodes=vnodes, tokens={
        x.node_id: [partition_token(f"{x.node_id}#{i}") for i in range(vnodes)] for x in listed})
    for n, label in ((1, "baseline: random tokens, primary"), (3, "baseline: random tokens, replicas")):
        hi, lo = spread(random_ring.ownership(n))
        print(f"  {label:<35} max {hi:.3f}x  min {lo:.3f}x   (for comparison)")

    newcomer = make_nodes(1, zones, first=n_nodes + 1)[0]
    started = time.perf_counter()
    grown = ring.with_node(newcomer)
    join = time.perf_counter() - started
    ideal = 1 / (n_nodes + 1)
    print(f"\nadding node {newcomer.node_id} ({newcomer.zone}) to {n_nodes} nodes "
          f"(allocated in {join:.2f} s); ideal share to move 1/(N+1) = {ideal:.6f}")
    for n in (1, 3):
        space, placements, only = moved(ring, grown, n)
        ok = placements / ideal <= MOVE_TARGET and only
        results.append(ok)
        what = "keys whose primary moves" if n == 1 else "replica placements that change"
        print(f"  N={n}: {what}: {placements:.6f} = {placements / ideal:.3f}x ideal"
              f"{'' if n == 1 else f' (token space touched {space:.6f})'}; only to the newcomer: "
              f"{only}   target <= {MOVE_TARGET:.2f}x  {verdict(ok)}")
    hi, lo = spread(grown.ownership(3))
    print(f"  after the join, replica load max {hi:.3f}x min {lo:.3f}x")

    if args.keys:
        started = time.perf_counter()
        tokens = [partition_token(f"user-{i}") for i in range(args.keys)]
        sim = simulate_keys(ring, grown, tokens)
        print(f"\n{args.keys:,} simulated user ids ({time.perf_counter() - started:.1f} s; "
              f"{args.keys / n_nodes:,.0f} keys a node, sampling noise +-{(n_nodes / args.keys) ** 0.5:.1%} a node):")
        print(f"  primary  max {sim['primary_max']:.3f}x min {sim['primary_min']:.3f}x; "
              f"replicas max {sim['replica_max']:.3f}x min {sim['replica_min']:.3f}x")
        print(f"  on the join: primary moved for {sim['moved_primary']:.6f} of keys, "
              f"{sim['moved_replica']:.6f} of replica placements changed (ideal {ideal:.6f})")

    print("\nsmall rings, 3 -> 4 nodes (expect about 1/4 to move):")
    for small_zones in (1, 3):
        small = make_nodes(4, small_zones)
        three = Ring(small[:3], vnodes=vnodes)
        four = three.with_node(small[3])
        space1, _, _ = moved(three, four, 1)
        _, placements3, _ = moved(three, four, 3)
        hi1, lo1 = spread(four.ownership(1))
        hi3, lo3 = spread(four.ownership(3))
        ok = abs(space1 - 0.25) <= 0.25 * (MOVE_TARGET - 1)
        results.append(ok)
        print(f"  {small_zones} zone(s): primary moved {space1:.4f} (target 0.25 +-10 %) {verdict(ok)}; "
              f"replica placements changed {placements3:.4f}; after: primary max {hi1:.3f}x min {lo1:.3f}x, "
              f"replica max {hi3:.3f}x min {lo3:.3f}x")

    leaver = listed[n_nodes // 2].node_id
    shrunk = ring.without_node(leaver)
    share = ring.ownership(1)[leaver]
    space1, _, only = moved(ring, shrunk, 1)
    print(f"\nremoving node {leaver}: primary moved {space1:.6f} = its share {share:.6f}; "
          f"only its ranges: {only}")

    print(f"\noverall: {verdict(all(results))} ({sum(results)}/{len(results)} targets met)")


if __name__ == "__main__":
    main()
