"""The spam models on one replica: counts derived from training events in their own batch,
idempotent (the same label twice counts once), moved by a relabel, LWW like any entry."""
from __future__ import annotations

from pathlib import Path

import pytest

from storage_node import keys
from storage_node.blobs import LocalBlobStore
from storage_node.engine import Engine
from storage_node.model import DirectoryValue
from tidings.v1 import storage_pb2
from tidings_runtime import spam_tokens

SPAM, HAM, NONE = storage_pb2.SpamTraining.SPAM, storage_pb2.SpamTraining.HAM, storage_pb2.SpamTraining.NONE
USER = "00112233aabbccdd"


@pytest.fixture
def engine(tmp_path: Path):  # type: ignore[no-untyped-def]
    e = Engine(tmp_path / "db", LocalBlobStore(tmp_path / "blobs"))
    yield e
    e.close()


def train(engine: Engine, key: str, label: int, tokens: list[str], version: int) -> None:
    value = storage_pb2.SpamTraining(label=label, tokens=tokens).SerializeToString()  # type: ignore[arg-type]
    with engine.txn() as txn:
        engine.put_directory(txn, key, DirectoryValue(value, version))


def model(engine: Engine, name: str, tokens: list[str]) -> tuple[int, int, list[tuple[int, int]]]:
    found = engine.spam_counts(name, tokens)
    return found.spam_messages, found.ham_messages, found.counts


def test_training_is_idempotent_and_a_relabel_moves_the_counts(engine: Engine) -> None:
    key = f"spam:u:{USER}:m1"
    train(engine, key, SPAM, ["cheap", "pills"], 10)
    train(engine, key, SPAM, ["cheap", "pills"], 11)                 # the same move twice
    assert model(engine, USER, ["cheap", "pills", "hello"]) == (1, 0, [(1, 0), (1, 0), (0, 0)])
    train(engine, f"spam:u:{USER}:m2", HAM, ["hello", "cheap"], 12)
    assert model(engine, USER, ["cheap", "pills", "hello"]) == (1, 1, [(1, 1), (1, 0), (0, 1)])
    train(engine, key, HAM, ["cheap", "pills"], 13)                  # spam -> ham
    assert model(engine, USER, ["cheap", "pills", "hello"]) == (0, 2, [(0, 2), (0, 1), (0, 1)])
    train(engine, key, SPAM, ["cheap", "pills"], 14)                 # -> spam again: counted once
    assert model(engine, USER, ["cheap", "pills", "hello"]) == (1, 1, [(1, 1), (1, 0), (0, 1)])
    train(engine, key, HAM, ["cheap", "pills"], 9)                   # an older event loses (LWW)
    assert model(engine, USER, ["cheap"]) == (1, 1, [(1, 1)])
    train(engine, key, NONE, [], 20)                                 # untrained: its counts leave
    train(engine, f"spam:u:{USER}:m2", NONE, [], 20)
    assert model(engine, USER, ["cheap", "pills", "hello"]) == (0, 0, [(0, 0)] * 3)
    assert list(engine.scan(keys.CF_SPAM, b"", None)) == []          # nothing left behind


def test_replicas_applying_the_same_events_in_any_order_agree(tmp_path: Path) -> None:
    events = [(f"spam:g:1:{USER}:m{i % 5}", SPAM if i % 3 else HAM, [f"t{i % 7}", f"t{i % 4}"], 100 + i)
              for i in range(30)]
    answers = []
    for n, order in enumerate((events, events[::-1], sorted(events, key=lambda e: e[2]))):
        e = Engine(tmp_path / f"db{n}", LocalBlobStore(tmp_path / "blobs"))
        try:
            for key, label, tokens, version in order:
                train(e, key, label, tokens, version)
            answers.append(model(e, "spam:g:1", [f"t{i}" for i in range(7)]))
        finally:
            e.close()
    assert answers[0] == answers[1] == answers[2]
    assert answers[0][0] + answers[0][1] == 5                        # five messages, each counted once


def test_models_and_reputations_are_partitions_of_their_own() -> None:
    assert keys.directory(f"spam:u:{USER}:m1")[:8] == keys.partition(USER)[:8]    # with the user's mail
    assert keys.directory("spam:g:2:u:m")[:8] == keys.derived_prefix("spam:g:2")[:8]
    assert keys.directory("spam:r:example.com:u:m")[:8] == keys.derived_prefix("spam:r:example.com")[:8]
    assert keys.directory("spam:r:example.com:u:m")[:8] != keys.directory("spam:r:example.org:u:m")[:8]


def test_a_message_has_a_bounded_number_of_distinct_tokens() -> None:
    body = " ".join(f"word{i}" for i in range(1000))
    tokens = spam_tokens.tokens_of("Cheap Pills", body + " word1 word1", "", "Bob@Spam.Example.com")
    assert len(tokens) == spam_tokens.MAX_TOKENS == len(set(tokens))
    assert tokens[:2] == ["s:cheap", "s:pills"]
    assert "f:bob@spam.example.com" in tokens and "f:example.com" in tokens
    assert spam_tokens.tokens_of("", "", "<p>Caf&eacute; <b>gratuit</b></p>", "") == ["cafe", "gratuit"]
