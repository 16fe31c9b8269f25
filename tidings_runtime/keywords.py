"""IMAP keywords kept with a message (e.g. ``$Forwarded``, ``$Junk``, ``$label1``): a small set
of atoms, bounded, compared without regard to case (RFC 3501 2.3.2), kept in one canonical
order so every replica writes the same bytes for the same set."""
from __future__ import annotations

from collections.abc import Iterable

MAX_KEYWORDS = 32
MAX_KEYWORD_LENGTH = 64
# RFC 3501 atom-specials: ( ) { SP CTL % * " \ ], and ] of resp-specials; only 7-bit CHARs.
_SPECIALS = frozenset('(){ %*"\\]')


class BadKeyword(ValueError):
    """A keyword that is no atom, too long, or too many of them."""


def check_keyword(name: str) -> str:
    if not name:
        raise BadKeyword("an empty keyword")
    if len(name) > MAX_KEYWORD_LENGTH:
        raise BadKeyword(f"keyword {name[:MAX_KEYWORD_LENGTH]!r}... is over {MAX_KEYWORD_LENGTH} characters")
    if any(not 0x20 < ord(c) < 0x7F or c in _SPECIALS for c in name):
        raise BadKeyword(f"keyword {name!r} is not an IMAP atom")
    return name


def canonical(names: Iterable[str]) -> tuple[str, ...]:
    """Checked, without duplicates (ignoring case: the first spelling stays), in lowercase
    order; at most MAX_KEYWORDS."""
    held: dict[str, str] = {}
    for name in names:
        held.setdefault(check_keyword(name).lower(), name)
    if len(held) > MAX_KEYWORDS:
        raise BadKeyword(f"at most {MAX_KEYWORDS} keywords a message")
    return tuple(held[key] for key in sorted(held))


def changed(held: Iterable[str], add: Iterable[str] = (), remove: Iterable[str] = ()) -> tuple[str, ...]:
    """`held` with `add` added and `remove` taken away (a name in both is removed)."""
    gone = {check_keyword(name).lower() for name in remove}
    kept = [name for name in held if name.lower() not in gone]
    return canonical([*kept, *(name for name in add if name.lower() not in gone)])
