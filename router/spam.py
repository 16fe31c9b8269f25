"""Spam classification at delivery and training from the user's moves.

Score of one recipient's copy = the SMTP edge's rules (`Screening.rules`) + naive Bayes
(Robinson's f(w) and Fisher's chi-square combining over the user's and the global token
models, each counted once it holds MIN_MESSAGES spam and ham messages) + the sender's
reputation (its authenticated domain, else its client /24) + the user's own history with
that sender. `Screening.quarantine` files to Spam whatever the score.

The models live on the storage nodes (storage_node/spam_model.py), derived there from
training events written as directory entries: `spam:u:USER:MSG` (with the user's mail),
`spam:g:K:USER:MSG` (global shard K of GLOBAL_SHARDS) and `spam:r:KEY:USER:MSG`
(reputation). An event is the (user, message)'s label, so training is idempotent and a
relabel moves the counts. The router tokenizes a delivery itself (tidings_runtime.spam_tokens,
the search analyzer's words) and reads every model for those tokens in one round.
"""
from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from prometheus_client import Counter, Histogram

from router.directory import Account, Directory
from router.errors import FailedPrecondition, Unavailable
from router.replicas import Replicas
from router.spam_cache import SharedModelCache
from tidings.v1 import storage_pb2, types_pb2
from tidings_runtime import spam_tokens
from tidings_runtime.headers import header_fields, read_header_section, remove_fields
from tidings_runtime.mime import ParsedMail, parse_mail

log = logging.getLogger(__name__)

HEADER = "X-Tidings-Spam"
GLOBAL_SHARDS = 4           # global model partitions `spam:g:0..3` (events spread by (user, message))
MIN_MESSAGES = 5            # a model counts once it has this many spam and this many ham messages
MAX_TEXT = 32 * 1024        # body characters tokenized
ROBINSON_S, ROBINSON_X = 1.0, 0.5   # strength and prior of an unknown token
MIN_DEVIATION = 0.1         # tokens with |f(w) - 0.5| below this say nothing
MAX_INTERESTING = 150       # the most extreme tokens combined
BAYES_SPAM_WEIGHT = 12.0    # score = weight * (p - 0.5): up to +6 (p >= 0.92 alone files to Spam)
BAYES_HAM_WEIGHT = 6.0      # down to -3: ham words alone cannot cancel strong edge rules
REPUTATION_WEIGHT = 8.0     # weight * (spam - ham) / (spam + ham + 2)
USER_SENDER_WEIGHT = 4.0    # weight * (spam - ham) / (spam + ham + 1), the user's own marks
MAX_REASONS = 30            # named in the header, which stays one line of under 998 characters
SENDER_TOKEN = "r:"         # the user's model counts its marks per sender under "r:KEY"

SPAM, HAM = storage_pb2.SpamTraining.SPAM, storage_pb2.SpamTraining.HAM
CLASSIFIED = Counter("tidings_spam_verdicts_total", "Classified copies by verdict", ["verdict"])
REJECTED = Counter("tidings_spam_rejected_total", "Deliveries refused over the reject threshold")
TRAINED = Counter("tidings_spam_trained_total", "Training events by label", ["label"])
CLASSIFY_SECONDS = Histogram("tidings_spam_classify_seconds", "Classifying one delivery (all recipients)")
_NAME = re.compile(r"[^A-Za-z0-9_.-]")


class SpamRejected(FailedPrecondition):
    """A delivery scored over the reject threshold: refused for good (SMTP 550 5.7.1).
    Its message (the gRPC detail) starts with `spam:`."""


@dataclass(frozen=True)
class Verdict:
    score: float
    spam: bool
    reasons: tuple[types_pb2.SpamRule, ...]
    sender: str = ""

    def header(self) -> bytes:
        """The header prepended to the recipient's stored copy."""
        reasons = ",".join(f"{_NAME.sub('_', r.name)}({r.score:.2f})" for r in self.reasons[:MAX_REASONS])
        text = (f"{HEADER}: score={self.score:.2f}; verdict={'spam' if self.spam else 'ham'}"
                + (f"; sender={self.sender}" if self.sender else "") + f"; reasons={reasons}\r\n")
        return text.encode("ascii", "replace")

    def stamp(self, raw: bytes) -> bytes:
        """The copy with the header: right under the topmost Received field (our edge's trace
        of this hop) when there is one, else first."""
        if raw[:9].lower() != b"received:":
            return self.header() + raw
        fields, _ = header_fields(raw)
        at = fields[0].end if fields else 0
        return raw[:at] + self.header() + raw[at:]

    def to_proto(self) -> types_pb2.SpamVerdict:
        return types_pb2.SpamVerdict(score=self.score, spam=self.spam, reasons=list(self.reasons))


