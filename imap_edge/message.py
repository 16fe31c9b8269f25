"""A stored message's bytes as IMAP sees them: the MIME tree split on the raw bytes (so every
section is the exact bytes stored, and RFC822.SIZE, BODY[] and the part sizes agree), ENVELOPE
and BODYSTRUCTURE from it, and the body sections of FETCH (RFC 3501 6.4.5).

Header values go out as they are in the message (encoded words undecoded), as RFC 3501 asks of
ENVELOPE. A malformed message still gives an answer: a part whose boundary never comes is one
text part, an address list that does not parse is left out.
"""
from __future__ import annotations

import binascii
import email.utils
import quopri
import re
from dataclasses import dataclass, field
from email.message import Message
from email.parser import BytesHeaderParser
from email.policy import compat32

from imap_edge.protocol.fetch import Section
from imap_edge.responses import Address, BodyPart, BodyStructure, Envelope, Multipart, Params
from tidings_runtime.kept_headers import covers

_HEADER_PARSER = BytesHeaderParser(policy=compat32)
_BLANK = re.compile(rb"\r?\n\r?\n")
_FIELD_NAME = re.compile(rb"([^\s:]+)[ \t]*:")


class SectionError(ValueError):
    """A section that names no part of this message."""


class UnknownEncoding(ValueError):
    """A part whose Content-Transfer-Encoding BINARY cannot decode (``NO [UNKNOWN-CTE]``)."""


@dataclass
class Part:
    """One MIME entity: its header block (with the blank line that ends it) and its body bytes.
    ``children``: a multipart's parts, or a message/rfc822's one embedded message."""

    header: bytes
    body: bytes
    headers: Message
    children: list[Part] = field(default_factory=list)

    @property
    def content_type(self) -> str:
        return self.headers.get_content_type()

    @property
    def is_multipart(self) -> bool:
        return self.headers.get_content_maintype() == "multipart"

    @property
    def is_message(self) -> bool:
        return self.content_type in ("message/rfc822", "message/global")


def parse(raw: bytes, *, depth: int = 0) -> Part:
    """The MIME tree of ``raw`` (nesting cut at 20 levels: deeper parts are leaves)."""
    if raw.startswith(b"\r\n") or raw.startswith(b"\n"):
        end = 2 if raw.startswith(b"\r\n") else 1
        header, body = raw[:end], raw[end:]
    else:
        match = _BLANK.search(raw)
        header, body = (raw[:match.end()], raw[match.end():]) if match else (raw, b"")
    headers = _HEADER_PARSER.parsebytes(header)
    part = Part(header, body, headers)
    if depth >= 20:
        return part
    if part.is_multipart:
        boundary = headers.get_boundary()
        if boundary:
            part.children = [parse(chunk, depth=depth + 1) for chunk in _split(body, boundary.encode("utf-8", "replace"))]
        if not part.children:  # a multipart without parts: treat as text
            part.headers = _HEADER_PARSER.parsebytes(b"Content-Type: text/plain\r\n\r\n")
    elif part.is_message:
        part.children = [parse(body, depth=depth + 1)]
    return part


def _split(body: bytes, boundary: bytes) -> list[bytes]:
    """The parts between ``--boundary`` lines; the line break before a delimiter belongs to it."""
    delimiter = re.compile(rb"(?:^|\r?\n)--" + re.escape(boundary) + rb"(--)?[ \t]*(?:\r?\n|$)")
    chunks: list[bytes] = []
    start: int | None = None
    for match in delimiter.finditer(body):
        if start is not None:
            chunks.append(body[start:match.start()])
        if match.group(1):
            return chunks
        start = match.end()
    if start is not None:
        chunks.append(body[start:])  # no closing delimiter: up to the end
    return chunks


# -- ENVELOPE


