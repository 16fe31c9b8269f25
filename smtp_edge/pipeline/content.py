"""Cheap content checks that need no network: they run before DNS and scanner work.

GTUBE (the Generic Test for Unsolicited Bulk Email, SpamAssassin's test string): a
message that holds it is spam by definition, ``550 5.7.1`` on port 2525. It is looked
for in the raw bytes (one ``bytes.find``, microseconds even for a large message); a GTUBE
hidden in base64 is for the spam filter (rspamd) to find, which decodes parts.
"""
from __future__ import annotations

from smtp_edge import replies
from smtp_edge.pipeline.message import InboundMessage

GTUBE = b"XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"


async def check_gtube(message: InboundMessage) -> str | None:
    """``550 5.7.1`` for a message holding the GTUBE string."""
    return replies.GTUBE if GTUBE in message.raw else None
