"""A bound on one user's open IMAP sessions on this edge (Dovecot's
``mail_max_userip_connections``): a login over the bound is refused with ``NO [LIMIT]``."""
from __future__ import annotations

from collections import Counter


class UserConnections:
    """How many sessions each user has signed in here; at most ``limit`` at once."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._open: Counter[str] = Counter()

    def acquire(self, user: str) -> bool:
        """Count one more session of ``user``; False (and nothing counted) when at the bound."""
        if self._open[user] >= self.limit:
            return False
        self._open[user] += 1
        return True

    def release(self, user: str) -> None:
        self._open[user] -= 1
        if self._open[user] <= 0:
            del self._open[user]

    def count(self, user: str) -> int:
        return self._open[user]

    @property
    def total(self) -> int:
        return sum(self._open.values())
