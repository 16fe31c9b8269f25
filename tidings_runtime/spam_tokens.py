"""A message's spam tokens, as every spam model counts them: the search analyzer's words of
the subject, the From address's keywords and the body. The router tokenizes a delivery once
and asks every model (the user's, the global shards) for the same tokens in one round; a
storage node tokenizes a training event's text (and a `SpamCountsRequest.text` from an
older router) the same way."""
from __future__ import annotations

from collections.abc import Iterable

from tidings_runtime.analysis import HTML, TEXT, address_keywords, fold_accents, normalize

MAX_TOKENS = 200            # distinct tokens a message contributes
MAX_TEXT = 64 * 1024        # characters of body text tokenized
MIN_LEN, MAX_LEN = 2, 40    # token lengths kept (longer: base64 and hashes; shorter: noise)


def tokens_of(subject: str, text: str, html: str, from_: str) -> list[str]:
    """A message's distinct tokens (the search analyzer's), at most MAX_TOKENS, first seen first:
    subject words as `s:WORD`, the From address's keywords as `f:KEY`, body words as they are."""
    seen: dict[str, None] = {}

    def add(values: Iterable[str], prefix: str = "") -> bool:
        for value in values:
            if MIN_LEN <= len(value) <= MAX_LEN:
                seen.setdefault(prefix + value, None)
                if len(seen) >= MAX_TOKENS:
                    return False
        return True

    (add(TEXT.tokens(subject), "s:")
     and add(address_keywords(fold_accents(normalize(from_.strip()))), "f:")
     and add(TEXT.tokens(text[:MAX_TEXT]) if text else HTML.tokens(html[:MAX_TEXT])))
    return list(seen)
