"""The shared spam models' counts (the global shards, the senders' reputations) as this router
last read them, kept for a TTL: every delivery reads them, they move slowly, and a shard's
common tokens are the same for everyone.

Each model keeps its tokens in two buckets, the one being filled and the one before it,
swapped every half TTL (the older one dropped): a token is held for between half the TTL and
the whole of it, and a lookup is two dict probes, with no per-token clock or LRU upkeep on
the delivery path. A router forgets what its own training changed (``forget``: the model is
dropped, and a read that was in flight then does not refill it); another router's training
shows within the TTL.
"""
from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from prometheus_client import Counter

from tidings.v1 import storage_pb2

CACHE_TTL = 10.0            # seconds a router keeps the shared models' counts it read
MAX_MODELS = 10_000         # models kept (four global shards and a reputation per recent sender)
MAX_TOKENS = 200_000        # tokens a model's filling bucket holds before it is swapped early

CACHE = Counter("tidings_spam_cache_reads_total", "Shared spam model reads by cache outcome", ["outcome"])

Reader = Callable[[str, Sequence[str]], Awaitable[storage_pb2.SpamCountsResponse]]
Pair = tuple[int, int]


@dataclass
class Held:
    """What a model's read gave: its totals and the counts of the tokens asked for."""

    spam_messages: int
    ham_messages: int
    tokens: dict[str, Pair]


@dataclass
class _Model:
    started: float                      # when `filling` began
    read_at: float = -1.0               # when the totals were read (-1: never)
    spam_messages: int = 0
    ham_messages: int = 0
    filling: dict[str, Pair] = field(default_factory=dict)
    before: dict[str, Pair] = field(default_factory=dict)


class SharedModelCache:
    def __init__(self, ttl: float = CACHE_TTL, max_tokens: int = MAX_TOKENS, max_models: int = MAX_MODELS) -> None:
        self.ttl = ttl
        self.max_tokens = max_tokens
        self.max_models = max_models
        self._models: OrderedDict[str, _Model] = OrderedDict()
        self._generation: dict[str, int] = {}

    def _model(self, name: str, now: float) -> _Model:
        model = self._models.get(name)
        if model is None:
            model = self._models[name] = _Model(now)
            while len(self._models) > self.max_models:
                self._models.popitem(last=False)
        else:
            self._models.move_to_end(name)
            age = now - model.started
            if age >= self.ttl / 2:
                model.before = model.filling if age < self.ttl else {}
                model.filling = {}
                model.started = now
        return model

    async def counts(self, name: str, tokens: Sequence[str], read: Reader) -> Held:
        """The model's totals and these tokens' counts: read (only the tokens not held) when
        some token or the totals are not held."""
        now = time.monotonic()
        model = self._model(name, now)
        filling, before = model.filling, model.before
        held: dict[str, Pair] = {}
        missing = []
        for token in tokens:
            pair = filling.get(token) or before.get(token)
            if pair is None:
                missing.append(token)
            else:
                held[token] = pair
        if not missing and 0 <= now - model.read_at < self.ttl:
            CACHE.labels("hit").inc()
            return Held(model.spam_messages, model.ham_messages, held)
        CACHE.labels("miss").inc()
        generation = self._generation.get(name, 0)
        answer = await read(name, missing)
        found = {token: (c.spam, c.ham) for token, c in zip(answer.tokens, answer.counts)}
        held.update(found)
        if self._generation.get(name, 0) == generation:     # not forgotten meanwhile
            model = self._model(name, now)
            model.read_at, model.spam_messages, model.ham_messages = now, answer.spam_messages, answer.ham_messages
            if len(model.filling) + len(found) > self.max_tokens:
                model.before, model.filling, model.started = model.filling, {}, now
            model.filling.update(found)
        return Held(answer.spam_messages, answer.ham_messages, held)

    def forget(self, *names: str) -> None:
        for name in names:
            self._generation[name] = self._generation.get(name, 0) + 1
            self._models.pop(name, None)