@dataclass
class ModelCounts:
    spam_messages: int = 0
    ham_messages: int = 0
    tokens: dict[str, tuple[int, int]] = field(default_factory=dict)

    @property
    def counts(self) -> bool:
        return self.spam_messages >= MIN_MESSAGES and self.ham_messages >= MIN_MESSAGES

    def add(self, other: ModelCounts) -> None:
        self.spam_messages += other.spam_messages
        self.ham_messages += other.ham_messages
        self.add_tokens(other.tokens)

    def add_tokens(self, tokens: dict[str, tuple[int, int]]) -> None:
        for token, (s, h) in tokens.items():
            held = self.tokens.get(token, (0, 0))
            self.tokens[token] = (held[0] + s, held[1] + h)

    @classmethod
    def of(cls, answer: storage_pb2.SpamCountsResponse) -> ModelCounts:
        return cls(answer.spam_messages, answer.ham_messages,
                   {t: (c.spam, c.ham) for t, c in zip(answer.tokens, answer.counts)})


# -- the math -----------------------------------------------------------------------------
def token_probability(spam: int, ham: int, spam_messages: int, ham_messages: int) -> float:
    """Robinson's f(w): Graham's p(w) from the token's message frequencies, pulled towards
    ROBINSON_X by ROBINSON_S imaginary observations."""
    n = spam + ham
    b = spam / spam_messages if spam_messages else 0.0
    g = ham / ham_messages if ham_messages else 0.0
    p = b / (b + g) if b + g else ROBINSON_X
    return (ROBINSON_S * ROBINSON_X + n * p) / (ROBINSON_S + n)


