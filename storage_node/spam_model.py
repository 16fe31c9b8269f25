"""The spam models on one replica: naive-Bayes token counts and sender reputations,
derived from training events.

A training event is a directory entry (`spam:u:USER:MSG`, `spam:g:K:USER:MSG`,
`spam:r:KEY:USER:MSG`; value `tidings.v1.SpamTraining`: a label and the message's tokens)
and replicates like any entry (LWW by version, hints, anti-entropy, range streaming). In
the batch that replaces an event, the replica takes the replaced event's label and tokens
out of its model's counts and puts the new one's in (as folder counters and the queue's
due index are derived), so each replica's counts are exact for the events it holds and
converge when the events do. The same label twice changes nothing; spam -> ham moves the
message's counts from one side to the other.

Counts (`spam_counts` column family, key `token(model) | model | 0 | token`): spam(8) |
ham(8); the empty token holds the model's trained messages.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

from google.protobuf.message import DecodeError

from storage_node import keys
from storage_node.batch import Source, Txn
from tidings.v1 import storage_pb2
from tidings_runtime.partitions import SPAM_PREFIX, directory_partition

_PAIR = struct.Struct(">QQ")
Label = storage_pb2.SpamTraining.Label
SPAM, HAM = storage_pb2.SpamTraining.SPAM, storage_pb2.SpamTraining.HAM


@dataclass(frozen=True)
class Counts:
    spam_messages: int
    ham_messages: int
    tokens: list[str]
    counts: list[tuple[int, int]]


def is_event(key: str) -> bool:
    return key.startswith(SPAM_PREFIX)


def decode_event(value: bytes | None) -> storage_pb2.SpamTraining:
    event = storage_pb2.SpamTraining()
    if value:
        try:
            event.ParseFromString(value)
        except DecodeError:
            return storage_pb2.SpamTraining()
    return event


def _side(label: int) -> int | None:
    return 0 if label == SPAM else 1 if label == HAM else None


def rederive(txn: Txn, key: str, old_value: bytes | None, new_value: bytes) -> None:
    """Move the model's counts from the replaced event to the new one (same batch)."""
    old, new = decode_event(old_value), decode_event(new_value)
    if old.label == new.label and list(old.tokens) == list(new.tokens):
        return
    model = directory_partition(key)
    deltas: dict[str, list[int]] = {}
    for event, sign in ((old, -1), (new, 1)):
        side = _side(event.label)
        if side is None:
            continue
        for token in ("", *dict.fromkeys(event.tokens)):
            deltas.setdefault(token, [0, 0])[side] += sign
    changed = [(t, d) for t, d in deltas.items() if d != [0, 0]]
    count_keys = [keys.spam_count(model, t) for t, _ in changed]
    for count_key, value, (_, (ds, dh)) in zip(count_keys, txn.multi_get(keys.CF_SPAM, count_keys), changed):
        spam, ham = _PAIR.unpack(value) if value else (0, 0)
        spam, ham = max(spam + ds, 0), max(ham + dh, 0)
        if spam or ham:
            txn.put(keys.CF_SPAM, count_key, _PAIR.pack(spam, ham))
        else:
            txn.delete(keys.CF_SPAM, count_key)


def counts(reader: Source, model: str, tokens: list[str]) -> Counts:
    """The model's totals and each token's counts: one multi-get."""
    values = reader.multi_get(keys.CF_SPAM, [keys.spam_count(model, t) for t in ("", *tokens)])
    pairs = [_PAIR.unpack(v) if v else (0, 0) for v in values]
    return Counts(pairs[0][0], pairs[0][1], tokens, pairs[1:])
