"""A storage node's tunables, from the environment (TIDINGS_*), with their defaults."""
from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Settings:
    hint_interval_s: float = 1.0          # TIDINGS_HINT_INTERVAL_S: between hint replay rounds
    gc_interval_s: float = 3600.0         # TIDINGS_GC_INTERVAL_S: between garbage collections
    tombstone_grace_s: float = 864000.0   # TIDINGS_TOMBSTONE_GRACE_S: tombstones and hints live 10 days
    index_interval_s: float = 0.2         # TIDINGS_INDEX_INTERVAL_S: between rounds sealing search postings

    @classmethod
    def from_env(cls) -> "Settings":
        env = os.environ.get
        return cls(
            hint_interval_s=float(env("TIDINGS_HINT_INTERVAL_S", cls.hint_interval_s)),
            gc_interval_s=float(env("TIDINGS_GC_INTERVAL_S", cls.gc_interval_s)),
            tombstone_grace_s=float(env("TIDINGS_TOMBSTONE_GRACE_S", cls.tombstone_grace_s)),
            index_interval_s=float(env("TIDINGS_INDEX_INTERVAL_S", cls.index_interval_s)),
        )

    @property
    def grace_ms(self) -> int:
        return int(self.tombstone_grace_s * 1000)
