"""Delivery status notifications (RFC 3464): one `multipart/report;
report-type=delivery-status` per queue item for all its failed recipients, from
`Mail Delivery Subsystem <MAILER-DAEMON@{the sender's domain}>` to the sender, built
with the stdlib `email` package: a human-readable part, the `message/delivery-status`
part, the original's headers as `text/rfc822-headers`.

Its entry id and Message-ID derive from the item and the failure (`bounce_entry_id`),
so a bounce sent again after a crash is stored once.
"""
from __future__ import annotations

import datetime
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from email import policy
from email.message import Message
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import format_datetime, formataddr

from smtp_edge.outbound.reply import is_smtp_reply, status_of

SUBJECT = "Undelivered Mail Returned to Sender"
_ID_RANDOM_HEX = 20     # the 80 random bits of an entry id (tidings_runtime.ids)


@dataclass(frozen=True)
class FailedRecipient:
    address: str
    last_reply: str         # "550 5.1.1 ..." from the far end, or our own reason
    remote_mta: str = ""    # the host that said it, "" if none did
    failed_ms: int = 0


@dataclass(frozen=True)
class Report:
    item_id: str
    sender: str             # the envelope sender the DSN goes to
    reporting_mta: str      # our host name
    arrival_ms: int         # when the message entered the queue
    recipients: tuple[FailedRecipient, ...]


@dataclass(frozen=True)
class Bounce:
    """A built DSN and where it goes: what `send_bounce` is handed."""

    item_id: str            # the queue item it reports on
    entry_id: str           # its own entry id (bounce_entry_id)
    sender: str             # the original's envelope sender: the DSN's one recipient
    raw: bytes


def bounce(report: Report, original: bytes, now_ms: int) -> Bounce:
    entry_id = bounce_entry_id(report.item_id, report.recipients)
    return Bounce(report.item_id, entry_id, report.sender, build(report, original, now_ms, entry_id))


def bounce_entry_id(item_id: str, failed: Sequence[FailedRecipient]) -> str:
    """A deterministic entry id: the latest failure's ms (so the bounce sorts as new mail)
    and a hash of the item id and the failed addresses."""
    ms = max((r.failed_ms for r in failed), default=0)
    key = "\0".join([item_id, "dsn", *sorted(r.address for r in failed)])
    digest = hashlib.blake2b(key.encode(), digest_size=_ID_RANDOM_HEX // 2).hexdigest()
    return f"{ms & ((1 << 48) - 1):012x}{digest}"


def build(report: Report, original: bytes, now_ms: int, entry_id: str | None = None) -> bytes:
    """The DSN as bytes (CRLF), ready for Mail.Deliver or SMTP; its Message-ID names
    `entry_id` (default: the report's bounce_entry_id)."""
    entry_id = entry_id or bounce_entry_id(report.item_id, report.recipients)
    domain = report.sender.rpartition("@")[2]
    utf8 = not all(text.isascii() for text in (report.sender, *(r.address for r in report.recipients)))
    outer = MIMEMultipart("report", boundary=_boundary(report), report_type="delivery-status",
                          policy=policy.SMTPUTF8 if utf8 else policy.SMTP)
    outer["From"] = formataddr(("Mail Delivery Subsystem", f"MAILER-DAEMON@{domain}"))
    outer["To"] = report.sender
    outer["Subject"] = SUBJECT
    outer["Date"] = format_datetime(_utc(now_ms))
    outer["Message-ID"] = f"<{entry_id}.dsn@{domain}>"
    outer["Auto-Submitted"] = "auto-replied"
    outer.attach(_text(_human(report), "plain"))
    outer.attach(_delivery_status(report))
    outer.attach(_text(_headers_of(original), "rfc822-headers"))
    return outer.as_bytes()


def _human(report: Report) -> str:
    lines = [f"This is the mail system at host {report.reporting_mta}.", "",
             "I'm sorry to have to inform you that your message could not",
             "be delivered to one or more recipients. It's attached below.", ""]
    for recipient in report.recipients:
        where = f" (from {recipient.remote_mta})" if recipient.remote_mta else ""
        lines.append(f"<{recipient.address}>: {recipient.last_reply}{where}")
    return "\n".join(lines) + "\n"


def _delivery_status(report: Report) -> Message:
    part = Message(policy=policy.SMTP)
    part["Content-Type"] = "message/delivery-status"
    blocks: list[Message | str] = [_block([("Reporting-MTA", f"dns; {report.reporting_mta}"),
                      ("Arrival-Date", format_datetime(_utc(report.arrival_ms)))])]
    for recipient in report.recipients:
        fields = [("Final-Recipient", f"rfc822; {recipient.address}"),
                  ("Action", "failed"),
                  ("Status", status_of(recipient.last_reply))]
        if recipient.remote_mta:
            fields.append(("Remote-MTA", f"dns; {recipient.remote_mta}"))
            if is_smtp_reply(recipient.last_reply):
                fields.append(("Diagnostic-Code", f"smtp; {recipient.last_reply}"))
        if recipient.failed_ms:
            fields.append(("Last-Attempt-Date", format_datetime(_utc(recipient.failed_ms))))
        blocks.append(_block(fields))
    part.set_payload(blocks)
    return part


def _block(fields: Sequence[tuple[str, str]]) -> Message:
    block = Message(policy=policy.SMTP)
    for name, value in fields:
        block[name] = value
    return block


def _text(text: str, subtype: str) -> MIMEText:
    part = MIMEText(text, subtype, "us-ascii" if text.isascii() else "utf-8", policy=policy.SMTP)
    del part["MIME-Version"]    # the outer message's is the one that counts
    return part


def _headers_of(raw: bytes) -> str:
    end = min((i for i in (raw.find(b"\r\n\r\n"), raw.find(b"\n\n")) if i >= 0), default=len(raw))
    return raw[:end].decode("utf-8", "replace").replace("\r\n", "\n") + "\n"


def _boundary(report: Report) -> str:
    return "dsn=" + hashlib.blake2b(report.item_id.encode(), digest_size=12).hexdigest()


def _utc(ms: int) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.UTC)
