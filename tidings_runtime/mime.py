"""Raw RFC 5322 bytes to the fields the data model and index need (stdlib `email`).

The MIME structure is read with the compat32 policy, whose parameter parsing is cheap; the
subject and ids go through policy.default's header parser (RFC 2047 words), address lists
through `getaddresses` with display names decoded. policy.default alone parses every header
again on each access, which made parsing cost more than storing a message (~900 msg/s).

Parsing never raises on bad mail: a header that cannot be parsed is read as plain
text or left empty, so a malformed message is still stored byte for byte.
"""
from __future__ import annotations

import email
import email.parser
import html as html_lib
import re
from dataclasses import dataclass
from email.header import decode_header, make_header
from email.message import Message
from email.policy import compat32
from email.policy import default as default_policy
from email.utils import getaddresses

Address = tuple[str, str]  # (display name, email)


@dataclass(frozen=True)
class AttachmentPart:
    """An attachment: `id` is the part's position in a depth-first walk of the MIME tree."""

    id: str
    filename: str
    content_type: str
    size: int


@dataclass(frozen=True)
class ParsedMail:
    """What the data model and the search index need from a raw RFC 5322 message."""

    rfc822_msgid: str
    in_reply_to: str
    references: tuple[str, ...]
    from_: tuple[Address, ...]
    to: tuple[Address, ...]
    cc: tuple[Address, ...]
    bcc: tuple[Address, ...]
    subject: str
    text: str
    html: str
    snippet: str
    attachments: tuple[AttachmentPart, ...]
    attachment_texts: tuple[str | None, ...] = ()


SNIPPET_CHARS = 200
_MSGID = re.compile(r"<([^<>\s]+)>")
_TAGS = re.compile(r"<(script|style)\b.*?</\1>|<[^>]+>", re.S | re.I)
_SPACE = re.compile(r"\s+")
_LINE_BREAKS = re.compile(r"\r|\n")
TEXT_LIKE = ("text/", "application/json", "application/xml")


def parse_message(raw: bytes) -> Message:
    return email.message_from_bytes(raw, policy=compat32)


def _raw_header_values(msg: Message, name: str) -> list[str]:
    """The values of a header as received, unfolded, 8-bit bytes read as UTF-8."""
    wanted = name.lower()
    return [_LINE_BREAKS.sub("", str(v).encode("ascii", "surrogateescape").decode("utf-8", "replace"))
            for k, v in msg.raw_items() if k.lower() == wanted]


def _header(msg: Message, name: str) -> str:
    values = _raw_header_values(msg, name)
    if not values:
        return ""
    try:
        value = str(default_policy.header_factory(name, values[0]))
    except Exception:  # a header the policy cannot parse: fall back to its raw text
        value = values[0]
    return _SPACE.sub(" ", value).strip()


def _decoded(text: str) -> str:
    """RFC 2047 encoded words decoded; malformed ones kept as sent."""
    if "=?" not in text:
        return text
    try:
        return str(make_header(decode_header(text)))
    except Exception:
        return text


def _addresses(msg: Message, name: str) -> tuple[Address, ...]:
    """RFC 5322 address lists by `getaddresses`, display names' encoded words decoded."""
    pairs = [(n, e.strip()) for n, e in getaddresses([_SPACE.sub(" ", v) for v in _raw_header_values(msg, name)])]
    return tuple((_decoded(n).strip(), e) for n, e in pairs if e and e != "<>" and not e.startswith("@"))


def message_ids(value: str) -> list[str]:
    """Every <id> in a Message-Id, In-Reply-To or References value, without brackets."""
    return _MSGID.findall(value)


def html_to_text(markup: str) -> str:
    return _SPACE.sub(" ", html_lib.unescape(_TAGS.sub(" ", markup))).strip()


def _text(data: bytes, charset: str | None) -> str:
    try:
        return data.decode(charset or "utf-8", "replace")
    except LookupError:  # a charset Python does not know
        return data.decode("utf-8", "replace")


def _filename(part: Message) -> str:
    """The part's file name: RFC 2231 parameters decoded by `email`, RFC 2047 words (common, if
    not standard, in file names) here."""
    return _decoded(part.get_filename() or "")


def _payload_bytes(part: Message) -> bytes:
    payload = part.get_payload(decode=True)
    return payload if isinstance(payload, bytes) else b""


