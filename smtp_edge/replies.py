"""The reply catalogue: every line this edge sends to an SMTP client.

Codes follow RFC 5321 (basic) and RFC 3463 (enhanced status codes). Nothing
else in the package writes reply text; handlers pick a constant or call one
of the small builders below. :data:`BUILTIN` maps the few reply lines that
aiosmtpd hard-codes onto our wording, so clients see one vocabulary.
"""
from __future__ import annotations

# 2xx
SENDER_OK = "250 2.1.0 OK"
RECIPIENT_OK = "250 2.1.5 OK"


def accepted(entry_id: str) -> str:
    """DATA accepted: the message is durable on W replicas under ``entry_id``."""
    return f"250 2.0.0 OK {entry_id}"


# 4xx: temporary, the client keeps the message and retries
TOO_MANY_RECIPIENTS = "452 4.5.3 too many recipients"
AUTH_TEMPORARY_FAILURE = "454 4.7.0 temporary authentication failure, try again later"
LOCAL_ERROR = "451 4.3.0 local error in processing, try again later"


def rate_limited(seconds: int) -> str:
    """MAIL on submission over the user's sending rate (451 is MAIL's temporary reply in
    RFC 5321 4.3.2; 4.7.0: a policy reason, RFC 3463)."""
    return f"451 4.7.0 sending rate limit exceeded, try again in {seconds} seconds"


def temporary_failure(reason: str) -> str:
    """The router could not be reached or did not confirm durability."""
    return f"451 4.3.0 {reason}, try again later"


# 5xx: permanent
MESSAGE_TOO_BIG = "552 5.3.4 message too big"
AUTH_REQUIRED = "530 5.7.0 Authentication required"
STARTTLS_REQUIRED = "530 5.7.0 Must issue a STARTTLS command first"
AUTH_INVALID = "535 5.7.8 Authentication credentials invalid"
MALFORMED_ADDRESS = "553 5.1.3 malformed address"
# a DATA text line over 998 characters plus CRLF (RFC 5322 2.1.1, RFC 5321 4.5.3.1.6)
LINE_TOO_LONG = "554 5.6.0 message has a line longer than 998 characters"
COMMAND_TOO_LONG = "500 5.5.2 command line too long"


def no_such_user(address: str) -> str:
    return f"550 5.1.1 <{address}>: no such user here"


def relay_denied(address: str) -> str:
    return f"550 5.7.1 <{address}>: relay access denied"


def _shown(text: str) -> str:
    """Client-supplied text made safe to echo (aiosmtpd keeps undecodable bytes as surrogates)."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def bad_recipient_address(address: str, reason: str) -> str:
    return f"553 5.1.3 <{_shown(address)}>: {_shown(reason)}"


def bad_sender_address(address: str, reason: str) -> str:
    return f"553 5.1.7 <{_shown(address)}>: {_shown(reason)}"


def needs_smtputf8(address: str) -> str:
    """A non-ASCII address in a transaction whose MAIL did not say SMTPUTF8 (RFC 6531 3.5)."""
    return f"553 5.6.7 <{_shown(address)}>: non-ASCII address needs SMTPUTF8"


SPAM_REFUSAL = "spam:"   # how the router's detail begins when its classifier refuses a message


def refused(reason: str) -> str:
    """The router refused the delivery for good: as spam (policy, 5.7.1), or an invalid
    request or an unknown user (5.3.0)."""
    if reason.startswith(SPAM_REFUSAL):
        return f"550 5.7.1 {_shown(reason)}"
    return f"554 5.3.0 {_shown(reason)}"


def sender_not_owned(address: str) -> str:
    return f"553 5.7.1 <{address}>: sender address not owned by authenticated user"


def malformed_message(reason: str) -> str:
    return f"554 5.6.0 {reason}"


# aiosmtpd's own reply lines (aiosmtpd/smtp.py 1.4.x) -> ours
BUILTIN: dict[str, str] = {
    "552 Error: message size exceeds fixed maximum message size": MESSAGE_TOO_BIG,
    "530 Must issue a STARTTLS command first": STARTTLS_REQUIRED,
    "553 5.1.3 Error: malformed address": MALFORMED_ADDRESS,
    "500 Command line too long": COMMAND_TOO_LONG,
    "500 Error: bad syntax": "500 5.5.2 bad syntax",
    "503 Error: send HELO first": "503 5.5.1 send HELO first",
    "503 Error: send EHLO first": "503 5.5.1 send EHLO first",
    "503 Error: need MAIL command": "503 5.5.1 need MAIL command",
    "503 Error: nested MAIL command": "503 5.5.1 nested MAIL command",
    "503 Error: need RCPT command": "503 5.5.1 need RCPT command",
    "221 Bye": "221 2.0.0 Bye",
}


def reply_code(line: str) -> tuple[str, str]:
    """``("550", "5.1.1")`` for ``"550 5.1.1 ..."``; the enhanced part may be ``""``."""
    code, _, rest = line.partition(" ")
    enhanced = rest.partition(" ")[0]
    if not (enhanced.count(".") == 2 and enhanced.replace(".", "").isdigit()):
        enhanced = ""
    return code[:3], enhanced


# Content scanning (smtp_edge/pipeline/virus.py, content.py, rspamd.py)
SCANNER_UNAVAILABLE = "451 4.7.0 virus scanner unavailable, try again later"
SPAM_SCANNER_UNAVAILABLE = "451 4.7.0 spam scanner unavailable, try again later"
SPAM_GREYLISTED = "451 4.7.1 message deferred by the spam filter, try again later"
GTUBE = "550 5.7.1 message refused as spam (GTUBE test string)"


def virus_found(signature: str) -> str:
    """clamd found ``signature`` (e.g. ``Eicar-Test-Signature``) in the message."""
    return f"554 5.7.1 message refused: virus found ({_shown(signature)[:200]})"


def spam_rejected(score: float) -> str:
    """The spam filter (rspamd) said reject."""
    return f"550 5.7.1 message refused as spam (score {score:.1f})"


# Sender authentication (smtp_edge/pipeline/auth.py)
def auth_temporary(name: str, reason: str) -> str:
    """SPF, DKIM or DMARC could not be checked now (a DNS timeout or SERVFAIL)."""
    where = f" for {_shown(name)}" if name else ""
    return f"451 4.7.0 sender authentication failed temporarily{where} ({_shown(reason)}), try again later"


def dmarc_reject(domain: str) -> str:
    """The From domain publishes DMARC p=reject and neither SPF nor DKIM passed aligned with it."""
    return (f"550 5.7.1 message refused: {_shown(domain)} publishes a DMARC reject policy and the message "
            f"is not authenticated by it (SPF and DKIM not aligned)")
