"""One log line an SMTP transaction, as Postfix writes one a queue id: from MAIL FROM to the
reply after DATA, or the refused MAIL FROM. Its transaction id is the request id of the router
calls it makes (tidings_runtime/logs.py).

The line: transaction id, listener, peer IP, HELO name, the AUTH user id, MAIL FROM, the
accepted recipients (addresses, as Postfix logs them), size, the reply code and enhanced
status, the message id assigned, duration_ms, and for a refusal its reason (the reply's
text, our own words). Never a header, the body, nor AUTH credentials."""
from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field

from tidings_runtime import logs

log = logging.getLogger("smtp_edge.transaction")
_REPLY = re.compile(r"(\d{3})[ -](?:(\d\.\d{1,3}\.\d{1,3}) )?(.*)", re.DOTALL)


@dataclass
class Transaction:
    """A transaction under way: its id (set as the request id) and when it began."""

    id: str = field(default_factory=logs.new_request_id)
    started: float = field(default_factory=time.perf_counter)

    def begin(self) -> Transaction:
        logs.request_id.set(self.id)   # the session's task: every call until the next MAIL FROM
        return self


def record(txn: Transaction, reply: str, *, listener: str, peer: str, helo: str, user: str, mail_from: str,
           recipients: tuple[str, ...], size: int | None) -> None:
    """Log the transaction's one line, ended by `reply` (the text sent to the client)."""
    match = _REPLY.match(reply)
    code, enhanced, text = (int(match[1]), match[2] or "", match[3]) if match else (0, "", reply)
    fields: dict[str, object] = {
        "txn": txn.id, "listener": listener, "peer": peer, "helo": helo, "mail_from": mail_from,
        "rcpt": list(recipients), "rcpt_count": len(recipients), "code": code, "enhanced": enhanced,
        "duration_ms": round((time.perf_counter() - txn.started) * 1000, 2),
    }
    if user:
        fields["auth_user"] = user
    if size is not None:
        fields["size"] = size
    if code == 250 and text.startswith("OK "):   # replies.accepted: "250 2.0.0 OK <entry id>"
        fields["message_id"] = text.removeprefix("OK ")
    if code >= 400:
        fields["reason"] = text
    log.info("smtp transaction %s", "accepted" if code < 400 else "refused", extra=fields)
