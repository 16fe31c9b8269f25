"""The classifier measured on a generated corpus (no public spam/ham corpus is packaged for
Debian or PyPI): messages drawn from overlapping vocabularies (shared words, class-leaning
words each class also uses, promotional ham, hammy spam), trained through a real storage
Engine (training events -> derived counts), classified with the router's scoring.
Prints precision and recall at the spam threshold; asserts a floor."""
from __future__ import annotations

import random
import time
from pathlib import Path

from router import spam
from router.spam import ModelCounts
from storage_node.blobs import LocalBlobStore
from storage_node.engine import Engine
from storage_node.model import DirectoryValue
from tidings.v1 import storage_pb2, types_pb2
from tidings_runtime import spam_tokens

USER = "0123456789abcdef"
COMMON = "the and you for with this that have from your are was will not our can all about more".split()
SHARED = [f"shared{i}" for i in range(300)]
SPAMMY = [f"promo{i}" for i in range(200)]
HAMMY = [f"work{i}" for i in range(200)]


def message(rng: random.Random, is_spam: bool) -> tuple[str, str, str]:
    lean, other = (SPAMMY, HAMMY) if is_spam else (HAMMY, SPAMMY)
    crossover = rng.choice((0.1, 0.3, 0.5)) if rng.random() < 0.2 else 0.05   # hard cases: mixed vocabulary
    words = []
    for _ in range(rng.randint(15, 120)):
        r = rng.random()
        if r < 0.35:
            words.append(rng.choice(COMMON))
        elif r < 0.65:
            words.append(SHARED[min(int(rng.paretovariate(1.2)) - 1, len(SHARED) - 1)])
        else:
            pool = other if rng.random() < crossover else lean
            words.append(pool[min(int(rng.paretovariate(1.0)) - 1, len(pool) - 1)])
    sender = f"x{rng.randint(0, 5000)}@bulk{rng.randint(0, 300)}.example" if is_spam else \
        f"p{rng.randint(0, 40)}@corp{rng.randint(0, 5)}.example"
    return " ".join(words[:6]), " ".join(words), sender


def test_precision_and_recall_on_a_generated_corpus(tmp_path: Path) -> None:
    rng = random.Random(17)
    engine = Engine(tmp_path / "db", LocalBlobStore(tmp_path / "blobs"))
    try:
        for n in range(1000):
            is_spam = n % 2 == 0
            subject, body, sender = message(rng, is_spam)
            event = storage_pb2.SpamTraining(label=spam.SPAM if is_spam else spam.HAM,
                                             tokens=spam_tokens.tokens_of(subject, body, "", sender))
            with engine.txn() as txn:
                engine.put_directory(txn, f"spam:u:{USER}:m{n}", DirectoryValue(event.SerializeToString(), 1))
        screening = types_pb2.Screening(screened=True)
        outcome = {"tp": 0, "fp": 0, "fn": 0, "tn": 0}
        leaning = {"tp": 0, "fp": 0, "fn": 0, "tn": 0}      # p > 0.5 (BAYES_SPAM fired at all)
        started = time.process_time()
        for n in range(1000):
            is_spam = n % 2 == 0
            subject, body, sender = message(rng, is_spam)
            found = engine.spam_counts(USER, spam_tokens.tokens_of(subject, body, "", sender))
            user = ModelCounts(found.spam_messages, found.ham_messages, dict(zip(found.tokens, found.counts)))
            verdict = spam.score(screening, user, None, None, "", 5.0)
            outcome[("t" if verdict.spam == is_spam else "f") + ("p" if verdict.spam else "n")] += 1
            lean = verdict.score > 0
            leaning[("t" if lean == is_spam else "f") + ("p" if lean else "n")] += 1
        cpu_ms = (time.process_time() - started)    # seconds for 1000 messages: ms a message
    finally:
        engine.close()
    precision = outcome["tp"] / max(outcome["tp"] + outcome["fp"], 1)
    recall = outcome["tp"] / max(outcome["tp"] + outcome["fn"], 1)
    lean_precision = leaning["tp"] / max(leaning["tp"] + leaning["fp"], 1)
    lean_recall = leaning["tp"] / max(leaning["tp"] + leaning["fn"], 1)
    print(f"\ngenerated corpus, 1000 trained / 1000 classified: at the spam threshold precision {precision:.3f} "
          f"recall {recall:.3f} {outcome}; at p > 0.5 precision {lean_precision:.3f} recall {lean_recall:.3f}; "
          f"{cpu_ms:.3f} ms CPU a message (tokenize, multi-get, score)")
    assert precision >= 0.98 and recall >= 0.75
    assert lean_precision >= 0.95 and lean_recall >= 0.95
