"""`python -m bench`: run every benchmark in turn (pass names to run only some)."""
from __future__ import annotations

import importlib
import sys

BENCHMARKS = ["ring_sim", "search_bench", "node_ingest", "mail_flow", "outbound", "push_latency", "imap_idle",
              "api_latency", "ingest_vs_postfix", "imap_vs_dovecot", "synced_write_stall",
              "grpc_calls"]


def main(argv: list[str]) -> None:
    chosen = [name for name in BENCHMARKS if not argv or name in argv]
    for name in chosen:
        print(f"==> bench.{name}", flush=True)
        module = importlib.import_module(f"bench.{name}")
        saved, sys.argv = sys.argv, [f"bench.{name}"]
        try:
            module.main()
        finally:
            sys.argv = saved


if __name__ == "__main__":
    main(sys.argv[1:])
