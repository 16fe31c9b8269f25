"""Mailbox addresses and domain names: the one validator and canonical form every part uses.

Syntax is email-validator's, in the mode that takes what RFC 5321 takes: dot-atom or
quoted local parts, SMTPUTF8 (RFC 6531) local parts and IDNA domains, no DNS. Policy:

- No address literals (``user@[192.0.2.1]``): we host domains by name only.
- A domain is a host name of at least two labels; ``.test`` is allowed (the local
  cluster hosts ``example.test``), the other special-use names (``localhost``,
  ``.local``, ``.invalid``, ...) are not.
- Lengths (RFC 5321 4.5.3.1): local part at most 64 octets, the address at most 254
  octets (also with its domain as IDNA ASCII), the domain 253, each label 63.
- Canonical form, the directory key: the local part NFC-normalised, quoted only if it
  must be, and lower-cased (our mailboxes are case-insensitive); the domain as IDNA
  ASCII, lower-cased. ``Alice@Example.TEST`` and ``"alice"@example.test`` are one user.
"""
from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass

from email_validator import EmailNotValidError, validate_email

MAX_LOCAL_OCTETS = 64       # RFC 5321 4.5.3.1.1
ADDRESSES_KEPT = 8192       # checked addresses remembered (parse_address)

_UNESCAPE = re.compile(r"\\(.)")


class AddressError(ValueError):
    """``text`` is not an acceptable mailbox address (or domain, ``what``); ``reason`` says why."""

    def __init__(self, text: str, reason: str, what: str = "address") -> None:
        super().__init__(f"malformed {what} {text!r}: {reason}")
        self.text = text
        self.reason = reason


@dataclass(frozen=True)
class Address:
    """A checked mailbox: ``local`` as given (NFC, minimal quoting), ``domain`` as IDNA ASCII."""

    local: str
    domain: str
    smtputf8: bool       # the local part is not ASCII: SMTPUTF8 is needed to send it

    def __str__(self) -> str:
        return f"{self.local}@{self.domain}"

    @property
    def canonical(self) -> str:
        """The directory key: the same for every spelling of this mailbox."""
        return f"{unicodedata.normalize('NFC', self.local.lower())}@{self.domain}"

    @property
    def local_text(self) -> str:
        """The local part without its quotes and escapes (for header builders that quote)."""
        if self.local.startswith('"'):
            return _UNESCAPE.sub(r"\1", self.local[1:-1])
        return self.local


def parse_address(text: str) -> Address:
    """Check ``local@domain`` (surrounding white space ignored); raise :class:`AddressError`."""
    return _checked(text)


@functools.lru_cache(maxsize=ADDRESSES_KEPT)
def _checked(text: str) -> Address:
    """parse_address, remembered: email-validator takes ~0.1 ms an address and a delivery checks
    the same few several times (MAIL, RCPT, the From domains, the router's lookups). An Address
    is immutable; a malformed text raises and is not remembered."""
    try:
        checked = validate_email(text.strip(), allow_smtputf8=True, allow_quoted_local=True,
                                 allow_domain_literal=False, allow_display_name=False,
                                 check_deliverability=False, test_environment=True)
    except EmailNotValidError as error:
        raise AddressError(text, str(error)) from None
    if len(checked.local_part.encode()) > MAX_LOCAL_OCTETS:
        raise AddressError(text, f"The part before the @-sign is longer than {MAX_LOCAL_OCTETS} octets.")
    if "." not in checked.ascii_domain:
        raise AddressError(text, "The part after the @-sign must be a host name with a period.")
    return Address(local=checked.local_part, domain=checked.ascii_domain,
                   smtputf8=checked.smtputf8)


def canonical(text: str) -> str:
    """The directory key of the mailbox ``text``; raise :class:`AddressError`."""
    return parse_address(text).canonical


def parse_domain(text: str) -> str:
    """A hosted-domain name (one trailing dot allowed) as IDNA ASCII; raise :class:`AddressError`.

    Checked as the domain of an address, so every name we host can receive mail.
    """
    name = text.strip()
    name = name.removesuffix(".")
    if not name or "@" in name or name.startswith("["):
        raise AddressError(text, "A domain is a host name, like example.test.", "domain")
    try:
        return parse_address(f"postmaster@{name}").domain
    except AddressError as error:
        raise AddressError(text, error.reason, "domain") from None


def same_mailbox(a: str, b: str) -> bool:
    """Whether two address texts name the same mailbox; ``False`` if either is malformed."""
    try:
        return canonical(a) == canonical(b)
    except AddressError:
        return False
