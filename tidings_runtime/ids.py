"""Entry ids, assigned once by the edge that accepts a message and reused on every retry.

The format is part of the wire contract, so the client distribution (which ships the
generated stubs) owns it; every part reads it from here.
"""
from __future__ import annotations

from tidings_client.ids import entry_id_ms, is_entry_id, new_entry_id

__all__ = ["entry_id_ms", "is_entry_id", "new_entry_id"]