def walk_parts(msg: Message) -> list[tuple[str, Message]]:
    """Leaf parts with their ids (position in the depth-first walk, from 1)."""
    return [(str(i), p) for i, p in enumerate(msg.walk(), start=1) if not p.is_multipart()]


def _is_attachment(part: Message) -> bool:
    disposition = (part.get_content_disposition() or "").lower()
    if disposition == "attachment" or _filename(part):
        return True
    return part.get_content_maintype() not in {"text", "multipart", "message"}


def find_attachment(raw: bytes, attachment_id: str) -> tuple[AttachmentPart, bytes] | None:
    for part_id, part in walk_parts(parse_message(raw)):
        if part_id == attachment_id and _is_attachment(part):
            data = _payload_bytes(part)
            return AttachmentPart(part_id, _filename(part), part.get_content_type(), len(data)), data
    return None


def parse_mail(raw: bytes) -> ParsedMail:
    return mail_of(parse_message(raw))


def parse_with_candidates(raw: bytes) -> tuple[ParsedMail, list[str], str]:
    """One parse for both: the mail, and its thread candidates and root (thread_candidates)."""
    msg = parse_message(raw)
    candidates, root = candidates_of(msg)
    return mail_of(msg), candidates, root


def mail_of(msg: Message) -> ParsedMail:
    text_parts: list[str] = []
    html_parts: list[str] = []
    attachments: list[AttachmentPart] = []
    attachment_texts: list[str | None] = []
    for part_id, part in walk_parts(msg):
        if _is_attachment(part):
            data = _payload_bytes(part)
            ctype = part.get_content_type()
            attachments.append(AttachmentPart(part_id, _filename(part), ctype, len(data)))
            attachment_texts.append(_text(data, part.get_content_charset()) if ctype.startswith(TEXT_LIKE) else None)
        elif part.get_content_type() == "text/html":
            html_parts.append(_text(_payload_bytes(part), part.get_content_charset()))
        elif part.get_content_maintype() == "text":
            text_parts.append(_text(_payload_bytes(part), part.get_content_charset()))
    text = "\n".join(text_parts)
    html = "\n".join(html_parts)
    snippet_source = text if text.strip() else html_to_text(html)
    own = message_ids(_header(msg, "Message-Id"))
    in_reply_to = message_ids(_header(msg, "In-Reply-To"))
    return ParsedMail(
        rfc822_msgid=own[0] if own else "",
        in_reply_to=in_reply_to[0] if in_reply_to else "",
        references=tuple(message_ids(_header(msg, "References"))),
        from_=_addresses(msg, "From"),
        to=_addresses(msg, "To"),
        cc=_addresses(msg, "Cc"),
        bcc=_addresses(msg, "Bcc"),
        subject=_header(msg, "Subject"),
        text=text,
        html=html,
        snippet=snippet_of(snippet_source),
        attachments=tuple(attachments),
        attachment_texts=tuple(attachment_texts),
    )


def snippet_of(text: str) -> str:
    """`_SPACE.sub(" ", text).strip()[:SNIPPET_CHARS]`, from the shortest prefix of `text` that
    decides it (collapsing the whitespace of a whole 4 KB body cost ~0.12 ms, 40% of a parse):
    the collapsed prefix is a prefix of the collapsed text, and once it holds more than
    SNIPPET_CHARS characters past the leading space, what follows cannot change them."""
    size = 2 * SNIPPET_CHARS
    while size < len(text):
        collapsed = _SPACE.sub(" ", text[:size]).lstrip()
        if len(collapsed) > SNIPPET_CHARS:
            return collapsed[:SNIPPET_CHARS]
        size *= 4
    return _SPACE.sub(" ", text).strip()[:SNIPPET_CHARS]


def thread_candidates(raw: bytes) -> tuple[list[str], str]:
    """From the headers only: the Message-Ids that may name a known thread (nearest
    ancestor first), and the root Message-Id that names a new thread."""
    return candidates_of(email.parser.BytesHeaderParser(policy=compat32).parsebytes(raw))


def candidates_of(headers: Message) -> tuple[list[str], str]:
    own = message_ids(_header(headers, "Message-Id"))
    parent = message_ids(_header(headers, "In-Reply-To"))
    references = message_ids(_header(headers, "References"))
    candidates = list(dict.fromkeys([*parent, *reversed(references)]))
    root = references[0] if references else (parent[0] if parent else (own[0] if own else ""))
    return candidates, root
