"""Opaque page cursors: the (received ms, id) of the last item a page showed."""
from __future__ import annotations

import base64
import binascii

from router.errors import InvalidArgument


def encode(received_ms: int, message_id: str) -> str:
    return base64.urlsafe_b64encode(f"{received_ms}:{message_id}".encode()).decode().rstrip("=")


def decode(cursor: str) -> tuple[int, str] | None:
    if not cursor:
        return None
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        ms, message_id = text.split(":", 1)
        if len(message_id) != 32 or int(message_id, 16) < 0:
            raise ValueError(message_id)
        return int(ms), message_id
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidArgument(f"malformed cursor {cursor!r}") from None
