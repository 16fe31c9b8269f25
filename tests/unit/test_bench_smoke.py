"""The benchmarks still run end to end on tiny inputs (their figures come from `make bench`)."""
from __future__ import annotations

import pytest

from bench import grpc_calls, node_ingest, search_bench, synced_write_stall


def test_node_ingest_reports_every_rate(capsys: pytest.CaptureFixture[str]) -> None:
    node_ingest.main(["--messages", "60", "--group", "1", "8"])
    out = capsys.readouterr().out
    for line in ("store + index, group of 1", "store alone, group of 8", "raw RocksDB put, group of 8",
                 "group of 8: store + index runs at"):
        assert line in out


def test_search_bench_reports_every_class(capsys: pytest.CaptureFixture[str]) -> None:
    search_bench.main(["--messages", "300", "--queries", "3", "--no-others"])
    out = capsys.readouterr().out
    assert "index build tidings" in out and "remove tidings" in out
    for cls in search_bench.CLASSES:
        assert cls[:10] in out


def test_synced_write_stall_reports_both_ways(capsys: pytest.CaptureFixture[str]) -> None:
    synced_write_stall.main(["--seconds", "0.2"])
    out = capsys.readouterr().out
    assert "rocksdict sync=True (baseline)" in out and "RdictStore: write + flush_wal" in out and "x" in out


def test_grpc_calls_reports_unary_and_stream(capsys: pytest.CaptureFixture[str]) -> None:
    grpc_calls.main(["--calls", "64", "--callers", "4"])
    out = capsys.readouterr().out
    assert "unary call (baseline)" in out and "stream message" in out and "stream / unary CPU" in out
