"""DKIM verification (RFC 6376) with dkimpy, its keys fetched first on our asyncio lookups.

The selectors' TXT records (``s._domainkey.d``) of every signature are looked up
concurrently; then dkimpy verifies the signatures in a worker thread (hashing a 25 MiB
body must not stall the event loop), its ``dnsfunc`` answering from what was fetched.
At most :data:`MAX_SIGNATURES` signatures are tried, top first.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import dkim
from dkim.util import InvalidTagValueList, parse_tag_value

from smtp_edge.pipeline.auth_dns import Lookups

MAX_SIGNATURES = 5
_QUIET = logging.getLogger("smtp_edge.dkim")
_QUIET.addHandler(logging.NullHandler())
_QUIET.propagate = False


@dataclass(frozen=True)
class DkimResult:
    result: str          # pass, fail, permerror (a signature or key that cannot be used)
    domain: str          # d=
    selector: str        # s=
    b: str = ""          # the first characters of b=, to tell signatures apart (RFC 6008)


def _tags(value: bytes) -> dict[bytes, bytes]:
    try:
        return parse_tag_value(value)
    except InvalidTagValueList:
        return {}


def _key_name(domain: str, selector: str) -> str:
    return f"{selector}._domainkey.{domain}".lower()


def _verify(raw: bytes, signatures: Sequence[dict[bytes, bytes]], keys: dict[str, bytes | None]) -> list[DkimResult]:
    def dnsfunc(name: bytes, timeout: int = 5) -> bytes | None:
        return keys.get(name.decode("ascii", "replace").rstrip(".").lower())

    results = []
    try:
        message: dkim.DKIM | None = dkim.DKIM(raw, logger=_QUIET)
    except dkim.DKIMException:      # a header line dkimpy cannot read (e.g. b"\0: x"): no signature verifies
        message = None
    for index, tags in enumerate(signatures):
        domain = tags.get(b"d", b"").decode("ascii", "replace").lower()
        selector = tags.get(b"s", b"").decode("ascii", "replace")
        b = b"".join(tags.get(b"b", b"").split())[:8].decode("ascii", "replace")
        if message is None:
            results.append(DkimResult("permerror", domain, selector, b))
            continue
        try:
            result = "pass" if message.verify(idx=index, dnsfunc=dnsfunc) else "fail"
        except dkim.DKIMException as error:     # RFC 8601 2.7.1: a body changed in transit fails,
            result = "fail" if "body hash mismatch" in str(error) else "permerror"   # a bad signature is permerror
        results.append(DkimResult(result, domain, selector, b))
    return results


async def check_dkim(lookups: Lookups, raw: bytes, signature_values: Sequence[bytes]) -> list[DkimResult]:
    """One result per ``DKIM-Signature`` (their unfolded values, top first); [] for none.
    :class:`~smtp_edge.pipeline.auth_dns.DnsTemporary` when a key could not be looked up."""
    signatures = [_tags(value) for value in signature_values[:MAX_SIGNATURES]]
    names = sorted({_key_name(tags[b"d"].decode("ascii", "replace"), tags[b"s"].decode("ascii", "replace"))
                    for tags in signatures if tags.get(b"d") and tags.get(b"s")})
    answers = await asyncio.gather(*(lookups.txt(name) for name in names))
    keys = {name: (texts[0] if texts else None) for name, texts in zip(names, answers)}
    return await asyncio.to_thread(_verify, raw, signatures, keys)
