"""Raw RFC 5322 bytes to the fields the data model and index need (stdlib `email`, policy.default).

Parsing never raises on bad mail: a header that cannot be parsed is read as plain
text or left empty, so a malformed message is still stored byte for byte.
"""
from __future__ import annotations

import email
import email.parser
import html as html_lib
import re
from email.message import EmailMessage, Message
from email.policy import default as default_policy
from email.utils import getaddresses

from storage_node.model import Address, AttachmentPart, ParsedMail

SNIPPET_CHARS = 200
_MSGID = re.compile(r"<([^<>\s]+)>")
_TAGS = re.compile(r"<(script|style)\b.*?</\1>|<[^>]+>", re.S | re.I)
_SPACE = re.compile(r"\s+")
TEXT_LIKE = ("text/", "application/json", "application/xml")


def parse_message(raw: bytes) -> EmailMessage:
    return email.message_from_bytes(raw, policy=default_policy)  # type: ignore[return-value]


def _header(msg: Message, name: str) -> str:
    try:
        value = msg.get(name)
    except Exception:  # a header the policy cannot parse: fall back to its raw text
        value = next((v for k, v in msg.raw_items() if k.lower() == name.lower()), None)  # type: ignore[attr-defined]
    return "" if value is None else _SPACE.sub(" ", str(value)).strip()


def _raw_header_values(msg: Message, name: str) -> list[str]:
    return [str(v) for k, v in msg.raw_items() if k.lower() == name.lower()]  # type: ignore[attr-defined]


def _addresses(msg: Message, name: str) -> tuple[Address, ...]:
    try:
        headers = msg.get_all(name) or []
        pairs = [(a.display_name, a.addr_spec) for h in headers for a in h.addresses]  # type: ignore[union-attr]
    except Exception:  # unparseable per RFC 5322: take what getaddresses can find in the raw text
        pairs = getaddresses([_SPACE.sub(" ", v) for v in _raw_header_values(msg, name)])
    return tuple((n.strip(), e.strip()) for n, e in pairs if e.strip() and e.strip() != "<>")


def message_ids(value: str) -> list[str]:
    """Every <id> in a Message-Id, In-Reply-To or References value, without brackets."""
    return _MSGID.findall(value)


def html_to_text(markup: str) -> str:
    return _SPACE.sub(" ", html_lib.unescape(_TAGS.sub(" ", markup))).strip()


def _content(part: Message) -> str:
    try:
        return part.get_content()  # type: ignore[attr-defined]
    except Exception:
        payload = part.get_payload(decode=True) or b""
        return payload.decode("utf-8", "replace") if isinstance(payload, bytes) else str(payload)


def _payload_bytes(part: Message) -> bytes:
    payload = part.get_payload(decode=True)
    return payload if isinstance(payload, bytes) else b""


def walk_parts(msg: Message) -> list[tuple[str, Message]]:
    """Leaf parts with their ids (position in the depth-first walk, from 1)."""
    return [(str(i), p) for i, p in enumerate(msg.walk(), start=1) if not p.is_multipart()]


def _is_attachment(part: Message) -> bool:
    disposition = (part.get_content_disposition() or "").lower()
    if disposition == "attachment" or part.get_filename():
        return True
    return part.get_content_maintype() not in {"text", "multipart", "message"}


def find_attachment(raw: bytes, attachment_id: str) -> tuple[AttachmentPart, bytes] | None:
    for part_id, part in walk_parts(parse_message(raw)):
        if part_id == attachment_id and _is_attachment(part):
            data = _payload_bytes(part)
            return AttachmentPart(part_id, part.get_filename() or "", part.get_content_type(), len(data)), data
    return None


def parse_mail(raw: bytes) -> ParsedMail:
    msg = parse_message(raw)
    text_parts: list[str] = []
    html_parts: list[str] = []
    attachments: list[AttachmentPart] = []
    attachment_texts: list[str | None] = []
    for part_id, part in walk_parts(msg):
        if _is_attachment(part):
            data = _payload_bytes(part)
            ctype = part.get_content_type()
            attachments.append(AttachmentPart(part_id, part.get_filename() or "", ctype, len(data)))
            is_text = ctype.startswith(TEXT_LIKE)
            attachment_texts.append(data.decode(part.get_content_charset() or "utf-8", "replace") if is_text else None)
        elif part.get_content_type() == "text/html":
            html_parts.append(_content(part))
        elif part.get_content_maintype() == "text":
            text_parts.append(_content(part))
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
        snippet=_SPACE.sub(" ", snippet_source).strip()[:SNIPPET_CHARS],
        attachments=tuple(attachments),
        attachment_texts=tuple(attachment_texts),
    )


def thread_candidates(raw: bytes) -> tuple[list[str], str]:
    """From the headers only: the Message-Ids that may name a known thread (nearest
    ancestor first), and the root Message-Id that names a new thread."""
    headers = email.parser.BytesHeaderParser(policy=default_policy).parsebytes(raw)
    own = message_ids(_header(headers, "Message-Id"))
    parent = message_ids(_header(headers, "In-Reply-To"))
    references = message_ids(_header(headers, "References"))
    candidates = list(dict.fromkeys([*parent, *reversed(references)]))
    root = references[0] if references else (parent[0] if parent else (own[0] if own else ""))
    return candidates, root