def _value(headers: Message, name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        return None
    return re.sub(r"\r?\n[ \t]", " ", str(value)).strip()


def _addresses(headers: Message, name: str) -> tuple[Address, ...]:
    values = headers.get_all(name)
    if not values:
        return ()
    found: list[Address] = []
    for display, address in email.utils.getaddresses([re.sub(r"\r?\n[ \t]", " ", str(v)) for v in values]):
        if not address and not display:
            continue
        mailbox, at, host = address.rpartition("@")
        if not at:
            mailbox, host = address, ""
        found.append(Address(display or None, None, mailbox or None, host or None))
    return tuple(found)


def envelope(headers: Message) -> Envelope:
    from_ = _addresses(headers, "From")
    return Envelope(
        date=_value(headers, "Date"), subject=_value(headers, "Subject"), from_=from_,
        sender=_addresses(headers, "Sender") or from_, reply_to=_addresses(headers, "Reply-To") or from_,
        to=_addresses(headers, "To"), cc=_addresses(headers, "Cc"), bcc=_addresses(headers, "Bcc"),
        in_reply_to=_value(headers, "In-Reply-To"), message_id=_value(headers, "Message-ID"))


# -- BODYSTRUCTURE


def _params(headers: Message, header: str = "content-type") -> Params:
    found = headers.get_params(header=header) or []
    pairs: list[tuple[str, str]] = []
    for name, value in found[1:]:
        text = email.utils.collapse_rfc2231_value(value)
        pairs.append((name.upper(), str(text)))
    return tuple(pairs)


def _disposition(headers: Message) -> tuple[str, Params] | None:
    found = headers.get_params(header="content-disposition")
    if not found:
        return None
    return found[0][0].upper(), _params(headers, "content-disposition")


def _language(headers: Message) -> tuple[str, ...] | None:
    value = _value(headers, "Content-Language")
    if not value:
        return None
    return tuple(item.strip() for item in value.split(",") if item.strip()) or None


def body_structure(part: Part) -> BodyStructure:
    headers = part.headers
    if part.is_multipart:
        return Multipart(tuple(body_structure(child) for child in part.children), headers.get_content_subtype(),
                         _params(headers), _disposition(headers), _language(headers),
                         _value(headers, "Content-Location"))
    maintype, subtype = headers.get_content_maintype(), headers.get_content_subtype()
    lines = part.body.count(b"\n") + (1 if part.body and not part.body.endswith(b"\n") else 0)
    embedded = part.children[0] if part.is_message and part.children else None
    return BodyPart(
        type=maintype, subtype=subtype, params=_params(headers), id=_value(headers, "Content-ID"),
        description=_value(headers, "Content-Description"),
        encoding=(_value(headers, "Content-Transfer-Encoding") or "7BIT").upper(), size=len(part.body),
        lines=lines if maintype == "text" or embedded is not None else None,
        envelope=envelope(embedded.headers) if embedded is not None else None,
        body=body_structure(embedded) if embedded is not None else None,
        md5=_value(headers, "Content-MD5"), disposition=_disposition(headers), language=_language(headers),
        location=_value(headers, "Content-Location"))


# -- sections


def _header_fields(header: bytes, names: tuple[str, ...], keep: bool) -> bytes:
    """The header fields named (``keep``) or all but those, and the blank line."""
    wanted = {name.lower().encode("ascii", "replace") for name in names}
    lines = header.splitlines(keepends=True)
    out: list[bytes] = []
    taking = False
    for line in lines:
        if line in (b"\r\n", b"\n"):
            break
        if line[:1] in (b" ", b"\t"):
            if taking:
                out.append(line)
            continue
        match = _FIELD_NAME.match(line)
        taking = match is not None and ((match.group(1).lower() in wanted) == keep)
        if taking:
            out.append(line)
    return b"".join(out) + b"\r\n"


def section(root: Part, raw: bytes, spec: Section) -> bytes:
    """The bytes of ``BODY[spec]``; SectionError if the part numbers name no part."""
    node = _node(root, spec.parts)
    message = node.children[0] if node.is_message and node.children else None
    if spec.text is None:
        if not spec.parts:
            return raw
        return node.body
    if spec.text == "MIME":
        return node.header
    target = root if not spec.parts else message
    if target is None:
        raise SectionError(f"part {'.'.join(map(str, spec.parts))} is no message")
    if spec.text == "TEXT":
        return target.body
    if spec.text == "HEADER":
        return target.header
    return _header_fields(target.header, spec.fields, keep=spec.text == "HEADER.FIELDS")


def binary(root: Part, raw: bytes, spec: Section) -> bytes:
    """``BINARY[spec]`` (RFC 3516, RFC 9051 6.4.5): the part's body with its content transfer
    encoding undone (base64, quoted-printable; 7bit, 8bit and binary as they are); ``BINARY[]``
    is the whole message as stored."""
    data = section(root, raw, spec)
    if not spec.parts:
        return data
    node = _node(root, spec.parts)
    encoding = (_value(node.headers, "Content-Transfer-Encoding") or "7bit").strip().lower()
    if encoding in ("7bit", "8bit", "binary"):
        return data
    if encoding == "base64":
        try:
            return binascii.a2b_base64(re.sub(rb"[^A-Za-z0-9+/=]", b"", data))
        except binascii.Error as error:
            raise UnknownEncoding(f"bad base64 in part {'.'.join(map(str, spec.parts))}: {error}") from None
    if encoding == "quoted-printable":
        return quopri.decodestring(data)
    raise UnknownEncoding(f"unknown Content-Transfer-Encoding {encoding!r}")


def _node(root: Part, parts: tuple[int, ...]) -> Part:
    """The part the numbers name; SectionError if they name none."""
    node = root
    for number in parts:
        if node is not root and node.is_message and node.children:
            node = node.children[0]  # numbers after a message/rfc822 part count in the embedded message
        if node.is_multipart:
            if number > len(node.children):
                raise SectionError(f"no part {'.'.join(map(str, parts))}")
            node = node.children[number - 1]
        elif number != 1:
            raise SectionError(f"no part {'.'.join(map(str, parts))}")
    return node


def from_kept(spec: Section) -> bool:
    """Whether the header fields kept beside the summary (tidings_runtime.kept_headers) answer
    ``BODY[spec]`` as the whole message does: HEADER.FIELDS of kept names, of the message itself."""
    return not spec.parts and spec.text == "HEADER.FIELDS" and covers(spec.fields)


def partial(data: bytes, window: tuple[int, int] | None) -> bytes:
    if window is None:
        return data
    origin, length = window
    return data[origin:origin + length]
