"""Envelope addresses: what aiosmtpd parsed, checked to be a usable mailbox.

aiosmtpd already rejects text that is not an RFC 5321 path; here we also
require ``local@domain`` with a dot-atom or quoted local part, a real host name (no bare ``user``, no address
literal), RFC 5321 length limits, and lower-case the domain, which is
case-insensitive. The local part is passed on unchanged; its case policy is
the router's.
"""
from __future__ import annotations

import re

from smtp_edge.errors import BadAddress

NULL_SENDER = "<>"   # how aiosmtpd reports ``MAIL FROM:<>`` (bounces, RFC 5321 4.5.5)

MAX_LOCAL = 64       # RFC 5321 4.5.3.1.1
MAX_DOMAIN = 255     # RFC 5321 4.5.3.1.2
MAX_PATH = 254       # RFC 5321 4.5.3.1.3 (256 minus the angle brackets)

_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LOCAL = re.compile(rf'^(?:{_ATEXT}(?:\.{_ATEXT})*|"(?:[\x20-\x21\x23-\x5b\x5d-\x7e]|\\[\x20-\x7e])*")$')


def mailbox(address: str) -> str:
    """Return ``address`` with its domain lower-cased, or raise :class:`BadAddress`."""
    local, at, domain = address.rpartition("@")
    if not at or not local:
        raise BadAddress("address must be user@domain")
    if len(local.encode()) > MAX_LOCAL:
        raise BadAddress("local part too long")
    if not _LOCAL.match(local):
        raise BadAddress("invalid local part")
    if len(address.encode()) > MAX_PATH or len(domain) > MAX_DOMAIN:
        raise BadAddress("address too long")
    if domain.startswith("["):
        raise BadAddress("address literals are not accepted")
    labels = domain.rstrip(".").split(".")
    if len(labels) < 2 or not all(_LABEL.match(label) for label in labels):
        raise BadAddress("domain is not a valid host name")
    return f"{local}@{domain.rstrip('.').lower()}"


def same_mailbox(a: str, b: str) -> bool:
    """Whether two addresses name the same mailbox (compared case-insensitively)."""
    return a.casefold() == b.casefold()
