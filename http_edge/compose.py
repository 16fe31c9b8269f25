"""Building the MIME message of `POST /v1/messages` with the stdlib `email` package.

Pure functions, no I/O: `parse_mailbox` reads one `Name <addr>` (the addr-spec is
checked by `tidings_runtime.addresses`, which raises `AddressError`); `compose`
decodes attachments, checks the size limit and returns the RFC 5322 bytes
(CRLF line ends: `email.policy.default` with `linesep="\\r\\n"`, i.e.
`policy.SMTP`; with `utf8=True`, RFC 6532, when an address has a non-ASCII local
part). Bcc recipients never appear in the headers of a message to send; they only join the
envelope. A draft (`as_draft`) may have no recipients yet and keeps its Bcc as a header field
(the router leaves it out when the draft is sent).
CPU-heavy for big attachments: callers run it in a worker thread.
"""
from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from functools import cached_property

from tidings_runtime.addresses import Address as ParsedAddress
from tidings_runtime.addresses import parse_address

_NAME_ADDR = re.compile(r"^\s*(?P<name>.*?)\s*<(?P<addr>[^<>]*)>\s*$", re.DOTALL)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_TOKEN = r"[A-Za-z0-9!#$&^_.+-]+"
_CONTENT_TYPE = re.compile(rf"^\s*(?P<main>{_TOKEN})/(?P<sub>{_TOKEN})\s*(?:;.*)?$", re.DOTALL)
_MSG_ID = re.compile(r"^<?(?P<id>[^<>\s]+@[^<>\s]+)>?$")

SMTP_POLICY = policy.default.clone(linesep="\r\n")
SMTPUTF8_POLICY = SMTP_POLICY.clone(utf8=True)


class ComposeError(ValueError):
    """The message cannot be built from what the client sent (a 400)."""


class MessageTooLarge(ComposeError):
    """The built message exceeds the size limit (a 413)."""


@dataclass(frozen=True)
class Mailbox:
    email: str
    name: str = ""

    @cached_property
    def address(self) -> ParsedAddress:
        """The checked address, parsed once however often a send asks about it."""
        return parse_address(self.email)

    @property
    def domain(self) -> str:
        return self.address.domain

    @property
    def smtputf8(self) -> bool:
        return self.address.smtputf8

    def header_value(self) -> Address:
        address = self.address   # headerregistry quotes the local part itself
        return Address(display_name=self.name, username=address.local_text, domain=address.domain)


def parse_addr_spec(text: str) -> str:
    """A bare `local@domain` in the form we send it (NFC, minimal quoting, IDNA domain)."""
    return str(parse_address(text))


def check_display_name(name: str) -> str:
    name = name.strip()
    if _CONTROL.search(name):
        raise ComposeError("display names must not contain control characters or line breaks")
    if len(name) > 200:
        raise ComposeError("display name too long")
    return name


