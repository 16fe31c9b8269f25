"""Modified UTF-7 (RFC 3501 section 5.1.3), the mailbox-name encoding of IMAP4rev1.

Printable US-ASCII stands for itself, except ``&`` which is ``&-``; every other run of
characters is UTF-16BE in base64 with ``,`` for ``/``, no padding, between ``&`` and ``-``.
The decoder is strict: an unterminated shift, bad base64, non-zero pad bits, an odd
UTF-16 length, a lone surrogate or an encoded printable character are errors.
"""
from __future__ import annotations

import base64
import binascii
import re

_B64 = re.compile(rb"[A-Za-z0-9+,]+")


class MUTF7Error(ValueError):
    """Bytes that are not modified UTF-7."""


def _b64(data: bytes) -> bytes:
    return base64.b64encode(data).rstrip(b"=").replace(b"/", b",")


def encode(text: str) -> bytes:
    out = bytearray()
    pending: list[str] = []

    def flush() -> None:
        if pending:
            out.extend(b"&" + _b64("".join(pending).encode("utf-16-be", "surrogatepass")) + b"-")
            pending.clear()

    for char in text:
        code = ord(char)
        if 0x20 <= code <= 0x7E:
            flush()
            out.extend(b"&-" if char == "&" else bytes([code]))
        else:
            pending.append(char)
    flush()
    return bytes(out)


def decode(raw: bytes) -> str:
    out: list[str] = []
    pos = 0
    while pos < len(raw):
        byte = raw[pos]
        if byte != 0x26:  # "&"
            if not 0x20 <= byte <= 0x7E:
                raise MUTF7Error(f"byte 0x{byte:02x} is not allowed")
            out.append(chr(byte))
            pos += 1
            continue
        end = raw.find(b"-", pos + 1)
        if end < 0:
            raise MUTF7Error("unterminated '&' sequence")
        chunk = raw[pos + 1:end]
        pos = end + 1
        if not chunk:
            out.append("&")
            continue
        if not _B64.fullmatch(chunk) or len(chunk) % 4 == 1:
            raise MUTF7Error("bad base64 in an '&' sequence")
        try:
            data = base64.b64decode(chunk.replace(b",", b"/") + b"=" * (-len(chunk) % 4), validate=True)
        except binascii.Error:
            raise MUTF7Error("bad base64 in an '&' sequence") from None
        if len(data) % 2 or _b64(data) != chunk:
            raise MUTF7Error("an '&' sequence is not whole UTF-16")
        try:
            text = data.decode("utf-16-be")
        except UnicodeDecodeError:
            raise MUTF7Error("an '&' sequence has a lone surrogate") from None
        if any(0x20 <= ord(char) <= 0x7E for char in text):
            raise MUTF7Error("printable US-ASCII must not be base64-encoded")
        out.append(text)
    return "".join(out)
