"""bench/ingest_vs_postfix.py: its messages are the peer's, and the Tidings side runs end to end
on a tiny input (the peer's side needs Dovecot and is run by the benchmark itself)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from bench import ingest_vs_postfix

PEER_LOAD = Path(__file__).resolve().parents[3] / "shared" / "peer" / "load.py"


def test_messages_are_the_peers_generators() -> None:
    if not PEER_LOAD.is_file():
        pytest.skip(f"no {PEER_LOAD}")
    spec = importlib.util.spec_from_file_location("peer_load", PEER_LOAD)
    assert spec is not None and spec.loader is not None
    load = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(load)
    for i in (0, 1, 49, 50, 777, 4999):
        assert ingest_vs_postfix.make_message(i) == load.make_message(i)[:2]


def test_messages_are_3_to_8_kb_and_marked() -> None:
    for i in range(200):
        sender, raw = ingest_vs_postfix.make_message(i)
        assert 3000 <= len(raw) <= 8200 and f"peerbench message {i}\r\n".encode() in raw
        assert sender.endswith("@peer.test")


def test_tidings_side_runs_and_checks_searchable(capsys: pytest.CaptureFixture[str]) -> None:
    ingest_vs_postfix.main(["--messages", "20", "--no-peer", "--modes", "off"])
    out = capsys.readouterr().out
    assert "1/1 sampled messages found by search right after their 250" in out
    assert "'peerbench' finds 40 of 40" in out
    assert "tidings, checks off CPU ms/msg by process:" in out and "storage-1" in out
    assert "no ratios: the peer did not run (--no-peer)" in out