def parse_mailbox(text: str) -> Mailbox:
    """`ann@example.test` or `Ann Lee <ann@example.test>` (or `"Lee, Ann" <...>`)."""
    m = _NAME_ADDR.match(text)
    if m:
        name = m["name"]
        if len(name) >= 2 and name[0] == name[-1] == '"':
            name = name[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        return Mailbox(email=parse_addr_spec(m["addr"]), name=check_display_name(name))
    return Mailbox(email=parse_addr_spec(text))


def normalize_message_id(value: str) -> str:
    """`<id@host>` from `id@host` or `<id@host>`; ComposeError when it is not one."""
    m = _MSG_ID.match(value.strip())
    if not m:
        raise ComposeError(f"not a Message-ID: {value!r}")
    return f"<{m['id']}>"


@dataclass(frozen=True)
class AttachmentData:
    filename: str
    content_type: str
    content_base64: str


@dataclass(frozen=True)
class Draft:
    """Everything `compose` needs, already checked for shape by the schema."""

    sender: Mailbox
    to: Sequence[Mailbox]
    cc: Sequence[Mailbox] = ()
    bcc: Sequence[Mailbox] = ()
    subject: str = ""
    text: str = ""
    html: str | None = None
    attachments: Sequence[AttachmentData] = ()
    in_reply_to: str | None = None  # an RFC 5322 Message-ID, `<...>`
    references: Sequence[str] = ()
    date: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass(frozen=True)
class Composed:
    raw: bytes
    message_id: str
    envelope_recipients: list[str]


def decode_base64(text: str, filename: str) -> bytes:
    compact = "".join(text.split())
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise ComposeError(f"attachment {filename!r}: content_base64 is not valid base64") from None


def split_content_type(value: str) -> tuple[str, str]:
    m = _CONTENT_TYPE.match(value or "application/octet-stream")
    if not m:
        raise ComposeError(f"not a valid content type: {value!r}")
    main, sub = m["main"].lower(), m["sub"].lower()
    if main in {"multipart", "message"}:
        # Containers would need their own structure (and 7bit/8bit encoding):
        # carried as opaque bytes instead.
        return "application", "octet-stream"
    return main, sub


def envelope_recipients(draft: Draft) -> list[str]:
    """to + cc + bcc, each mailbox once (by its canonical form), in order."""
    seen: set[str] = set()
    out: list[str] = []
    for mailbox in (*draft.to, *draft.cc, *draft.bcc):
        key = mailbox.address.canonical
        if key not in seen:
            seen.add(key)
            out.append(mailbox.email)
    return out


def _body_cte(text: str) -> str | None:
    return None if text.isascii() else "quoted-printable"


def compose(draft: Draft, *, max_bytes: int, as_draft: bool = False) -> Composed:
    if not (draft.to or draft.cc or draft.bcc or as_draft):
        raise ComposeError("at least one recipient (to, cc or bcc) is required")
    decoded: list[tuple[AttachmentData, bytes, str, str]] = []
    total = 0
    for att in draft.attachments:
        main, sub = split_content_type(att.content_type)
        data = decode_base64(att.content_base64, att.filename)
        total += len(data)
        if total > max_bytes:
            raise MessageTooLarge(f"the message exceeds the size limit of {max_bytes} bytes")
        decoded.append((att, data, main, sub))

    utf8 = any(m.smtputf8 for m in (draft.sender, *draft.to, *draft.cc, *(draft.bcc if as_draft else ())))
    msg = EmailMessage(policy=SMTPUTF8_POLICY if utf8 else SMTP_POLICY)
    message_id = make_msgid(domain=draft.sender.domain)
    msg["From"] = draft.sender.header_value()
    if draft.to:
        msg["To"] = [m.header_value() for m in draft.to]
    if draft.cc:
        msg["Cc"] = [m.header_value() for m in draft.cc]
    if as_draft and draft.bcc:
        msg["Bcc"] = [m.header_value() for m in draft.bcc]
    # else Bcc: envelope only, never a header.
    msg["Subject"] = draft.subject
    msg["Date"] = format_datetime(draft.date.astimezone(UTC), usegmt=True)
    msg["Message-ID"] = message_id
    if draft.in_reply_to:
        msg["In-Reply-To"] = draft.in_reply_to
        refs = [*draft.references]
        if draft.in_reply_to not in refs:
            refs.append(draft.in_reply_to)
        msg["References"] = " ".join(refs)

    msg.set_content(draft.text, subtype="plain", cte=_body_cte(draft.text))
    if draft.html is not None:
        msg.add_alternative(draft.html, subtype="html", cte=_body_cte(draft.html))
    for att, data, main, sub in decoded:
        msg.add_attachment(data, maintype=main, subtype=sub, filename=att.filename)

    raw = msg.as_bytes()
    if len(raw) > max_bytes:
        raise MessageTooLarge(f"the message exceeds the size limit of {max_bytes} bytes")
    return Composed(raw=raw, message_id=message_id, envelope_recipients=envelope_recipients(draft))