def chi2q(x2: float, v: int) -> float:
    """P(chi-square with v (even) degrees of freedom >= x2)."""
    m = x2 / 2.0
    term = total = math.exp(-m)
    for i in range(1, v // 2):
        term *= m / i
        total += term
    return min(total, 1.0)


def combine(probabilities: Sequence[float]) -> float:
    """Robinson-Fisher indicator in [0, 1] (0.5: no evidence either way)."""
    if not probabilities:
        return 0.5
    n = len(probabilities)
    # Sums of logs, not logs of products: hundreds of small factors underflow.
    ln_spam = sum(math.log(max(1.0 - p, 1e-200)) for p in probabilities)
    ln_ham = sum(math.log(max(p, 1e-200)) for p in probabilities)
    s = 1.0 - chi2q(-2.0 * ln_spam, 2 * n)
    h = 1.0 - chi2q(-2.0 * ln_ham, 2 * n)
    return (1.0 + s - h) / 2.0


def bayes_probability(model: ModelCounts) -> tuple[float, int]:
    """The message's spam probability under the model, and how many tokens decided it."""
    fs = [token_probability(s, h, model.spam_messages, model.ham_messages)
          for token, (s, h) in model.tokens.items() if not token.startswith(SENDER_TOKEN)]
    interesting = sorted((f for f in fs if abs(f - 0.5) >= MIN_DEVIATION), key=lambda f: -abs(f - 0.5))
    chosen = interesting[:MAX_INTERESTING]
    return combine(chosen), len(chosen)


def reputation_key(screening: types_pb2.Screening) -> str:
    """Whom the reputation is about: the authenticated domain, else the client's /24 (/48)."""
    domain = screening.authenticated_domain.strip().lower().rstrip(".")
    if domain and ":" not in domain:
        return domain
    try:
        ip = ipaddress.ip_address(screening.client_ip.strip())
    except ValueError:
        return ""
    if ip.version == 4:
        return "ip4-" + ".".join(str(ip).split(".")[:3])
    return "ip6-" + "-".join(ip.exploded.split(":")[:3])


def _rule(name: str, score: float, detail: str) -> types_pb2.SpamRule:
    return types_pb2.SpamRule(name=name, score=round(score, 2), detail=detail)


def score(screening: types_pb2.Screening, user: ModelCounts, world: ModelCounts | None,
          reputation: ModelCounts | None, sender: str, spam_threshold: float) -> Verdict:
    """One recipient's verdict from the edge's rules and the three models."""
    rules = list(screening.rules)
    bayes = ModelCounts()
    used = []
    if user.counts:
        bayes.add(user)
        used.append("user")
    if world is not None and world.counts:
        bayes.add(world)
        used.append("global")
    if used:
        p, n = bayes_probability(bayes)
        points = (BAYES_SPAM_WEIGHT if p > 0.5 else BAYES_HAM_WEIGHT) * (p - 0.5)
        if n and abs(points) >= 0.01:
            rules.append(_rule("BAYES_SPAM" if points > 0 else "BAYES_HAM", points,
                               f"p={p:.3f} over {n} tokens ({'+'.join(used)})"))
    if sender:
        s, h = user.tokens.get(SENDER_TOKEN + sender, (0, 0))
        if s or h:
            points = USER_SENDER_WEIGHT * (s - h) / (s + h + 1)
            rules.append(_rule("USER_SENDER_SPAM" if points > 0 else "USER_SENDER_HAM", points,
                               f"{sender}: marked spam {s}, not spam {h}"))
        if reputation is not None and (reputation.spam_messages or reputation.ham_messages):
            s, h = reputation.spam_messages, reputation.ham_messages
            points = REPUTATION_WEIGHT * (s - h) / (s + h + 2)
            rules.append(_rule("REPUTATION_BAD" if points > 0 else "REPUTATION_GOOD", points,
                               f"{sender}: spam {s}, ham {h}"))
    if screening.quarantine and not any(r.name == "DMARC_QUARANTINE" for r in rules):
        rules.append(_rule("DMARC_QUARANTINE", 0.0, "DMARC p=quarantine failed"))
    total = round(sum(r.score for r in rules), 2)
    return Verdict(total, screening.quarantine or total >= spam_threshold, tuple(rules), sender)


# -- the header ---------------------------------------------------------------------------
def strip_header(raw: bytes) -> bytes:
    """The raw without any X-Tidings-Spam field a sender put in (only ours is believed)."""
    ours = HEADER.lower()
    return remove_fields(raw, lambda name, _: name == ours)


def parse_header(raw: bytes) -> Verdict | None:
    """The verdict of a stored copy (its first X-Tidings-Spam field), or None."""
    found = read_header_section(raw).values(HEADER)
    return _parse_value(found[0].decode("ascii", "replace")) if found else None


def _parse_value(value: str) -> Verdict:
    parts = dict(p.strip().partition("=")[::2] for p in value.split(";") if "=" in p)
    reasons = tuple(types_pb2.SpamRule(name=m.group(1), score=float(m.group(2)))
                    for m in re.finditer(r"([A-Za-z0-9_.-]+)\((-?[0-9.]+)\)", parts.get("reasons", "")))
    try:
        total = float(parts.get("score", "0"))
    except ValueError:
        total = 0.0
    return Verdict(total, parts.get("verdict") == "spam", reasons, parts.get("sender", ""))


# -- the filter ---------------------------------------------------------------------------
def message_tokens(parsed: ParsedMail) -> list[str]:
    """The message's spam tokens (tidings_runtime.spam_tokens) from its subject, From, and plain
    text (else its HTML), each body at most MAX_TEXT characters."""
    return spam_tokens.tokens_of(parsed.subject, parsed.text[:MAX_TEXT],
                                 "" if parsed.text else parsed.html[:MAX_TEXT],
                                 parsed.from_[0][1] if parsed.from_ else "")


def global_shard(user_id: str, message_id: str) -> int:
    digest = hashlib.blake2b(f"{user_id}:{message_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % GLOBAL_SHARDS


class SpamFilter:
    def __init__(self, replicas: Replicas, directory: Directory, spam_threshold: float = 5.0,
                 reject_threshold: float = 10.0) -> None:
        self.replicas = replicas
        self.directory = directory
        self.spam_threshold = spam_threshold
        self.reject_threshold = reject_threshold
        self.cache = SharedModelCache()

    async def _read(self, model: str, tokens: Sequence[str] = ()) -> storage_pb2.SpamCountsResponse:
        """The model's counts from one replica (Replicas.read_one: counts are statistics, and
        training is written to W replicas, so one that missed some still classifies well)."""
        request = storage_pb2.SpamCountsRequest(model=model, tokens=list(tokens))
        outcome = await self.replicas.read_one(model, lambda stub: stub.SpamCounts(request))
        answers = [a for _, a in outcome.answers]
        if not answers:
            return storage_pb2.SpamCountsResponse(tokens=list(tokens))
        return answers[0]

    async def _optional(self, model: str, tokens: Sequence[str] = ()) -> ModelCounts | None:
        """A shared model (global shard, reputation), through the cache: only tokens not seen
        within CACHE_TTL are read. None (classified without it) when it is unavailable."""
        try:
            held = await self.cache.counts(model, tokens, self._read)
        except Unavailable as exc:
            log.warning("spam model %s unavailable, classifying without it: %s", model, exc)
            return None
        return ModelCounts(held.spam_messages, held.ham_messages, held.tokens)

    async def classify(self, accounts: Sequence[Account], tokens: list[str],
                       screening: types_pb2.Screening) -> dict[str, Verdict]:
        """Each hosted recipient's verdict; SpamRejected when every one is over the reject threshold."""
        with CLASSIFY_SECONDS.time():
            verdicts = await self._classify(accounts, tokens, screening)
        if verdicts and all(v.score >= self.reject_threshold for v in verdicts.values()):
            REJECTED.inc()
            worst = max(verdicts.values(), key=lambda v: v.score)
            reasons = ", ".join(f"{r.name}({r.score:.2f})" for r in worst.reasons)
            raise SpamRejected(f"spam: score {worst.score:.2f} is over the reject threshold "
                               f"{self.reject_threshold:g} ({reasons})")
        for v in verdicts.values():
            CLASSIFIED.labels("spam" if v.spam else "ham").inc()
        return verdicts

    async def _classify(self, accounts: Sequence[Account], tokens: list[str],
                        screening: types_pb2.Screening) -> dict[str, Verdict]:
        """Every model read at once, for the tokens the router found (one round, the calls of
        one turn of the loop: coalesced into one Batch a node)."""
        sender = reputation_key(screening)
        extra = [SENDER_TOKEN + sender] if sender else []
        users = [self._read(a.user_id, [*tokens, *extra]) for a in accounts]
        shards = [self._optional(f"spam:g:{k}", tokens) for k in range(GLOBAL_SHARDS)]
        reputation = self._optional(f"spam:r:{sender}") if sender else None
        user_answers, shard_counts, rep = await asyncio.gather(
            asyncio.gather(*users), asyncio.gather(*shards),
            reputation if reputation is not None else _none())
        held = [shard for shard in shard_counts if shard is not None]
        world = ModelCounts(sum(s.spam_messages for s in held), sum(s.ham_messages for s in held))
        if world.counts:        # its tokens are summed only when the model is used (score)
            for shard in held:
                world.add_tokens(shard.tokens)
        return {a.user_id: score(screening, ModelCounts.of(u), world, rep, sender, self.spam_threshold)
                for a, u in zip(accounts, user_answers)}

    async def train(self, user_id: str, message_id: str, raw: bytes, spam: bool) -> None:
        """Label (user, message) spam or ham in the user's model, the global one and the
        sender's reputation. Idempotent: the event is the pair's label, and the nodes move
        the counts only when it changes."""
        tokens = await asyncio.to_thread(lambda: message_tokens(parse_mail(raw)))
        verdict = parse_header(raw)
        sender = verdict.sender if verdict is not None else ""
        if ":" in sender:
            sender = ""
        label = SPAM if spam else HAM
        writes = [
            self._event(f"spam:u:{user_id}:{message_id}", label, [*tokens, *([SENDER_TOKEN + sender] if sender else [])]),
            self._event(f"spam:g:{global_shard(user_id, message_id)}:{user_id}:{message_id}", label, tokens),
        ]
        if sender:
            writes.append(self._event(f"spam:r:{sender}:{user_id}:{message_id}", label, []))
        await asyncio.gather(*writes)
        self.cache.forget(f"spam:g:{global_shard(user_id, message_id)}", f"spam:r:{sender}")
        TRAINED.labels("spam" if spam else "ham").inc()

    async def _event(self, key: str, label: int, tokens: list[str]) -> None:
        await self.directory.put(key, storage_pb2.SpamTraining(label=label, tokens=tokens).SerializeToString())


async def _none() -> None:
    return None
